"""PEANUT for DaVinci Resolve: clean the clip under the playhead and place the result on the track above.

Importable without Resolve (tests drive it with a fake that implements the
documented scripting API). Only documented calls are used:

    Resolve.GetProjectManager, ProjectManager.GetCurrentProject,
    Project.GetMediaPool / GetCurrentTimeline,
    Timeline.GetCurrentVideoItem / GetStartFrame / GetSetting / GetTrackCount /
      GetItemListInTrack / AddTrack / DeleteTrack / DeleteClips,
    TimelineItem.GetName / GetStart / GetEnd / GetDuration / GetLeftOffset /
      GetSourceStartFrame / GetMediaPoolItem,
    MediaPoolItem.GetClipProperty("File Path" | "FPS" | "Start" | "Frames"),
    MediaPool.GetRootFolder / GetCurrentFolder / SetCurrentFolder / AddSubFolder /
      ImportMedia / AppendToTimeline / DeleteClips / DeleteFolders,
    Folder.GetName / GetSubFolderList.

Every call that can fail (None, False, an empty list) is checked; a failure
raises ResolveScriptError with a message for the editor, after removing what
this run added (clips, track, imported media, bin), so the timeline is left as
it was. The cleaned frames stay on disk, in a "PEANUT" folder beside the
source media.

Transport: the thin gRPC client (peanut_server.client) when grpcio imports in
Resolve's Python, otherwise the `peanut` command line (`peanut remove ... --json`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

log = logging.getLogger("peanut.resolve")

BIN_NAME = "PEANUT"
OUTPUT_FOLDER = "PEANUT"
FRAME_PATTERN = "frame_%06d.png"
# Resolve shows an imported image sequence as "name_[000010-000029].png".
_SEQUENCE_PATH = re.compile(r"^(?P<head>.*?)\[(?P<first>\d+)-(?P<last>\d+)\](?P<tail>[^/\\]*)$")

ProgressCallback = Callable[[str, int, int], None]


class ResolveScriptError(Exception):
    """A failure the editor can act on; the message is one line for the dialog."""


# -- transport ---------------------------------------------------------------------


@dataclass
class JobRequest:
    source_path: str
    start: int                 # first source frame, 0-based as PEANUT decodes
    end: int                   # exclusive
    prompt: str
    mask_path: str
    output_path: str
    matte_path: str
    options: dict = field(default_factory=dict)
    box: str = ""               # "F:X,Y,W,H": the object's box on source frame F, source pixels
    approximate: bool = False   # accept the best match on the words the masker understands


def parse_box(text: str) -> tuple[int, float, float, float, float]:
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


@dataclass
class JobOutcome:
    output_path: str
    matte_path: str
    frame_count: int


class Transport(Protocol):
    def run(self, request: JobRequest, on_progress: Optional[ProgressCallback], should_cancel: Optional[Callable[[], bool]]) -> JobOutcome:
        ...


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

        frame_prompts = [box_prompt(*parse_box(request.box))] if request.box else []
        try:
            with self._client_class(self.address, state_dir=self.state_dir) as client:
                job = client.submit(
                    request.source_path, request.start, request.end,
                    prompt=request.prompt, mask_path=request.mask_path,
                    output_path=request.output_path, matte_path=request.matte_path,
                    options=request.options or None, client_name="resolve",
                    frame_prompts=frame_prompts, approximate=request.approximate,
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
        return JobOutcome(final.result.output_path, final.result.matte_path, int(final.result.frame_count))


class CliTransport:
    """Runs `peanut remove ... --json` and reads the final Job (MessageToDict) from stdout."""

    def __init__(self, executable: str = "peanut", address: Optional[str] = None, state_dir: Optional[str] = None) -> None:
        self.executable = executable
        self.address = address
        self.state_dir = state_dir

    def command(self, request: JobRequest) -> list[str]:
        argv = [self.executable, "remove", request.source_path, "-o", request.output_path,
                "--matte", request.matte_path, "--start", str(request.start), "--end", str(request.end),
                "--json", "--quiet"]
        if request.prompt:
            argv += ["--prompt", request.prompt]
        if request.mask_path:
            argv += ["--mask", request.mask_path]
        if request.box:
            frame, x, y, w, h = parse_box(request.box)
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
            argv += ["--" + key.replace("_", "-"), str(value)]
        return argv

    def run(self, request: JobRequest, on_progress=None, should_cancel=None) -> JobOutcome:
        argv = self.command(request)
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
            raise ResolveScriptError(reason[len("peanut: "):] if reason.startswith("peanut: ") else reason)
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
    return JobOutcome(get(result, "output_path"), get(result, "matte_path"), int(get(result, "frame_count", 0)))


CONFIG_NAME = "peanut_resolve.json"
_config: dict = {}


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
    if config.get("python_version") == "%d.%d" % sys.version_info[:2]:
        paths += config.get("site_packages", [])
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)
    _config.clear()
    _config.update(config)
    return config


def default_transport(server: Optional[str] = None, peanut_executable: Optional[str] = None) -> Transport:
    try:
        return GrpcTransport(server)
    except Exception as exc:  # ImportError, or a compiled grpcio built for another Python
        log.info("the gRPC client is not usable here (%s); using the peanut command line", exc)
        executable = peanut_executable or _config.get("peanut") or shutil.which("peanut") or "peanut"
        return CliTransport(executable, server)


# -- reading the timeline ---------------------------------------------------------------


@dataclass
class ClipPlan:
    """What the current clip shows, and where its result goes."""

    clip_name: str
    track_index: int           # 1-based video track of the source item
    record_start: int          # timeline frame of its first frame (GetStart)
    duration: int              # timeline frames (GetDuration)
    source_path: str           # video file or frame folder for PEANUT
    start: int                 # first source frame, 0-based
    end: int                   # exclusive
    fps: float
    output_path: str
    matte_path: str
    prompt: str = ""
    mask_path: str = ""


def _need(value: Any, message: str) -> Any:
    if value is None or value is False:
        raise ResolveScriptError(message)
    return value


def _number(text: Any, what: str) -> float:
    try:
        return float(str(text).strip())
    except ValueError:
        raise ResolveScriptError(f"Resolve reported an unreadable {what}: {text!r}") from None


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit] or "mask"


def media_source(file_path: str, start_property: str) -> tuple[str, int]:
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
    """The 1-based video track holding `item` (matched by position and name: wrappers differ per call)."""
    key = (item.GetStart(), item.GetEnd(), item.GetName())
    for index in range(1, int(timeline.GetTrackCount("video") or 0) + 1):
        for other in timeline.GetItemListInTrack("video", index) or []:
            if other is item or (other.GetStart(), other.GetEnd(), other.GetName()) == key:
                return index
    raise ResolveScriptError("cannot find the current clip's video track")


def plan_current_clip(resolve, prompt: Optional[str] = None, mask_path: Optional[str] = None,
                      box: str = "") -> tuple[ClipPlan, Any, Any]:
    """Read everything needed from Resolve; changes nothing. Returns (plan, project, timeline)."""
    prompt = (prompt or "").strip()
    mask_path = (mask_path or "").strip()
    if box:
        parse_box(box)
    if not prompt and not mask_path and not box:
        raise ResolveScriptError("describe what to remove (or give a box, or choose a mask file)")
    if mask_path and not os.path.exists(mask_path):
        raise ResolveScriptError(f"mask not found: {mask_path}")
    manager = _need(resolve.GetProjectManager() if resolve is not None else None, "cannot reach DaVinci Resolve's project manager")
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

    fps = _number(mpi.GetClipProperty("FPS") or "0", "clip frame rate")
    timeline_fps = _number(timeline.GetSetting("timelineFrameRate") or fps, "timeline frame rate")
    if fps and abs(fps - timeline_fps) > 0.01:
        # Resolve would resample the clip; PEANUT's frames would not line up one to one.
        raise ResolveScriptError(
            f"'{name}' runs at {fps:g} fps on a {timeline_fps:g} fps timeline; clean it in a timeline of its own rate"
        )
    duration = int(_need(item.GetDuration(), f"cannot read the duration of '{name}'"))
    record_start = int(item.GetStart())
    if int(item.GetEnd()) - record_start != duration:
        raise ResolveScriptError(f"'{name}' has a speed change; PEANUT needs a clip at 100% speed")
    # GetLeftOffset: source frames trimmed off the head. GetSourceStartFrame
    # (newer Resolve) counts in the media's own numbering; both must agree.
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
        clip_name=name, track_index=track_index, record_start=record_start, duration=duration,
        source_path=source_path, start=start, end=start + duration, fps=fps or timeline_fps,
        output_path=os.path.join(folder, "cleaned"), matte_path=os.path.join(folder, "matte"),
        prompt=prompt, mask_path=mask_path,
    )
    return plan, project, timeline


# -- placing the result ---------------------------------------------------------------------


class _Undo:
    """What this run added to the project, removed again in reverse order on failure."""

    def __init__(self, media_pool, timeline) -> None:
        self.media_pool = media_pool
        self.timeline = timeline
        self.items: list = []
        self.track: Optional[int] = None
        self.media: list = []
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


def _import_sequence(media_pool, folder: str, start: int, end: int, what: str):
    items = media_pool.ImportMedia([{"FilePath": os.path.join(folder, FRAME_PATTERN), "StartIndex": start, "EndIndex": end - 1}])
    if not items:
        raise ResolveScriptError(f"Resolve could not import the {what} frames from {folder}")
    return items[0]


def _track_is_free(timeline, index: int, start: int, end: int) -> bool:
    for other in timeline.GetItemListInTrack("video", index) or []:
        if other.GetStart() < end and start < other.GetEnd():
            return False
    return True


def _target_track(timeline, plan: ClipPlan, undo: _Undo) -> int:
    above = plan.track_index + 1
    count = int(timeline.GetTrackCount("video") or 0)
    if above <= count and _track_is_free(timeline, above, plan.record_start, plan.record_start + plan.duration):
        return above
    if not timeline.AddTrack("video"):
        raise ResolveScriptError("Resolve could not add a video track for the cleaned clip")
    new = int(timeline.GetTrackCount("video"))
    undo.track = new
    return new


def _append(media_pool, mpi, track: int, plan: ClipPlan, end_frame: int):
    items = media_pool.AppendToTimeline([{
        "mediaPoolItem": mpi, "startFrame": 0, "endFrame": end_frame,
        "trackIndex": track, "recordFrame": plan.record_start, "mediaType": 1,
    }])
    return items[0] if items else None


def place_result(project, timeline, plan: ClipPlan, outcome: JobOutcome):
    """Import the cleaned frames (and matte) into the PEANUT bin and place them above the source."""
    if outcome.frame_count != plan.duration:
        raise ResolveScriptError(f"PEANUT returned {outcome.frame_count} frames for a {plan.duration}-frame clip")
    media_pool = _need(project.GetMediaPool(), "cannot open the media pool")
    undo = _Undo(media_pool, timeline)
    try:
        undo.previous_folder = media_pool.GetCurrentFolder()
        folder = _peanut_bin(media_pool, undo)
        if not media_pool.SetCurrentFolder(folder):
            raise ResolveScriptError(f"cannot select the media pool bin '{BIN_NAME}'")
        cleaned = _import_sequence(media_pool, outcome.output_path, plan.start, plan.end, "cleaned")
        undo.media.append(cleaned)
        if outcome.matte_path:
            undo.media.append(_import_sequence(media_pool, outcome.matte_path, plan.start, plan.end, "matte"))
        track = _target_track(timeline, plan, undo)

        # Blackmagic's README reads endFrame as inclusive; Resolve 21 was measured
        # treating it as exclusive. Place with the inclusive reading, then measure.
        placed = _append(media_pool, cleaned, track, plan, plan.duration - 1)
        if placed is None:
            raise ResolveScriptError("Resolve could not place the cleaned clip on the timeline")
        undo.items.append(placed)
        if placed.GetDuration() != plan.duration:
            short = plan.duration - int(placed.GetDuration())
            if not timeline.DeleteClips([placed], False):
                raise ResolveScriptError("Resolve could not adjust the placed clip's length")
            undo.items.remove(placed)
            placed = _append(media_pool, cleaned, track, plan, plan.duration - 1 + short)
            if placed is None:
                raise ResolveScriptError("Resolve could not place the cleaned clip on the timeline")
            undo.items.append(placed)
        if placed.GetStart() != plan.record_start or placed.GetDuration() != plan.duration:
            raise ResolveScriptError(
                f"the cleaned clip landed at {placed.GetStart()}+{placed.GetDuration()}, "
                f"not {plan.record_start}+{plan.duration}"
            )
        if undo.previous_folder is not None:
            media_pool.SetCurrentFolder(undo.previous_folder)
        return placed
    except ResolveScriptError as exc:
        undo.rollback()
        raise ResolveScriptError(f"{exc} (the cleaned frames are in {os.path.dirname(outcome.output_path)})") from None


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
):
    """Clean the clip under the playhead; returns the placed TimelineItem on the track above.

    `server`: None (the daemon in the state directory, or the `peanut` CLI when
    grpcio is missing), an address string, or a Transport.
    """
    plan, project, timeline = plan_current_clip(resolve, prompt, mask_path, box)
    transport = server if hasattr(server, "run") else default_transport(server)
    log.info("cleaning %s frames %d..%d of %s", plan.clip_name, plan.start, plan.end - 1, plan.source_path)
    run_folder = os.path.dirname(plan.output_path)
    os.makedirs(run_folder, exist_ok=True)
    try:
        outcome = transport.run(
            JobRequest(plan.source_path, plan.start, plan.end, plan.prompt, plan.mask_path,
                       plan.output_path, plan.matte_path, dict(options or {}), box=box, approximate=approximate),
            on_progress, should_cancel,
        )
    except BaseException:
        _remove_if_empty(run_folder)
        raise
    return place_result(project, timeline, plan, outcome)


def _remove_if_empty(folder: str) -> None:
    """Drop the run folder (and the PEANUT folder) a failed job left empty."""
    for path in (folder, os.path.dirname(folder)):
        try:
            os.rmdir(path)
        except OSError:
            return
