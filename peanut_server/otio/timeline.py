"""Clean the prompted clips of an OpenTimelineIO timeline and add the results as new tracks.

A clip asks for cleaning with a marker named ``peanut`` whose comment (or, in
Resolve exports, its ``Resolve_OTIO`` note) is the prompt, or a marker named
``peanut: <prompt>`` (for EDLs, whose markers have no comment), or with metadata
``peanut.prompt`` / ``peanut.mask`` (flat keys or a nested ``{"peanut": {...}}``
dictionary). Each such clip is processed over exactly the source frames it
shows; the output timeline is the input with two more video tracks on top,
"PEANUT cleaned" and "PEANUT matte", whose clips sit at the same
range_in_parent as their sources, with gaps elsewhere. Nothing of the input is
changed: the new tracks are appended to the timeline as read.

Clips inside nested stacks and tracks count too: each is cleaned over the
source frames that reach the top-level timeline (trims of its parents
included) and placed at that top-level range. A prompted clip that cannot be
cleaned faithfully (a retime or freeze frame on it or a parent, missing or
remote media, disabled, trimmed out of view) is not skipped silently: it is
refused by name with the reason, in the job's warnings and in the output
timeline's metadata (``peanut.not_cleaned``), and the others are still cleaned.

Frame numbers handed to the pipeline follow the contract of the proto: 0-based
indices into the media as decoded, half-open ranges. In OTIO a clip's
source_range is in the media's own time (often starting at its timecode), so a
source frame is the distance from the media reference's available_range start.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import Any

import opentimelineio as otio
from opentimelineio import url_utils

from ..errors import InvalidRequest, JobCancelled, MediaNotFound, OutputError, OutputExists
from ..progress import Reporter

log = logging.getLogger(__name__)

CLEANED_TRACK = "PEANUT cleaned"
MATTE_TRACK = "PEANUT matte"
MARKER_NAME = "peanut"
METADATA_KEY = "peanut"
FRAME_PREFIX = "frame_"
FRAME_SUFFIX = ".png"
FRAME_PADDING = 6
# Job warnings that name a prompted clip left uncleaned start with this; the
# CLI counts them for its exit status.
NOT_CLEANED_PREFIX = "not cleaned: "

# Two rates closer than this (relative) are the same rate written differently,
# e.g. 23.976 and 24000/1001: mixing them must not shift a frame.
_SAME_RATE = 1e-4


@dataclass(frozen=True)
class ClipJob:
    """One clip to clean: where its media is and which source frames it shows."""

    index: int  # 0-based order of the job in the timeline
    track_index: int  # index of the clip's track among the timeline's tracks
    track_name: str
    clip_name: str
    source_path: str  # absolute path of the media (file or frame folder)
    start_frame: int  # first source frame, 0-based as decoded
    end_frame: int  # exclusive
    rate: float  # the media's frame rate as written in the timeline
    prompt: str = ""
    mask_path: str = ""  # absolute, or "" for none
    boxes: tuple[str, ...] = ()  # metadata peanut.box: "F:X,Y,W,H" (source frame, source pixels)
    approximate: bool = False  # metadata peanut.approximate: accept words the masker cannot check
    overwrite: bool = False
    # Where the clip's visible frames sit in the top-level timeline (for nested
    # clips: through every parent's position and trim).
    range_in_parent: otio.opentime.TimeRange | None = field(default=None, compare=False)
    clip: otio.schema.Clip | None = field(default=None, compare=False, repr=False)

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class ClipRefusal:
    """A prompted clip that is not cleaned, and why."""

    clip_name: str
    where: str  # "in 'Nested Stack 1' on track 'V1'"
    reason: str

    def message(self) -> str:
        return f"{NOT_CLEANED_PREFIX}clip {self.clip_name!r} {self.where}: {self.reason}"


@dataclass
class TimelineResult:
    output_path: str
    clips: list[dict[str, Any]]
    output_files: list[str]
    frame_count: int
    refused: list[ClipRefusal] = field(default_factory=list)


RunClip = Callable[[ClipJob, str, str, Reporter], dict]


# -- time mapping ---------------------------------------------------------------


def _same_rate(a: float, b: float) -> bool:
    return abs(a - b) <= _SAME_RATE * max(abs(a), abs(b))


def frames_at(time: otio.opentime.RationalTime, rate: float) -> int:
    """`time` as a whole number of frames at `rate`, rounded to the nearest frame.

    Rounding (not OTIO's truncating to_frames) keeps 1001/24000-style float
    error from dropping a frame.
    """
    value = time.value if _same_rate(time.rate, rate) else time.value_rescaled_to(rate)
    return int(round(value))


def media_rate(clip: otio.schema.Clip) -> float:
    ref = clip.media_reference
    available = getattr(ref, "available_range", None)
    if available is not None:
        return available.start_time.rate
    return clip.source_range.start_time.rate if clip.source_range else clip.duration().rate


def _media_start(clip: otio.schema.Clip, rate: float) -> int:
    available = getattr(clip.media_reference, "available_range", None)
    return frames_at(available.start_time, rate) if available is not None else 0


def source_frame_range(clip: otio.schema.Clip) -> tuple[int, int]:
    """The half-open range of 0-based source frames that `clip` shows."""
    rate = media_rate(clip)
    trimmed = clip.trimmed_range()
    start = frames_at(trimmed.start_time, rate) - _media_start(clip, rate)
    count = frames_at(trimmed.duration, rate)
    return start, start + count


def timeline_to_source_frame(
    timeline: otio.schema.Timeline, clip: otio.schema.Clip, time: otio.opentime.RationalTime
) -> int:
    """The 0-based source frame that `clip` shows at `time` on the timeline's clock.

    `time` counts from the timeline's global start time, as an editor reads it
    (e.g. 01:00:00:00 for the first frame of a timeline that starts there).
    """
    rate = media_rate(clip)
    start = timeline.global_start_time or otio.opentime.RationalTime(0, rate)
    offset = frames_at(time, rate) - frames_at(start, rate)
    in_parent = clip.range_in_parent()
    local = offset - frames_at(in_parent.start_time, rate)
    if not 0 <= local < frames_at(in_parent.duration, rate):
        raise InvalidRequest(f"clip {clip.name!r} is not on the timeline at {time.to_timecode()}")
    return source_frame_range(clip)[0] + local


def source_frame_to_timeline(
    timeline: otio.schema.Timeline, clip: otio.schema.Clip, frame: int
) -> otio.opentime.RationalTime:
    """Inverse of timeline_to_source_frame: where source `frame` of `clip` shows on the timeline."""
    rate = media_rate(clip)
    first, end = source_frame_range(clip)
    if not first <= frame < end:
        raise InvalidRequest(f"source frame {frame} is outside clip {clip.name!r} ({first}..{end - 1})")
    start = timeline.global_start_time or otio.opentime.RationalTime(0, rate)
    value = frames_at(start, rate) + frames_at(clip.range_in_parent().start_time, rate) + frame - first
    return otio.opentime.RationalTime(value, rate)


# -- reading requests from clips -------------------------------------------------------


def _peanut_metadata(metadata: Any, key: str) -> str:
    """metadata["peanut.<key>"] or metadata["peanut"]["<key>"], as a string."""
    value = metadata.get(f"{METADATA_KEY}.{key}") if hasattr(metadata, "get") else None
    nested = metadata.get(METADATA_KEY) if hasattr(metadata, "get") else None
    if value is None and hasattr(nested, "get"):
        value = nested.get(key)
    return str(value).strip() if value is not None else ""


def clip_prompt(clip: otio.schema.Clip) -> str:
    """A marker named "peanut" (its comment, or Resolve's note) wins over metadata."""
    for marker in clip.markers:
        name = marker.name.strip()
        # "peanut: <prompt>" in the name serves formats whose markers carry no comment (CMX 3600 EDL).
        if name.lower().startswith(MARKER_NAME + ":") and name[len(MARKER_NAME) + 1 :].strip():
            return name[len(MARKER_NAME) + 1 :].strip()
        if name.lower() != MARKER_NAME:
            continue
        text = (marker.comment or "").strip()
        resolve = marker.metadata.get("Resolve_OTIO") if hasattr(marker.metadata, "get") else None
        if not text and hasattr(resolve, "get"):
            text = str(resolve.get("Note") or "").strip()
        if text:
            return text
    return _peanut_metadata(clip.metadata, "prompt")


def url_to_path(url: str, base_dir: Path) -> str:
    """A media URL or path as an absolute local path; relative ones resolve against base_dir.

    file:// URLs go through OTIO's own url_utils (percent-encoding, Windows
    drives). A URL that names another host (file://server/share/...) or
    another scheme is refused by name: reading it as a local path would open
    a different file, or none.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise MediaNotFound(f"{url} is on {parsed.netloc!r}, not on this computer; relink it to a local file")
        path = Path(url_utils.filepath_from_url(url))
    elif parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive ("D:/media/a.mov")
        raise MediaNotFound(f"{url} is not a local file; relink it to a local file")
    else:
        path = Path(url)
    if os.name != "nt" and PureWindowsPath(str(path)).drive:
        # "D:/media/a.mov" from a Windows editor: relative here, so it would name a file that is not the one meant.
        raise MediaNotFound(f"{url} is a Windows path ({path.as_posix()}); relink it to a file on this computer")
    return os.path.normpath(path if path.is_absolute() else base_dir / path)


def media_path(clip: otio.schema.Clip, base_dir: Path) -> str:
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        return url_to_path(ref.target_url, base_dir)
    if isinstance(ref, otio.schema.ImageSequenceReference) and ref.target_url_base:
        # A frame folder is a PEANUT source; frame 0 is its first file.
        return url_to_path(ref.target_url_base, base_dir)
    raise MediaNotFound(f"no media (reference: {type(ref).__name__})")


class _Refused(Exception):
    """One prompted clip cannot be cleaned; the message is the reason."""


def _ancestors(clip: otio.schema.Clip) -> list[otio.core.Composition]:
    """The clip's parents, innermost first, up to and including its top-level track."""
    chain = []
    parent = clip.parent()
    while parent is not None and parent.parent() is not None:  # the timeline's root stack has no parent
        chain.append(parent)
        parent = parent.parent()
    return chain


def _where(chain: list[otio.core.Composition]) -> str:
    inner = [
        f"in {c.name or type(c).__name__!r}" if c.name else f"in an unnamed {type(c).__name__}" for c in chain[:-1]
    ]
    return " ".join(inner + [f"on track {chain[-1].name!r}"]) if chain else "on the timeline"


def _time_effect(item: otio.core.Item) -> str:
    """Why a time effect on `item` stops PEANUT (frames would not map one to one), or ""."""
    for effect in item.effects:
        who = repr(item.name) if item.name else f"its {type(item).__name__}"
        if isinstance(effect, otio.schema.FreezeFrame):
            return f"a freeze frame (FreezeFrame on {who})"
        if isinstance(effect, otio.schema.LinearTimeWarp):
            if abs(effect.time_scalar - 1.0) > 1e-9:
                return f"a retime (LinearTimeWarp x{effect.time_scalar:g} on {who})"
        elif isinstance(effect, otio.schema.TimeEffect):
            return f"a time effect ({effect.effect_name or type(effect).__name__} on {who})"
    return ""


def _visible(
    clip: otio.schema.Clip, chain: list[otio.core.Composition]
) -> tuple[otio.opentime.RationalTime, otio.opentime.TimeRange]:
    """The clip's first visible source time, and where its visible frames sit in the top-level timeline.

    Walks up from the clip: its range in each parent is cut to the parent's
    own trimmed window (a stack or track's source_range), then moved to the
    parent's place in its own parent.
    """
    trimmed = clip.trimmed_range()
    source_start, duration = trimmed.start_time, trimmed.duration
    start = clip.range_in_parent().start_time  # in the parent's time
    for parent in chain:
        window = parent.trimmed_range()
        lo = max(start, window.start_time)
        hi = min(start + duration, window.end_time_exclusive())
        if hi <= lo:
            raise _Refused(f"it is trimmed out of view by {parent.name or type(parent).__name__!r}")
        source_start = source_start + (lo - start)
        duration = hi - lo
        start = lo - window.start_time
        if parent is not chain[-1]:
            start = start + parent.range_in_parent().start_time
    return source_start, otio.opentime.TimeRange(start, duration)


def _transition_note(clip: otio.schema.Clip) -> str:
    """Frames of a transition next to the clip come from beyond its cut and are not cleaned."""
    parent = clip.parent()
    if not isinstance(parent, otio.schema.Track):
        return ""
    before, after = parent.neighbors_of(clip)
    notes = []
    if isinstance(before, otio.schema.Transition):
        notes.append(
            f"transition {before.name or 'in'!r} shows {frames_at(before.in_offset, media_rate(clip))} frames before its cut"
        )
    if isinstance(after, otio.schema.Transition):
        notes.append(
            f"transition {after.name or 'out'!r} shows {frames_at(after.out_offset, media_rate(clip))} frames after its cut"
        )
    if not notes:
        return ""
    return (
        f"clip {clip.name!r}: the {' and the '.join(notes)}; those frames are not cleaned, "
        "and over the transition the cleaned layer shows this clip alone"
    )


def _clip_job(
    clip: otio.schema.Clip,
    chain: list[otio.core.Composition],
    track_index: int,
    base: Path,
    overwrite: bool,
    prompt: str,
    mask: str,
) -> ClipJob:
    for item in [clip, *chain]:
        if not item.enabled:
            raise _Refused("it is disabled" + ("" if item is clip else f" (its parent {item.name!r} is disabled)"))
    for item in [clip, *chain]:
        reason = _time_effect(item)
        if reason:
            raise _Refused(f"{reason}: PEANUT needs frames at 100% speed")
    ref = clip.media_reference
    if isinstance(ref, otio.schema.MissingReference) or ref is None:
        raise _Refused("no media (MissingReference); relink it in the editor")
    try:
        source_path = media_path(clip, base)
        mask_path = url_to_path(mask, base) if mask else ""
    except MediaNotFound as exc:
        raise _Refused(exc.message) from None
    if getattr(ref, "available_range", None) is None and clip.trimmed_range().start_time.value:
        # EDLs (and some XML) give only source timecode; where the media
        # starts is unknown, so source frame numbers would be guesses.
        raise _Refused(
            "the timeline does not say where its media starts (no available_range); "
            "export as .otio or FCP 7 XML from the editor"
        )
    source_start, placed = _visible(clip, chain)
    rate = media_rate(clip)
    start = frames_at(source_start, rate) - _media_start(clip, rate)
    end = start + frames_at(placed.duration, rate)
    if (
        start < 0
        or end <= start
        or (getattr(ref, "available_range", None) is not None and end > frames_at(ref.available_range.duration, rate))
    ):
        raise _Refused(f"it shows source frames {start}..{end - 1}, outside its media's available range")
    if not os.path.exists(source_path):
        raise _Refused(f"media not found: {source_path}")
    if mask_path and not os.path.exists(mask_path):
        raise _Refused(f"mask not found: {mask_path}")
    top = chain[-1]
    return ClipJob(
        index=0,
        track_index=track_index,
        track_name=top.name,
        clip_name=clip.name,
        source_path=source_path,
        start_frame=start,
        end_frame=end,
        rate=rate,
        prompt=prompt,
        mask_path=mask_path,
        overwrite=overwrite,
        range_in_parent=placed,
        clip=clip,
    )


def collect_clip_jobs(
    timeline: otio.schema.Timeline,
    base_dir: str | Path,
    overwrite: bool = False,
    refused: list[ClipRefusal] | None = None,
) -> list[ClipJob]:
    """Every clip of the timeline's video tracks (nested ones included) that carries a prompt or a mask.

    Jobs come in timeline order. A prompted clip that cannot be cleaned is
    appended to `refused` when a list is given; otherwise the first one
    raises InvalidRequest with its reason.
    """
    base = Path(base_dir)
    found: list[tuple[otio.opentime.RationalTime, int, ClipJob]] = []
    for track_index, track in enumerate(timeline.tracks):
        if track.kind != otio.schema.TrackKind.Video or track.name in (CLEANED_TRACK, MATTE_TRACK):
            continue
        for clip in track.find_clips():
            prompt = clip_prompt(clip)
            mask = _peanut_metadata(clip.metadata, "mask")
            # peanut.box: one "F:X,Y,W,H" or several separated by ";".
            boxes = tuple(b.strip() for b in _peanut_metadata(clip.metadata, "box").split(";") if b.strip())
            if not prompt and not mask and not boxes:
                continue
            chain = _ancestors(clip)
            if any(getattr(c, "kind", otio.schema.TrackKind.Video) != otio.schema.TrackKind.Video for c in chain):
                continue  # inside an audio track: not a picture
            try:
                job = _clip_job(clip, chain, track_index, base, overwrite, prompt, mask)
            except _Refused as exc:
                refusal = ClipRefusal(clip.name, _where(chain), str(exc))
                if refused is None:
                    raise InvalidRequest(f"clip {clip.name!r}: {exc}") from None
                refused.append(refusal)
                continue
            if boxes or _peanut_metadata(clip.metadata, "approximate"):
                job = replace(
                    job,
                    boxes=boxes,
                    approximate=_peanut_metadata(clip.metadata, "approximate").lower() in ("1", "true", "yes"),
                )
            found.append((job.range_in_parent.start_time, track_index, job))
    found.sort(key=lambda item: (item[0].to_seconds(), item[1]))
    return [_with_index(job, i) for i, (_, _, job) in enumerate(found)]


def _with_index(job: ClipJob, index: int) -> ClipJob:
    values = {name: getattr(job, name) for name in job.__dataclass_fields__}
    values["index"] = index
    return ClipJob(**values)


# -- building the result tracks ----------------------------------------------------------


def _result_reference(path: str, job: ClipJob, duration: otio.opentime.RationalTime) -> otio.core.MediaReference:
    rate = duration.rate
    if os.path.isdir(path):
        # Files are numbered by source frame (frame_{start+i:06d}.png), so the
        # sequence starts at the clip's first source frame.
        return otio.schema.ImageSequenceReference(
            target_url_base=Path(path).as_posix().rstrip("/") + "/",
            name_prefix=FRAME_PREFIX,
            name_suffix=FRAME_SUFFIX,
            start_frame=job.start_frame,
            frame_step=1,
            rate=rate,
            frame_zero_padding=FRAME_PADDING,
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(job.start_frame, rate), duration),
        )
    # A movie holds exactly the clip's frames, from its own frame 0.
    return otio.schema.ExternalReference(
        target_url=str(path),
        available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), duration),
    )


def _result_clip(job: ClipJob, path: str, kind: str, result: dict) -> otio.schema.Clip:
    duration = job.range_in_parent.duration
    if not _same_rate(duration.rate, job.rate):
        # The clip's range is written at another rate than its media (e.g. 50
        # frames at 15 over 30 fps media): the result holds the media's frames.
        duration = otio.opentime.RationalTime(job.frame_count, job.rate)
    reference = _result_reference(path, job, duration)
    return otio.schema.Clip(
        name=f"{job.clip_name} ({kind})",
        media_reference=reference,
        source_range=reference.available_range,
        metadata={
            METADATA_KEY: {
                "source_clip": job.clip_name,
                "source_track": job.track_name,
                "source_path": job.source_path,
                "start_frame": job.start_frame,
                "end_frame": job.end_frame,
                "prompt": job.prompt,
                "mask": job.mask_path,
                "backends": list(result.get("backends") or []),
            }
        },
    )


def _lanes(
    placed: list[tuple[otio.opentime.TimeRange, otio.schema.Clip]],
) -> list[list[tuple[otio.opentime.TimeRange, otio.schema.Clip]]]:
    """Spread clips over as few tracks as possible (clips from different tracks may overlap)."""
    lanes: list[list[tuple[otio.opentime.TimeRange, otio.schema.Clip]]] = []
    for item in sorted(placed, key=lambda p: p[0].start_time.to_seconds()):
        start = item[0].start_time.to_seconds()
        for lane in lanes:
            last = lane[-1][0]
            if last.end_time_exclusive().to_seconds() <= start + 1e-9:
                lane.append(item)
                break
        else:
            lanes.append([item])
    return lanes


def _build_tracks(name: str, placed: list[tuple[otio.opentime.TimeRange, otio.schema.Clip]]) -> list[otio.schema.Track]:
    tracks = []
    for number, lane in enumerate(_lanes(placed), start=1):
        track = otio.schema.Track(name=name if number == 1 else f"{name} {number}", kind=otio.schema.TrackKind.Video)
        cursor = otio.opentime.RationalTime(0, lane[0][0].start_time.rate)
        for in_parent, clip in lane:
            gap = in_parent.start_time - cursor
            if gap.value > 1e-9:
                track.append(
                    otio.schema.Gap(
                        source_range=otio.opentime.TimeRange(duration=gap.rescaled_to(in_parent.start_time.rate))
                    )
                )
            track.append(clip)
            cursor = in_parent.end_time_exclusive()
        tracks.append(track)
    return tracks


# -- files ------------------------------------------------------------------------


def read_timeline(path: str | Path) -> otio.schema.Timeline:
    """Read a timeline with the adapter its extension names (.otio, .xml, .fcpxml, .edl, ...)."""
    path = Path(path)
    if not path.is_file():
        raise MediaNotFound(f"timeline not found: {path}")
    try:
        result = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # adapters raise their own types; the user needs the one line
        raise InvalidRequest(f"cannot read timeline {path.name}: {exc}") from None
    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = (
        list(result.find_children(descended_from_type=otio.schema.Timeline)) if hasattr(result, "find_children") else []
    )
    if not timelines:
        raise InvalidRequest(f"{path.name} holds no timeline")
    if len(timelines) > 1:
        log.warning("%s holds %d timelines; using the first", path.name, len(timelines))
    return timelines[0]


def write_timeline(timeline: otio.schema.Timeline, path: str | Path, overwrite: bool = False) -> None:
    """Write atomically, with the adapter the extension names; refuse formats that cannot hold it."""
    path = Path(path)
    _no_link(path, "the output timeline")
    if os.path.lexists(path) and not overwrite:
        raise OutputExists(f"{path} exists; pass --overwrite to replace it")
    try:
        adapter = otio.adapters.from_filepath(str(path))
    except Exception:
        raise OutputError(f"no OTIO adapter writes {path.suffix!r} files; use .otio") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        otio.adapters.write_to_file(timeline, temporary, adapter_name=adapter.name)
        os.replace(temporary, path)
    except Exception as exc:
        os.unlink(temporary)
        raise OutputError(
            f"the {adapter.name} adapter cannot hold this timeline ({exc}); write .otio instead"
        ) from None


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit] or "clip"


def _no_link(path: str | Path, what: str) -> None:
    """Refuse a destination that is a symbolic link (dangling or not): writing would land elsewhere."""
    if os.path.islink(path):
        raise OutputError(f"{what} {path} is a symbolic link; PEANUT does not write through links")


def check_destination(output_path: str | Path, media: str | Path) -> None:
    """The output timeline and the media folder must not be links (nor the folders made inside it)."""
    _no_link(output_path, "the output timeline")
    _no_link(media, "the media folder")


def _run_clips_in_turn(
    jobs: list[ClipJob], places: list[tuple[str, str]], run_clip: RunClip, reporter: Reporter
) -> Iterator[dict[str, Any]]:
    for job, (out, matte) in zip(jobs, places):
        reporter.check()
        log.info(
            "clip %d/%d %r: source frames %d..%d",
            job.index + 1,
            len(jobs),
            job.clip_name,
            job.start_frame,
            job.end_frame - 1,
        )
        reporter.stage(f"clip {job.index + 1}/{len(jobs)}: {job.clip_name}", total=job.frame_count)
        yield run_clip(job, out, matte, reporter)


def _run_clips_at_once(
    jobs: list[ClipJob], places: list[tuple[str, str]], run_clip: RunClip, reporter: Reporter, parallel: int
) -> list[dict[str, Any]]:
    """Up to `parallel` clips at once, each with a Reporter of its own.

    The clips' reporters share the job's interrupt and get a cancel of their own,
    set when the job is cancelled or a clip fails, so one failure stops the rest.
    Progress counts finished clips' frames.
    """
    stop = threading.Event()
    reporters = [
        Reporter(cancel_event=stop, interrupt_event=reporter.interrupt_event, warn_callback=reporter.warn_callback)
        for _ in jobs
    ]
    reporter.stage(f"{len(jobs)} clips, {min(parallel, len(jobs))} at a time", total=sum(j.frame_count for j in jobs))
    with ThreadPoolExecutor(max_workers=min(parallel, len(jobs)), thread_name_prefix="peanut-clip") as pool:
        futures = [
            pool.submit(run_clip, job, out, matte, clip_reporter)
            for job, (out, matte), clip_reporter in zip(jobs, places, reporters)
        ]
        pending = set(futures)

        def stop_all() -> None:
            for future in futures:
                future.cancel()  # those not started never start (first: a stopped clip frees a thread)
            stop.set()  # the clips running stop at their next check

        try:
            while pending:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                if reporter.cancel_event.is_set():
                    stop_all()
                for future in finished:
                    if future.cancelled() or future.exception() is not None:
                        stop_all()
                    else:
                        reporter.advance(jobs[futures.index(future)].frame_count)
        finally:
            if pending:  # left early (the job cancelled or interrupted): the clips still running stop
                stop_all()
    if reporter.cancel_event.is_set():
        reporter.check()
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    # A clip's own failure first; the JobCancelled of those it stopped only when nothing else failed.
    errors.sort(key=lambda e: isinstance(e, JobCancelled))
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


def run_timeline(
    timeline_path: str | Path,
    output_path: str | Path,
    media_dir: str | Path | None,
    overwrite: bool,
    run_clip: RunClip,
    reporter: Reporter | None = None,
    parallel: int = 1,
) -> TimelineResult:
    """Clean every prompted clip of a timeline and write it with the result tracks added.

    `run_clip(job, output_path, matte_path, reporter)` runs the pipeline on one
    clip and returns {"output_path", "matte_path", "frame_count", "backends"}.
    `parallel` > 1 runs that many clips at once (the Ray executor: the clips'
    tasks then share the cluster); results are placed in timeline order either way.
    Prompted clips that cannot be cleaned are reported through
    `reporter.warn` (NOT_CLEANED_PREFIX) and listed in the result and in the
    output timeline; when no clip can be cleaned, InvalidRequest names them all.
    """
    reporter = reporter or Reporter()
    timeline_path = Path(timeline_path).resolve()
    # abspath, not resolve(): a link at the destination must be seen, not followed.
    output_path = Path(os.path.abspath(output_path))
    media = Path(os.path.abspath(media_dir)) if media_dir else output_path.with_name(output_path.stem + "_media")
    if os.path.realpath(output_path) == str(timeline_path):
        raise OutputError("the output timeline must not replace the input timeline")
    check_destination(output_path, media)
    if os.path.lexists(output_path) and not overwrite:
        raise OutputExists(f"{output_path} exists; pass --overwrite to replace it")
    if output_path.suffix.lower() != ".otio":
        otio.adapters.from_filepath(str(output_path))  # unknown extension: fail before the work

    timeline = read_timeline(timeline_path)
    refused: list[ClipRefusal] = []
    jobs = collect_clip_jobs(timeline, timeline_path.parent, overwrite, refused)
    if not jobs and not refused:
        raise InvalidRequest(
            f"no clip in {timeline_path.name} carries a prompt (a marker named 'peanut') "
            "or metadata peanut.prompt / peanut.mask"
        )
    if not jobs:
        raise InvalidRequest(
            "no prompted clip can be cleaned: "
            + "; ".join(f"clip {r.clip_name!r} {r.where}: {r.reason}" for r in refused)
        )
    for job in jobs:
        if os.path.isdir(job.source_path) and _inside(str(media), job.source_path):
            raise OutputError(f"media folder {media} is inside the source folder {job.source_path}")
    for refusal in refused:
        reporter.warn(refusal.message())
    for job in jobs:
        note = _transition_note(job.clip)
        if note:
            reporter.warn(note)

    cleaned: list[tuple[otio.opentime.TimeRange, otio.schema.Clip]] = []
    mattes: list[tuple[otio.opentime.TimeRange, otio.schema.Clip]] = []
    results: list[dict[str, Any]] = []
    output_files: list[str] = []
    places = []
    for job in jobs:
        folder = media / f"{job.index + 1:03d}_{_slug(job.clip_name)}"
        out, matte = str(folder / "cleaned"), str(folder / "matte")
        for path, what in ((folder, "the clip folder"), (out, "the cleaned folder"), (matte, "the matte folder")):
            _no_link(path, what)
        places.append((out, matte))
    if parallel > 1 and len(jobs) > 1:
        ran = _run_clips_at_once(jobs, places, run_clip, reporter, parallel)
    else:
        ran = _run_clips_in_turn(jobs, places, run_clip, reporter)
    for job, result in zip(jobs, ran):
        if int(result.get("frame_count", job.frame_count)) != job.frame_count:
            raise OutputError(
                f"clip {job.clip_name!r}: expected {job.frame_count} frames, the pipeline wrote {result.get('frame_count')}"
            )
        cleaned.append((job.range_in_parent, _result_clip(job, result["output_path"], "PEANUT cleaned", result)))
        if result.get("matte_path"):
            mattes.append((job.range_in_parent, _result_clip(job, result["matte_path"], "PEANUT matte", result)))
            output_files.append(result["matte_path"])
        output_files.append(result["output_path"])
        results.append({**result, "clip": job.clip_name, "start_frame": job.start_frame, "end_frame": job.end_frame})

    for track in _build_tracks(CLEANED_TRACK, cleaned) + (_build_tracks(MATTE_TRACK, mattes) if mattes else []):
        timeline.tracks.append(track)
    if refused:
        # In the written timeline too, so whoever opens it can see what was left as it was.
        peanut = dict(timeline.metadata.get(METADATA_KEY, {}) or {})
        peanut["not_cleaned"] = [{"clip": r.clip_name, "where": r.where, "reason": r.reason} for r in refused]
        timeline.metadata[METADATA_KEY] = peanut
    write_timeline(timeline, output_path, overwrite=overwrite)
    return TimelineResult(
        output_path=str(output_path),
        clips=results,
        output_files=output_files,
        frame_count=sum(job.frame_count for job in jobs),
        refused=refused,
    )
