"""PEANUT for DaVinci Resolve: clean the clip under the playhead and place the result on the track above.

Importable without Resolve (tests drive it with a fake that implements the
documented scripting API). Runs on the Python 3.6 that Blackmagic's README
promises (no dataclasses, no `from __future__ import annotations`).

Only calls listed in Blackmagic's scripting README are used; plugins/resolve/README.md
lists each with the README line it relies on. Where the README is silent
(how AppendToTimeline reads a sequence's startFrame and endFrame), the script
places, reads back what landed (GetStart, GetDuration, GetSourceStartFrame,
GetLeftOffset, GetMediaPoolItem) and corrects or rolls back.

Every call that can fail (None, False, an empty list, an item whose Get* calls
return None) is checked; a failure raises ResolveScriptError with a message for
the editor, after removing what this run added (clips, track, imported media,
bin), so the timeline is left as it was. The cleaned frames stay on disk, in a
"PEANUT" folder beside the source media.

Transport: the thin gRPC client (peanut_server.client) when grpcio imports in
Resolve's Python, otherwise the `peanut` command line (`peanut remove ... --json`).
"""

import json
import logging
import os
import re
import shutil
import subprocess
import threading
from typing import Any, Callable, List, Optional, Tuple

log = logging.getLogger("peanut.resolve")

BIN_NAME = "PEANUT"
OUTPUT_FOLDER = "PEANUT"
FRAME_PATTERN = "frame_%06d.png"
# Resolve shows an imported image sequence as "name_[000010-000029].png".
_SEQUENCE_PATH = re.compile(r"^(?P<head>.*?)\[(?P<first>\d+)-(?P<last>\d+)\](?P<tail>[^/\\]*)$")
# "25", "23.976", "29.97 DF", "30 NDF": drop-frame timelines add " DF" to the rate.
_FRAME_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:N?DF)?\s*$", re.IGNORECASE)
# Tries at placing the cleaned clip: one per reading of startFrame and endFrame to correct.
_PLACE_TRIES = 4

ProgressCallback = Callable[[str, int, int], None]


class ResolveScriptError(Exception):
    """A failure the editor can act on; the message is one line for the dialog."""


# -- transport ---------------------------------------------------------------------


class JobRequest:
    """One removal job: source frames start..end-1 (0-based as PEANUT decodes), prompt or mask, outputs."""

    def __init__(
        self,
        source_path: str,
        start: int,
        end: int,
        prompt: str,
        mask_path: str,
        output_path: str,
        matte_path: str,
        options: Optional[dict] = None,
        box: str = "",
        approximate: bool = False,
    ) -> None:
        self.source_path = source_path
        self.start = start
        self.end = end  # exclusive
        self.prompt = prompt
        self.mask_path = mask_path
        self.output_path = output_path
        self.matte_path = matte_path
        self.options = dict(options or {})
        # "F:X,Y,W,H": the object's box on source frame F, source pixels; several are separated
        # by ";" (a box on a later frame corrects the tracking there)
        self.box = box
        self.approximate = approximate  # accept the best match on the words the masker understands


def parse_box(text: str) -> Tuple[int, float, float, float, float]:
    """The dialog's box field, "F:X,Y,W,H" (source frame, source pixels), checked for shape."""
    frame, sep, rest = (text or "").strip().partition(":")
    values = rest.split(",")
    try:
        if not sep or len(values) != 4:
            raise ValueError
        f, (x, y, w, h) = int(frame), [float(v) for v in values]
    except ValueError:
        raise ResolveScriptError(f"box {text!r}: write it as F:X,Y,W,H (source frame, source pixels)") from None
    if f < 0 or w <= 0 or h <= 0:
        raise ResolveScriptError(f"box {text!r}: the frame must be >= 0, width and height positive")
    return f, x, y, w, h


def parse_boxes(text: str) -> List[Tuple[int, float, float, float, float]]:
    """The dialog's box field: one box or several separated by ";", each checked, at most one per frame."""
    boxes = [parse_box(part) for part in (text or "").split(";") if part.strip()]
    frames = [b[0] for b in boxes]
    if len(set(frames)) != len(frames):
        raise ResolveScriptError(f"boxes {text!r}: one box per frame")
    return boxes


class JobOutcome:
    def __init__(
        self, output_path: str, matte_path: str, frame_count: int, warnings: Optional[List[str]] = None
    ) -> None:
        self.output_path = output_path
        self.matte_path = matte_path
        self.frame_count = frame_count
        # What the job warned about (words it ignored, frames to check): the editor must see it.
        self.warnings = list(warnings or [])


# A transport is any object with run(request, on_progress, should_cancel) -> JobOutcome
# (GrpcTransport, CliTransport, or a test's). typing.Protocol needs Python 3.8.


class GrpcTransport:
    """Talks to the daemon through peanut_server.client (grpcio + protobuf only)."""

    def __init__(self, address: Optional[str] = None, state_dir: Optional[str] = None) -> None:
        from peanut_server.client import PeanutClient  # raises ImportError without grpcio

        self._client_class = PeanutClient
        self.address = address
        self.state_dir = state_dir

    def run(self, request: JobRequest, on_progress=None, should_cancel=None) -> JobOutcome:
        from peanut_server.api import peanut_pb2 as pb
        from peanut_server.client import ClientError, DaemonUnavailable, box_prompt

        frame_prompts = [box_prompt(*box) for box in parse_boxes(request.box)]
        try:
            with self._client_class(self.address, state_dir=self.state_dir) as client:
                job = client.submit(
                    request.source_path,
                    request.start,
                    request.end,
                    prompt=request.prompt,
                    mask_path=request.mask_path,
                    output_path=request.output_path,
                    matte_path=request.matte_path,
                    options=request.options or None,
                    client_name="resolve",
                    frame_prompts=frame_prompts,
                    approximate=request.approximate,
                )
                cancelled = threading.Event()

                def on_event(event) -> None:
                    if on_progress is not None and event.job.stage:
                        on_progress(event.job.stage, int(event.job.frames_done), int(event.job.frames_total))
                    if should_cancel is not None and should_cancel() and not cancelled.is_set():
                        cancelled.set()
                        client.cancel(job.id)

                final = client.wait(job.id, on_event=on_event)
        except DaemonUnavailable as exc:
            raise ResolveScriptError(f"PEANUT daemon not running: {exc.message}") from None
        except ClientError as exc:
            raise ResolveScriptError(f"PEANUT refused the job: {exc.message}") from None
        if final.state == pb.JOB_STATE_CANCELLED:
            raise ResolveScriptError("cancelled; nothing was added to the timeline")
        if final.state != pb.JOB_STATE_SUCCEEDED:
            raise ResolveScriptError(f"PEANUT job failed: {final.error or pb.JobState.Name(final.state)}")
        return JobOutcome(
            final.result.output_path, final.result.matte_path, int(final.result.frame_count), list(final.warnings)
        )


class CliTransport:
    """Runs `peanut remove ... --json` and reads the final Job (MessageToDict) from stdout."""

    def __init__(
        self, executable: str = "peanut", address: Optional[str] = None, state_dir: Optional[str] = None
    ) -> None:
        self.executable = executable
        self.address = address
        self.state_dir = state_dir

    def command(self, request: JobRequest) -> List[str]:
        argv = [
            self.executable,
            "remove",
            request.source_path,
            "-o",
            request.output_path,
            "--matte",
            request.matte_path,
            "--start",
            str(request.start),
            "--end",
            str(request.end),
            "--json",
            "--quiet",
        ]
        if request.prompt:
            argv += ["--prompt", request.prompt]
        if request.mask_path:
            argv += ["--mask", request.mask_path]
        for frame, x, y, w, h in parse_boxes(request.box):
            argv += ["--box", f"{frame}:{x:g},{y:g},{w:g},{h:g}"]
        if request.approximate:
            argv.append("--approximate")
        if self.address:
            argv += ["--server", self.address]
        if self.state_dir:
            argv += ["--state-dir", self.state_dir]
        for key, value in (request.options or {}).items():
            if key == "reuse_flow":
                if not value:
                    argv.append("--no-reuse-flow")
                continue
            if key == "include_effects":  # a switch on the command line
                if value:
                    argv.append("--include-effects")
                continue
            argv += ["--" + key.replace("_", "-"), str(value)]
        return argv

    def run(self, request: JobRequest, on_progress=None, should_cancel=None) -> JobOutcome:
        argv = self.command(request)
        try:
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True
            )  # text= needs Python 3.7
        except OSError as exc:
            raise ResolveScriptError(
                f"cannot run {self.executable!r} ({exc.strerror}); install PEANUT or set its path in the dialog"
            ) from None
        if on_progress is not None:
            on_progress("running", 0, request.end - request.start)
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if should_cancel is not None and should_cancel():
                    # The CLI cancels its daemon job on SIGINT-like termination.
                    process.terminate()
                    process.communicate()
                    raise ResolveScriptError("cancelled; nothing was added to the timeline") from None
        job = _last_json_object(stdout)
        if job is None:
            reason = (stderr.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
            raise ResolveScriptError(reason[len("peanut: ") :] if reason.startswith("peanut: ") else reason)
        return outcome_from_job_dict(job)


def _last_json_object(text: str) -> Optional[dict]:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def outcome_from_job_dict(job: dict) -> JobOutcome:
    """Read a Job printed with MessageToDict (field names as in the proto or camelCase; int64 as strings)."""

    def get(mapping: dict, name: str, default: Any = "") -> Any:
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        return mapping.get(name, mapping.get(camel, default))

    state = get(job, "state")
    if state != "JOB_STATE_SUCCEEDED":
        reason = get(job, "error") or str(state).replace("JOB_STATE_", "").lower()
        if state == "JOB_STATE_CANCELLED":
            raise ResolveScriptError("cancelled; nothing was added to the timeline")
        raise ResolveScriptError(f"PEANUT job failed: {reason}")
    result = get(job, "result", {})
    return JobOutcome(
        get(result, "output_path"),
        get(result, "matte_path"),
        int(get(result, "frame_count", 0)),
        [str(w) for w in get(job, "warnings", [])],
    )


CONFIG_NAME = "peanut_resolve.json"
_config = {}  # type: Dict[str, Any]


def load_install_config(folder: Optional[str] = None) -> dict:
    """Read what install.py recorded beside this module: import paths and the `peanut` executable.

    The installing Python's site-packages are only added when Resolve runs the
    same Python version (grpcio is a compiled module).
    """
    folder = folder or os.path.dirname(os.path.abspath(__file__))
    try:
        with open(os.path.join(folder, CONFIG_NAME)) as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return {}
    import sys

    paths = list(config.get("source_paths", []))
    if config.get("python_version") == "{}.{}".format(*sys.version_info[:2]):
        paths += config.get("site_packages", [])
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)
    _config.clear()
    _config.update(config)
    return config


def default_transport(server: Optional[str] = None, peanut_executable: Optional[str] = None):
    try:
        return GrpcTransport(server)
    except Exception as exc:  # ImportError, or a compiled grpcio built for another Python
        log.info("the gRPC client is not usable here (%s); using the peanut command line", exc)
        executable = peanut_executable or _config.get("peanut") or shutil.which("peanut") or "peanut"
        return CliTransport(executable, server)


# -- reading the timeline ---------------------------------------------------------------


class ClipPlan:
    """What the current clip shows, and where its result goes."""

    def __init__(
        self,
        clip_name: str,
        track_index: int,
        record_start: int,
        duration: int,
        source_path: str,
        start: int,
        end: int,
        fps: float,
        output_path: str,
        matte_path: str,
        prompt: str = "",
        mask_path: str = "",
        project_id: str = "",
        project_name: str = "",
        timeline_id: str = "",
        timeline_name: str = "",
    ) -> None:
        self.clip_name = clip_name
        self.track_index = track_index  # 1-based video track of the source item
        self.record_start = record_start  # timeline frame of its first frame (GetStart)
        self.duration = duration  # timeline frames (GetDuration)
        self.source_path = source_path  # video file or frame folder for PEANUT
        self.start = start  # first source frame, 0-based
        self.end = end  # exclusive
        self.fps = fps
        self.output_path = output_path
        self.matte_path = matte_path
        self.prompt = prompt
        self.mask_path = mask_path
        # Where the clip was read, to place the result there and nowhere else.
        self.project_id = project_id
        self.project_name = project_name
        self.timeline_id = timeline_id
        self.timeline_name = timeline_name

    def __repr__(self) -> str:
        return "ClipPlan({!r}, track {}, record {}+{}, {} frames {}..{})".format(
            self.clip_name,
            self.track_index,
            self.record_start,
            self.duration,
            self.source_path,
            self.start,
            self.end - 1,
        )


def _need(value: Any, message: str) -> Any:
    if value is None or value is False:
        raise ResolveScriptError(message)
    return value


def _number(text: Any, what: str) -> float:
    try:
        return float(str(text).strip())
    except ValueError:
        raise ResolveScriptError(f"Resolve reported an unreadable {what}: {text!r}") from None


def frame_rate(text: Any, what: str) -> float:
    """A rate as Resolve writes it: "25", "23.976", "29.97 DF" (drop-frame timecode, same frame rate)."""
    match = _FRAME_RATE.match(str(text))
    if match is None:
        raise ResolveScriptError(f"Resolve reported an unreadable {what}: {text!r}")
    return float(match.group(1))


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit] or "mask"


def media_source(file_path: str, start_property: str) -> Tuple[str, int]:
    """PEANUT's source path for a clip, and the media frame number of PEANUT frame 0.

    A movie is itself; an image sequence ("/shots/a_[0100-0199].png") is its
    folder, whose first file PEANUT counts as frame 0.
    """
    match = _SEQUENCE_PATH.match(file_path)
    if match:
        return os.path.dirname(file_path), int(match.group("first"))
    return file_path, int(_number(start_property or "0", "clip start"))


def _output_folder(source_path: str, clip_name: str, label: str) -> str:
    """A new folder per run in "PEANUT" beside the source media, never inside a frame folder."""
    parent = os.path.dirname(os.path.normpath(source_path))
    stem = os.path.splitext(os.path.basename(os.path.normpath(source_path)))[0] or clip_name
    base = os.path.join(parent, OUTPUT_FOLDER, f"{_slug(stem)}_{_slug(label)}")
    folder, n = base, 2
    while os.path.exists(folder):
        folder, n = f"{base}_{n}", n + 1
    return folder


def _find_track(timeline, item) -> int:
    """The 1-based video track of `item`: asked with GetTrackTypeAndIndex, else found by GetUniqueId.

    Never by position and name: two items can share both (a clip stacked on itself).
    """
    where = item.GetTrackTypeAndIndex()
    if where and len(where) == 2 and where[0] == "video" and where[1]:
        return int(where[1])
    wanted = item.GetUniqueId()
    if wanted:
        for index in range(1, int(timeline.GetTrackCount("video") or 0) + 1):
            for other in timeline.GetItemListInTrack("video", index) or []:
                if other.GetUniqueId() == wanted:
                    return index
    raise ResolveScriptError("cannot find the current clip's video track")


def _source_span(item, name: str, duration: int) -> None:
    """Refuse a retimed clip: its source frames (GetSourceStartFrame/EndFrame) differ from its duration.

    GetEnd - GetStart is a timeline length and equals GetDuration even on a
    retimed clip. The README does not say whether GetSourceEndFrame is the
    last frame or the one after it, so both spans count as 100% speed.
    """
    first, last = item.GetSourceStartFrame(), item.GetSourceEndFrame()
    if first is None or last is None:
        raise ResolveScriptError(f"cannot read which source frames '{name}' shows")
    span = int(round(float(last) - float(first)))
    if span not in (duration - 1, duration):
        raise ResolveScriptError(
            f"'{name}' has a speed change ({duration} timeline frames show {span + 1} source frames); "
            "PEANUT needs a clip at 100% speed"
        )


def plan_current_clip(
    resolve, prompt: Optional[str] = None, mask_path: Optional[str] = None, box: str = ""
) -> Tuple[ClipPlan, Any, Any]:
    """Read everything needed from Resolve; changes nothing. Returns (plan, project, timeline)."""
    prompt = (prompt or "").strip()
    mask_path = (mask_path or "").strip()
    parse_boxes(box)
    if not prompt and not mask_path and not box:
        raise ResolveScriptError("describe what to remove (or give a box, or choose a mask file)")
    if mask_path and not os.path.exists(mask_path):
        raise ResolveScriptError(f"mask not found: {mask_path}")
    manager = _need(
        resolve.GetProjectManager() if resolve is not None else None, "cannot reach DaVinci Resolve's project manager"
    )
    project = _need(manager.GetCurrentProject(), "no project is open in DaVinci Resolve")
    timeline = _need(project.GetCurrentTimeline(), "no timeline is open: open one on the Edit page")
    item = _need(
        timeline.GetCurrentVideoItem(),
        "no clip under the playhead: move the playhead over the clip to clean (on its video track)",
    )
    name = item.GetName() or "clip"
    mpi = _need(item.GetMediaPoolItem(), f"'{name}' is not a media clip (title, generator or compound clip)")
    file_path = mpi.GetClipProperty("File Path") or ""
    if not file_path:
        raise ResolveScriptError(f"'{name}' has no media file (offline or generated)")
    source_path, media_first = media_source(file_path, mpi.GetClipProperty("Start"))
    if not os.path.exists(source_path):
        raise ResolveScriptError(f"the media of '{name}' is offline: {source_path} does not exist")

    fps = frame_rate(mpi.GetClipProperty("FPS") or "0", "clip frame rate")
    timeline_fps = frame_rate(timeline.GetSetting("timelineFrameRate") or fps, "timeline frame rate")
    if fps and abs(fps - timeline_fps) > 0.01:
        # Resolve would resample the clip; PEANUT's frames would not line up one to one.
        raise ResolveScriptError(
            f"'{name}' runs at {fps:g} fps on a {timeline_fps:g} fps timeline; clean it in a timeline of its own rate"
        )
    duration = item.GetDuration()
    record_start = item.GetStart()
    if duration is None or record_start is None:
        raise ResolveScriptError(f"cannot read the position of '{name}' on the timeline")
    duration, record_start = int(duration), int(record_start)
    _source_span(item, name, duration)
    # GetLeftOffset: source frames trimmed off the head. GetSourceStartFrame
    # counts in the media's own numbering; both must agree.
    left = item.GetLeftOffset()
    if left is None:
        left = int(item.GetSourceStartFrame()) - media_first
    start = int(left)
    frames = mpi.GetClipProperty("Frames")
    if start < 0 or (frames and start + duration > int(_number(frames, "frame count"))):
        raise ResolveScriptError(f"'{name}' shows frames {start}..{start + duration - 1}, outside its media")

    track_index = _find_track(timeline, item)
    folder = _output_folder(source_path, name, prompt or os.path.basename(mask_path) or "box")
    plan = ClipPlan(
        clip_name=name,
        track_index=track_index,
        record_start=record_start,
        duration=duration,
        source_path=source_path,
        start=start,
        end=start + duration,
        fps=fps or timeline_fps,
        output_path=os.path.join(folder, "cleaned"),
        matte_path=os.path.join(folder, "matte"),
        prompt=prompt,
        mask_path=mask_path,
        project_id=project.GetUniqueId() or "",
        project_name=project.GetName() or "",
        timeline_id=timeline.GetUniqueId() or "",
        timeline_name=timeline.GetName() or "",
    )
    return plan, project, timeline


# -- placing the result ---------------------------------------------------------------------


class _Undo:
    """What this run added to the project, removed again in reverse order on failure."""

    def __init__(self, media_pool, timeline) -> None:
        self.media_pool = media_pool
        self.timeline = timeline
        self.items = []  # type: List[Any]
        self.track = None  # type: Optional[int]
        self.media = []  # type: List[Any]
        self.bin = None
        self.previous_folder = None

    def rollback(self) -> None:
        problems = []
        if self.items and not self.timeline.DeleteClips(self.items, False):
            problems.append("placed clip")
        if self.track is not None and not self.timeline.DeleteTrack("video", self.track):
            problems.append(f"video track {self.track}")
        if self.media and not self.media_pool.DeleteClips(self.media):
            problems.append("imported media")
        if self.previous_folder is not None:
            self.media_pool.SetCurrentFolder(self.previous_folder)
        if self.bin is not None and not self.media_pool.DeleteFolders([self.bin]):
            problems.append(f"bin {BIN_NAME}")
        if problems:
            log.error("could not remove: %s", ", ".join(problems))


def _peanut_bin(media_pool, undo: _Undo):
    root = _need(media_pool.GetRootFolder(), "cannot open the media pool's root folder")
    for folder in root.GetSubFolderList() or []:
        if folder.GetName() == BIN_NAME:
            return folder
    folder = _need(media_pool.AddSubFolder(root, BIN_NAME), f"cannot create the media pool bin '{BIN_NAME}'")
    undo.bin = folder
    return folder


def _import_sequence(media_pool, folder: str, start: int, end: int, what: str, undo: _Undo):
    items = media_pool.ImportMedia(
        [{"FilePath": os.path.join(folder, FRAME_PATTERN), "StartIndex": start, "EndIndex": end - 1}]
    )
    if not items:
        raise ResolveScriptError(f"Resolve could not import the {what} frames from {folder}")
    undo.media.extend(items)  # every item, so a refusal below removes them all
    if len(items) != 1:
        # README: "Each clipInfo gets imported as one MediaPoolItem unless
        # 'Show Individual Frames' is turned on."
        raise ResolveScriptError(
            f"Resolve imported the {what} frames as {len(items)} separate clips: "
            "turn off 'Show Individual Frames' in the media pool and run again"
        )
    return items[0]


def _track_is_free(timeline, index: int, start: int, end: int) -> bool:
    for other in timeline.GetItemListInTrack("video", index) or []:
        if other.GetStart() < end and start < other.GetEnd():
            return False
    return True


def _track_is_usable(timeline, index: int) -> bool:
    """Not locked (Resolve would refuse the clip) and enabled (a clip there would not show)."""
    return timeline.GetIsTrackLocked("video", index) is False and timeline.GetIsTrackEnabled("video", index) is True


def _target_track(timeline, plan: ClipPlan, undo: _Undo) -> int:
    above = plan.track_index + 1
    count = int(timeline.GetTrackCount("video") or 0)
    if (
        above <= count
        and _track_is_usable(timeline, above)
        and _track_is_free(timeline, above, plan.record_start, plan.record_start + plan.duration)
    ):
        return above
    if not timeline.AddTrack("video"):
        raise ResolveScriptError("Resolve could not add a video track for the cleaned clip")
    new = int(timeline.GetTrackCount("video"))
    undo.track = new
    if not _track_is_usable(timeline, new):
        raise ResolveScriptError(f"the new video track {new} is locked or disabled")
    return new


def _append(media_pool, mpi, track: int, plan: ClipPlan, start_frame: int, end_frame: int):
    items = media_pool.AppendToTimeline(
        [
            {
                "mediaPoolItem": mpi,
                "startFrame": start_frame,
                "endFrame": end_frame,
                "trackIndex": track,
                "recordFrame": plan.record_start,
                "mediaType": 1,
            }
        ]
    )
    return items[0] if items else None


def _read_placed(item) -> Optional[Tuple[int, int, Optional[int], Optional[int], str]]:
    """(start, duration, source start, left offset, media pool item id), or None for a dead item.

    Resolve can hand back an item whose Get* calls all return None when the
    placement failed.
    """
    start, duration = item.GetStart(), item.GetDuration()
    if start is None or duration is None:
        return None
    mpi = item.GetMediaPoolItem()
    source_start, left = item.GetSourceStartFrame(), item.GetLeftOffset()
    return (
        int(start),
        int(duration),
        None if source_start is None else int(source_start),
        None if left is None else int(left),
        (mpi.GetUniqueId() if mpi is not None else "") or "",
    )


def _place_cleaned(media_pool, timeline, cleaned, track: int, plan: ClipPlan, undo: _Undo):
    """Append the cleaned sequence so that its first frame lands on plan.record_start, full length.

    The README does not say how startFrame/endFrame count for an image
    sequence: in the clip's own numbering (GetClipProperty "Start", as
    ayon-resolve passes it; a Resolve 21.1 report says startFrame 0 on a
    sequence starting at 1 adds a blank frame) or from 0, endFrame inclusive or
    exclusive. Place with the clip's numbering and an inclusive end, read back
    which source frame landed first and how many, and correct: a head shift
    moves both ends, then a short or long clip moves the end.
    """
    first = int(_number(cleaned.GetClipProperty("Start") or "0", "clip start"))
    wanted_id = cleaned.GetUniqueId() or ""
    start_frame, end_frame = first, first + plan.duration - 1
    landed = ""
    for _ in range(_PLACE_TRIES):
        placed = _append(media_pool, cleaned, track, plan, start_frame, end_frame)
        reading = _read_placed(placed) if placed is not None else None
        if reading is None:
            raise ResolveScriptError("Resolve could not place the cleaned clip on the timeline")
        undo.items.append(placed)
        start, duration, source_start, left, mpi_id = reading
        if mpi_id != wanted_id:
            raise ResolveScriptError("the placed clip does not show the cleaned frames PEANUT imported")
        # Frames off at the head: > 0 skipped the first cleaned frames, < 0 blank frames before them.
        # GetLeftOffset (frames of the clip before the first one shown) decides; the
        # README does not say whether GetSourceStartFrame counts in the clip's own
        # numbering or from 0, so it must agree with one of them.
        if left is not None:
            shift = left
            if source_start is not None and source_start not in (first + left, left):
                raise ResolveScriptError(
                    f"Resolve reports the placed clip starting at source frame {source_start} but trimmed by {left}"
                )
        elif source_start is not None:
            shift = source_start - first  # as plan_current_clip reads it: the clip's own numbering
        else:
            raise ResolveScriptError("cannot read which frame of the cleaned clip Resolve placed first")
        landed = f"{start}+{duration} from cleaned frame {shift}"
        if start == plan.record_start and shift == 0 and duration == plan.duration:
            return placed
        if start != plan.record_start:
            break  # recordFrame was explicit: no reading explains another position
        if not timeline.DeleteClips([placed], False):
            raise ResolveScriptError("Resolve could not adjust the placed clip")
        undo.items.remove(placed)
        if shift:
            start_frame, end_frame = start_frame - shift, end_frame - shift
        else:
            end_frame += plan.duration - duration
    raise ResolveScriptError(
        f"the cleaned clip landed at {landed or '?'}, not {plan.record_start}+{plan.duration} from its first frame"
    )


def _select_planned_timeline(resolve, project, timeline, plan: ClipPlan):
    """Make the planned timeline current again (AppendToTimeline works on the current one).

    Returns the timeline the editor had switched to (to switch back after
    placing), or None. A different project is refused: the planned one is closed.
    """
    manager = resolve.GetProjectManager() if resolve is not None else None
    current_project = manager.GetCurrentProject() if manager is not None else None
    if current_project is None or (current_project.GetUniqueId() or "") != plan.project_id:
        raise ResolveScriptError(f"project '{plan.project_name}' is no longer open; nothing was added to the timeline")
    current = current_project.GetCurrentTimeline()
    if current is not None and (current.GetUniqueId() or "") == plan.timeline_id:
        return None
    if not project.SetCurrentTimeline(timeline):
        raise ResolveScriptError(f"cannot open timeline '{plan.timeline_name}' again to place the cleaned clip")
    now = project.GetCurrentTimeline()
    if now is None or (now.GetUniqueId() or "") != plan.timeline_id:
        raise ResolveScriptError(f"cannot open timeline '{plan.timeline_name}' again to place the cleaned clip")
    log.info("timeline '%s' is current again for placing; switching back afterwards", plan.timeline_name)
    return current


def place_result(resolve, project, timeline, plan: ClipPlan, outcome: JobOutcome):
    """Import the cleaned frames (and matte) into the PEANUT bin and place them above the source.

    Checks first that the project and timeline are still the planned ones (a
    long job leaves the editor time to switch); the editor's current timeline
    is restored afterwards.
    """
    if outcome.frame_count != plan.duration:
        raise ResolveScriptError(f"PEANUT returned {outcome.frame_count} frames for a {plan.duration}-frame clip")
    where = f" (the cleaned frames are in {os.path.dirname(outcome.output_path)})"
    try:
        switched_from = _select_planned_timeline(resolve, project, timeline, plan)
    except ResolveScriptError as exc:
        raise ResolveScriptError(f"{exc}{where}") from None
    try:
        return _place(project, timeline, plan, outcome)
    except ResolveScriptError as exc:
        raise ResolveScriptError(f"{exc}{where}") from None
    finally:
        if switched_from is not None and not project.SetCurrentTimeline(switched_from):
            log.error("could not switch back to the timeline that was open")


def _place(project, timeline, plan: ClipPlan, outcome: JobOutcome):
    media_pool = _need(project.GetMediaPool(), "cannot open the media pool")
    undo = _Undo(media_pool, timeline)
    try:
        undo.previous_folder = media_pool.GetCurrentFolder()
        folder = _peanut_bin(media_pool, undo)
        if not media_pool.SetCurrentFolder(folder):
            raise ResolveScriptError(f"cannot select the media pool bin '{BIN_NAME}'")
        cleaned = _import_sequence(media_pool, outcome.output_path, plan.start, plan.end, "cleaned", undo)
        if outcome.matte_path:
            _import_sequence(media_pool, outcome.matte_path, plan.start, plan.end, "matte", undo)
        track = _target_track(timeline, plan, undo)
        placed = _place_cleaned(media_pool, timeline, cleaned, track, plan, undo)
        if undo.previous_folder is not None:
            media_pool.SetCurrentFolder(undo.previous_folder)
        return placed
    except ResolveScriptError:
        undo.rollback()
        raise
    except Exception as exc:  # anything unexpected from Resolve: still leave the timeline as it was
        undo.rollback()
        raise ResolveScriptError(f"Resolve answered unexpectedly while placing the cleaned clip: {exc!r}") from None


def remove_current_clip(
    resolve,
    prompt: Optional[str] = None,
    mask_path: Optional[str] = None,
    server: Any = None,
    options: Optional[dict] = None,
    *,
    on_progress: Optional[ProgressCallback] = None,
    should_cancel: Optional[Callable[[], bool]] = None,
    box: str = "",
    approximate: bool = False,
    on_warning: Optional[Callable[[str], None]] = None,
):
    """Clean the clip under the playhead; returns the placed TimelineItem on the track above.

    `server`: None (the daemon in the state directory, or the `peanut` CLI when
    grpcio is missing), an address string, or a transport (an object with run()).
    `on_warning` gets each of the job's warnings once the result is placed.
    """
    plan, project, timeline = plan_current_clip(resolve, prompt, mask_path, box)
    transport = server if hasattr(server, "run") else default_transport(server)
    log.info("cleaning %s frames %d..%d of %s", plan.clip_name, plan.start, plan.end - 1, plan.source_path)
    run_folder = os.path.dirname(plan.output_path)
    os.makedirs(run_folder, exist_ok=True)
    try:
        outcome = transport.run(
            JobRequest(
                plan.source_path,
                plan.start,
                plan.end,
                plan.prompt,
                plan.mask_path,
                plan.output_path,
                plan.matte_path,
                dict(options or {}),
                box=box,
                approximate=approximate,
            ),
            on_progress,
            should_cancel,
        )
    except BaseException:
        _remove_if_empty(run_folder)
        raise
    placed = place_result(resolve, project, timeline, plan, outcome)
    for warning in outcome.warnings:
        log.warning("%s", warning)
        if on_warning is not None:
            on_warning(warning)
    return placed


def run_in_console(
    resolve,
    prompt: Optional[str] = None,
    mask_path: Optional[str] = None,
    options: Optional[dict] = None,
    server: Any = None,
):
    """The text route, for Resolve's Console when the menu dialog cannot open (no UIManager).

        import peanut_resolve; peanut_resolve.run_in_console(resolve, "the boom mic")

    Prints progress lines and the outcome; returns the placed item, or None after a failure.
    """
    last = {"line": ""}

    def progress(stage: str, done: int, total: int) -> None:
        line = f"PEANUT {stage}: {done}/{total} frames" if total else f"PEANUT {stage}"
        if line != last["line"]:
            last["line"] = line
            print(line)

    try:
        placed = remove_current_clip(
            resolve,
            prompt,
            mask_path,
            server,
            options,
            on_progress=progress,
            on_warning=lambda warning: print(f"PEANUT warning: {warning}"),
        )
    except ResolveScriptError as exc:
        print(f"PEANUT: {exc}")
        return None
    print(f"PEANUT: '{placed.GetName()}' placed above the clip; matte in the {BIN_NAME} bin.")
    return placed


def _remove_if_empty(folder: str) -> None:
    """Drop the run folder (and the PEANUT folder) a failed job left empty."""
    for path in (folder, os.path.dirname(folder)):
        try:
            os.rmdir(path)
        except OSError:
            return
