"""Frame-accurate sources: video files through PyAV, frame folders through OpenCV.

Frame identity is by timestamp, never by counting decoded frames after a seek:
opening a video demuxes it once (cheap, no decoding) and builds a table of the
presentation timestamps of every frame. Frame i is the i-th smallest pts. A
range read seeks to the last keyframe whose pts is at or before the first
wanted frame, decodes forward and keeps the frames whose pts map to the range.
This holds for B-frames, open GOPs (leading frames that follow their keyframe in
decode order but precede it on screen), and clips whose first pts is not 0.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

# OpenCV only reads EXR when asked to; it reads the variable lazily, so set it before use.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import MediaError, MediaNotFound, RangeError  # noqa: E402
from .types import SWSCALE_THREADS, MediaInfo, VideoSource  # noqa: E402

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp")
FOLDER_FPS = Fraction(25)


def natural_key(name: str) -> list[object]:
    """Sort key that orders frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(directory: str | os.PathLike[str]) -> list[str]:
    """Image file names in `directory` (hidden files skipped), naturally sorted."""
    names = [
        n
        for n in os.listdir(directory)
        if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(directory, n))
    ]
    return sorted(names, key=natural_key)


def read_image_rgb(path: str) -> np.ndarray:
    """Any image OpenCV reads, as RGB uint8 (H, W, 3): alpha dropped, 16-bit and float scaled."""
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        if path.lower().endswith(".exr") and not _opencv_reads_exr():
            raise MediaError(f"{path}: this OpenCV build cannot read EXR; convert the frames to 16-bit TIFF or PNG")
        raise MediaError(f"{path}: not a readable image (corrupt or unsupported format)")
    image = to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _opencv_reads_exr() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("OpenEXR:"):
            return line.split(":", 1)[1].strip() != "NO"
    return False


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype.kind == "f":
        # EXR and float TIFF: scene values are taken as display values in 0..1 (no tone mapping).
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise MediaError(f"unsupported image sample type {image.dtype}")


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image; reads only the header where Pillow can."""
    try:
        from PIL import Image  # header-only reads make checking big folders cheap

        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any failure: fall back to a full OpenCV read
        h, w = read_image_rgb(path).shape[:2]
        return w, h


# --------------------------------------------------------------------------- probe


def probe(path: str) -> MediaInfo:
    """Describe a video file or a frame folder, with an exact frame count.

    Raises MediaNotFound for a missing path and MediaError for anything that
    cannot be read as a clip; messages name the file and the problem.
    """
    path = str(path)
    if not os.path.exists(path):
        raise MediaNotFound(f"{path}: no such file or folder")
    if os.path.isdir(path):
        return _probe_folder(path)
    return _VideoIndex.build(path).info


def _probe_folder(path: str) -> MediaInfo:
    try:
        names = list_images(path)
    except OSError as exc:
        raise MediaError(f"{path}: folder cannot be listed ({exc.strerror})") from exc
    if not names:
        raise MediaError(f"{path}: folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
    first = read_image_rgb(os.path.join(path, names[0]))  # decodes: proves the format is readable
    height, width = first.shape[:2]
    for name in names[1:]:
        file = os.path.join(path, name)
        if os.path.getsize(file) == 0:
            raise MediaError(f"{file}: file is empty (0 bytes)")
        size = _image_size(file)
        if size != (width, height):
            raise MediaError(
                f"{file}: image is {size[0]}x{size[1]} but {names[0]} is "
                f"{width}x{height}; all frames of a folder must have one size"
            )
    return MediaInfo(
        path=path,
        width=width,
        height=height,
        frame_count=len(names),
        fps=FOLDER_FPS,
        is_folder=True,
        codec=Path(names[0]).suffix.lstrip(".").lower(),
        pix_fmt="rgb24",
        frame_files=tuple(names),
    )


@dataclass
class _VideoIndex:
    """Everything learned from one demux pass over a video file."""

    info: MediaInfo
    stream_index: int
    frame_pts: list[int]  # presentation timestamps, sorted: frame i has frame_pts[i]
    key_pts: list[int]  # keyframe pts, in decode order
    key_seek: list[int]  # timestamp to seek to for each keyframe (min of pts, dts)
    pts_to_index: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pts_to_index = {p: i for i, p in enumerate(self.frame_pts)}

    @classmethod
    def build(cls, path: str) -> _VideoIndex:
        if os.path.getsize(path) == 0:
            raise MediaError(f"{path}: file is empty (0 bytes)")
        try:
            container = av.open(path)
        except (av.FFmpegError, OSError) as exc:  # OSError: permissions, I/O errors
            raise MediaError(f"{path}: not a readable media file ({_reason(exc)})") from exc
        try:
            return cls._build(path, container)
        finally:
            container.close()

    @classmethod
    def _build(cls, path: str, container: av.container.InputContainer) -> _VideoIndex:
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        frame_pts: list[int] = []
        key_pts: list[int] = []
        key_seek: list[int] = []
        missing_pts = 0
        try:
            for packet in container.demux(stream):
                # Empty packets flush the demuxer; discarded ones lie outside the edit list
                # (decoded only as references, never shown).
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    missing_pts += 1
                    continue
                frame_pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
                    key_seek.append(min(packet.pts, packet.dts if packet.dts is not None else packet.pts))
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: corrupt video data after {len(frame_pts)} frames ({_reason(exc)})") from exc
        if missing_pts:
            # Raw elementary streams carry no timestamps: such a file cannot be seeked
            # frame-accurately, and guessing would silently shift frames.
            raise MediaError(
                f"{path}: {missing_pts} video packets have no timestamps "
                "(raw stream?); remux it into .mov/.mkv/.mp4 first"
            )
        if not frame_pts:
            raise MediaError(f"{path}: video stream has no frames")
        frame_pts.sort()
        if len(set(frame_pts)) != len(frame_pts):
            raise MediaError(f"{path}: several video frames share one timestamp; cannot index frames")
        if not key_pts:
            raise MediaError(f"{path}: video stream has no keyframe")
        fps = _stream_fps(stream, frame_pts)
        declared = stream.frames
        if declared and declared != len(frame_pts):
            log.info(
                "%s: container declares %d frames, %d found by demuxing; using %d",
                path,
                declared,
                len(frame_pts),
                len(frame_pts),
            )
        if not declared:
            # No frame count in the header (Matroska, MPEG-TS): a duration written at the end
            # of a complete file tells whether frames went missing (truncation, damage).
            duration = _declared_duration(container, stream)
            if duration is not None and len(frame_pts) < int(duration * fps + Fraction(1, 2)):
                raise MediaError(
                    f"{path}: only {len(frame_pts)} of {int(duration * fps + Fraction(1, 2))} "
                    f"frames are readable; the file is truncated or damaged"
                )
        info = MediaInfo(
            path=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frame_count=len(frame_pts),
            fps=fps,
            is_folder=False,
            time_base=stream.time_base,
            start_pts=frame_pts[0],
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
        )
        index = cls(info, stream.index, frame_pts, key_pts, key_seek)
        # Decode the first frame (real size, pixel format, rotation) and the last one:
        # a damaged start or a truncated end shows up now, not at the end of a job.
        first = next(_decode_range(index, container, stream, 0, 1))[1]
        depth = max((c.bits for c in first.format.components), default=8)
        # Frames always leave as 8-bit RGB; the format says so when precision is lost.
        pix_fmt = first.format.name if depth <= 8 else f"{first.format.name}->rgb24"
        rotation = int(round(first.rotation or 0)) % 360
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        index.info = replace(info, width=width, height=height, pix_fmt=pix_fmt, rotation=rotation)
        last = len(frame_pts) - 1
        if last > 0:
            for _ in _decode_range(index, container, stream, last, last + 1):
                pass
        return index


def _declared_duration(container: av.container.InputContainer, stream: av.VideoStream) -> Fraction | None:
    """Duration of the video stream as written by the muxer (Matroska), in seconds.

    Only Matroska is trusted here: other containers without a frame count get a
    duration that FFmpeg estimates (from the bit rate, say), too rough to judge by.
    """
    if "matroska" not in container.format.name:
        return None
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag.strip())
        if match:
            h, m, sec = match.groups()
            return Fraction(int(h) * 3600 + int(m) * 60) + Fraction(sec)
    if len(container.streams) == 1 and container.duration:
        return Fraction(container.duration, av.time_base)
    return None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _stream_fps(stream: av.VideoStream, frame_pts: list[int]) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if rate:
        return Fraction(rate)
    if len(frame_pts) > 1 and stream.time_base:
        span = (frame_pts[-1] - frame_pts[0]) * stream.time_base
        return Fraction(len(frame_pts) - 1) / span if span else FOLDER_FPS
    return FOLDER_FPS


def _seek_start(container: av.container.InputContainer, stream: av.VideoStream, index: _VideoIndex) -> None:
    # The first keyframe's smallest timestamp, seeking backward, rewinds to the first packet.
    container.seek(index.key_seek[0], stream=stream, backward=True, any_frame=False)


# --------------------------------------------------------------------------- decoding


def _decode_range(
    index: _VideoIndex, container: av.container.InputContainer, stream: av.VideoStream, start: int, end: int
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (i, frame) for i in start..end-1, checking that none is missing."""
    path = index.info.path
    target = index.frame_pts[start]
    pts_to_index = index.pts_to_index
    # Keyframes in decode order; take the last one shown at or before the target.
    # Open-GOP leading frames (pts below their keyframe's) then come from the previous
    # GOP's keyframe, whose references are all decoded on the way.
    candidates = [k for k, p in enumerate(index.key_pts) if p <= target]
    k = candidates[-1] if candidates else 0
    expected = start
    while True:
        if k == 0:
            _seek_start(container, stream, index)
        else:
            container.seek(index.key_seek[k], stream=stream, backward=True, any_frame=False)
        restarted = False
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.pts is None:
                        continue
                    i = pts_to_index.get(frame.pts)
                    if i is None:
                        log.debug("%s: decoded frame with pts %d not in the index", path, frame.pts)
                        continue
                    if i < expected:
                        continue
                    if frame.is_corrupt:
                        raise MediaError(f"{path}: frame {i} is damaged (corrupt video data)")
                    if i > expected:
                        if expected == start and k > 0 and not restarted:
                            # The seek landed after the target (demuxer index coarser than
                            # ours): go back one keyframe and try again.
                            restarted = True
                            break
                        raise MediaError(f"{path}: frame {expected} cannot be decoded (corrupt or missing data)")
                    yield i, frame
                    expected += 1
                    if expected >= end:
                        return
                if restarted:
                    break
        except av.FFmpegError as exc:
            raise MediaError(f"{path}: decoding failed near frame {expected} ({_reason(exc)})") from exc
        if restarted:
            k -= 1
            continue
        raise MediaError(f"{path}: frames {expected}..{end - 1} cannot be decoded (file ends early or is corrupt)")


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    # Display matrices count counter-clockwise degrees; np.rot90 turns counter-clockwise.
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))


class VideoFileSource(VideoSource):
    """A video file opened once; consecutive ranges continue decoding without seeking."""

    def __init__(self, path: str) -> None:
        self._index = _VideoIndex.build(path)
        self.info = self._index.info
        self._container = av.open(path)
        self._stream = self._container.streams.video[self._index.stream_index]
        self._stream.thread_type = "AUTO"
        self._running: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._next = -1

    def frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        start, end = validate_range(self.info, start, end)
        return self._frames(start, end)

    def _frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        if self._running is None or self._next != start:
            # A new decode run to the end of the clip, so the next range can continue it.
            self._running = _decode_range(self._index, self._container, self._stream, start, self.info.frame_count)
        running = self._running
        for i in range(start, end):
            if self._running is not running:
                # One container, one decode position: a second reader moved it.
                raise RuntimeError(
                    f"{self.info.path}: another frames() call took over this source; "
                    "open one source per concurrent reader"
                )
            try:
                got, frame = next(running)
            except StopIteration:  # pragma: no cover - _decode_range raises instead
                raise MediaError(f"{self.info.path}: frame {i} cannot be decoded") from None
            assert got == i
            self._next = i + 1
            # One swscale thread: its threaded conversions race (see types.SWSCALE_THREADS).
            yield _rotate(frame.to_ndarray(format="rgb24", threads=SWSCALE_THREADS), self.info.rotation)

    def close(self) -> None:
        self._running = None
        self._container.close()


class FolderSource(VideoSource):
    def __init__(self, path: str) -> None:
        self.info = probe(path)

    def frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        start, end = validate_range(self.info, start, end)
        return self._frames(start, end)

    def _frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        for name in self.info.frame_files[start:end]:
            file = os.path.join(self.info.path, name)
            if not os.path.exists(file):
                raise MediaNotFound(f"{file}: frame file disappeared")
            image = read_image_rgb(file)
            if image.shape[:2] != (self.info.height, self.info.width):
                raise MediaError(
                    f"{file}: image is {image.shape[1]}x{image.shape[0]}, expected {self.info.width}x{self.info.height}"
                )
            yield image


def open_source(path: str) -> VideoSource:
    """Open a video file or frame folder for frame-accurate range reads."""
    path = str(path)
    if not os.path.exists(path):
        raise MediaNotFound(f"{path}: no such file or folder")
    if os.path.isdir(path):
        return FolderSource(path)
    return VideoFileSource(path)


def validate_range(info: MediaInfo, start: int, end: int | None) -> tuple[int, int]:
    """Check a frame range against the clip: end is exclusive, None means to the end."""
    n = info.frame_count
    if end is None:
        end = n
    name = os.path.basename(info.path.rstrip(os.sep)) or info.path
    if start < 0:
        raise RangeError(f"start frame {start} is negative ({name} has {n} frames, 0..{n - 1})")
    if end > n:
        raise RangeError(
            f"end frame {end} is past the end of {name}, which has {n} frames "
            f"(0..{n - 1}; end is exclusive, at most {n})"
        )
    if end <= start:
        raise RangeError(f"empty range {start}..{end} (end is exclusive; {name} has {n} frames)")
    return start, end
