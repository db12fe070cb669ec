"""Strip arithmetic and naming, with no bpy and no grpc.

Kept free of Blender imports so the frame-range rules can be unit-tested in
any Python and reused by the operators. Everything here takes plain values
read off a strip by the caller.

Frame model of a Blender movie or image strip (checked against bpy 5.0.1):

    content frame k of the strip sits at timeline frame  frame_start + k
    content frame k is source frame                      animation_offset_start + k
    visible timeline frames                              [frame_final_start, frame_final_end)
    frame_final_start = frame_start + frame_offset_start

so the first visible source frame is animation_offset_start + frame_offset_start
and the strip shows frame_final_duration consecutive source frames, provided
the strip plays its media at the scene rate (no retiming, strobe or reversal).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp", ".dpx", ".tga")
MAX_CHANNEL = 128  # Blender's sequencer has channels 1..128
NAME_LIMIT = 63  # Blender ID / strip names hold 63 bytes


class StripError(Exception):
    """A strip PEANUT cannot process as it is; the message tells the user why."""


@dataclass(frozen=True)
class StripTiming:
    """The timing fields of a strip, copied off the bpy object."""

    frame_start: float
    frame_final_start: int
    frame_final_end: int
    frame_offset_start: float
    frame_offset_end: float
    animation_offset_start: int = 0
    media_fps: float | None = None  # movie strips only
    scene_fps: float = 24.0
    reversed: bool = False
    strobe: float = 1.0
    retimed: bool = False


@dataclass(frozen=True)
class SourceRange:
    """What to ask the daemon for, and where the result goes on the timeline."""

    path: str  # video file or frame folder, absolute
    start: int  # first source frame, inclusive (daemon numbering: 0-based as decoded)
    end: int  # exclusive
    timeline_start: int  # timeline frame the first visible frame sits on
    warnings: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.end - self.start

    def source_frame(self, timeline_frame: int) -> int | None:
        """The source frame the strip shows on a timeline frame (None where it shows none)."""
        if not self.timeline_start <= timeline_frame < self.timeline_start + self.length:
            return None
        return self.start + timeline_frame - self.timeline_start


def visible_range(t: StripTiming) -> tuple[int, int, int]:
    """(first source frame shown, number of frames shown, timeline frame of the first one).

    Raises StripError for strips whose frames are not a plain 1:1 run of the
    media, since the cleaned frames could not be laid back frame for frame.
    """
    if t.retimed:
        raise StripError("the strip is retimed (speed keys); remove the retiming or render it to a clip first")
    if t.reversed:
        raise StripError("the strip plays reversed; PEANUT needs it playing forwards")
    if t.strobe > 1.0 + 1e-6:  # 0 and 1 both mean "no strobe" (bpy.types strips default to 0)
        raise StripError("the strip uses strobe; set Strobe to 1 first")
    if t.media_fps is not None and t.media_fps > 0 and abs(t.media_fps - t.scene_fps) > 1e-3:
        # Blender then maps timeline frames to media frames by time, not 1:1; the
        # cleaned PNG sequence would play at the scene rate and drift.
        raise StripError(
            f"the movie plays at {t.media_fps:g} fps but the scene at {t.scene_fps:g} fps; "
            "set the scene frame rate to the movie's (Properties > Output > Frame Rate)"
        )
    if t.frame_offset_start < 0 or t.frame_offset_end < 0:
        raise StripError("the strip is extended past its media (held frames); trim it to the media first")
    if abs(t.frame_start - round(t.frame_start)) > 1e-6:
        raise StripError("the strip starts on a sub-frame; snap it to a whole frame first")
    length = int(t.frame_final_end) - int(t.frame_final_start)
    if length <= 0:
        raise StripError("the strip shows no frames")
    first = int(round(t.animation_offset_start + t.frame_offset_start))
    return first, length, int(t.frame_final_start)


def natural_key(name: str) -> list:
    """Sort key that orders frame_2 before frame_10 (as the daemon orders frame folders)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def folder_frames(directory: str) -> list[str]:
    """Image files of a frame folder in the daemon's order (natural sort)."""
    names = [n for n in os.listdir(directory) if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
    return sorted(names, key=natural_key)


def image_strip_range(directory: str, elements: list[str], t: StripTiming) -> SourceRange:
    """Source range of an image strip: its elements must be a contiguous run of the folder."""
    first, length, timeline_start = visible_range(t)
    shown = elements[first : first + length]
    if len(shown) != length:
        raise StripError("the strip shows more frames than it has images")
    folder = folder_frames(directory)
    try:
        index = folder.index(shown[0])
    except ValueError:
        raise StripError(f"{shown[0]} is missing from {directory}") from None
    if folder[index : index + length] != shown:
        raise StripError(
            "the strip's images are not a contiguous, sorted run of its folder's images; "
            "put the sequence in a folder of its own"
        )
    return SourceRange(os.path.abspath(directory), index, index + length, timeline_start)


def movie_strip_range(filepath: str, t: StripTiming) -> SourceRange:
    first, length, timeline_start = visible_range(t)
    return SourceRange(os.path.abspath(filepath), first, first + length, timeline_start)


def first_free_channel(occupied: list[tuple[int, int, int]], above: int, start: int, end: int) -> int:
    """Lowest channel > `above` with no strip overlapping timeline frames [start, end).

    `occupied` holds (channel, frame_final_start, frame_final_end) of every strip
    at the same level (top level or the same meta strip).
    """
    for channel in range(above + 1, MAX_CHANNEL + 1):
        if not any(c == channel and s < end and start < e for c, s, e in occupied):
            return channel
    raise StripError(f"no free channel above channel {above} for frames {start}-{end - 1}")


def slug(text: str, limit: int = 40) -> str:
    """File-name-safe short form of a prompt or strip name."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("._")
    return (out or "mask")[:limit]


def result_name(source_name: str, prompt: str, kind: str = "") -> str:
    """'<source> - <prompt>' (+ ' matte'), cut to Blender's name limit."""
    what = prompt.strip() or "mask"
    suffix = f" {kind}" if kind else ""
    name = f"{source_name} - {what}"
    room = NAME_LIMIT - len(suffix.encode())
    while len(name.encode()) > room:
        name = name[:-1]
    return name + suffix


def unique_output_dir(base: str, source_name: str, prompt: str) -> str:
    """A folder path under `base` that does not exist yet (nor its matte sibling)."""
    stem = os.path.join(base, f"{slug(source_name)}_{slug(prompt)}")
    candidate, n = stem, 1
    while os.path.exists(candidate) or os.path.exists(candidate + "_matte"):
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


def sequence_files(folder: str, start: int, count: int) -> list[str]:
    """The daemon's output file names: frame_%06d.png numbered by source frame."""
    return [f"frame_{start + i:06d}.png" for i in range(count)]


def format_eta(seconds: float) -> str:
    if seconds is None or seconds < 0:
        return "ETA unknown"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"ETA {seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"ETA {minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}h{minutes:02d}m"


# -- a Blender Mask datablock as the first-frame mask (pure Python: the add-on imports no numpy) ------


def bezier_polygon(
    points: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]], steps: int = 12
) -> list[tuple[float, float]]:
    """A closed spline's outline: points are (handle_left, co, handle_right); cubic segments sampled."""
    out: list[tuple[float, float]] = []
    n = len(points)
    for i in range(n):
        _, p0, h0 = points[i]
        h1, p1, _ = points[(i + 1) % n]
        for k in range(steps):
            t = k / steps
            a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
            out.append((a * p0[0] + b * h0[0] + c * h1[0] + d * p1[0], a * p0[1] + b * h0[1] + c * h1[1] + d * p1[1]))
    return out


def rasterize(polygons: list[list[tuple[float, float]]], width: int, height: int) -> list[bytearray]:
    """Rows (top first) of a 0/255 mask: even-odd fill of the polygons, given in pixel coordinates
    (x right, y down), sampled at pixel centres. Work is per row and per edge, not per pixel."""
    rows = [bytearray(width) for _ in range(height)]
    edges = [(poly[i], poly[(i + 1) % len(poly)]) for poly in polygons if len(poly) >= 3 for i in range(len(poly))]
    for y in range(height):
        yc = y + 0.5
        xs = sorted(x0 + (yc - y0) * (x1 - x0) / (y1 - y0) for (x0, y0), (x1, y1) in edges if (y0 <= yc) != (y1 <= yc))
        row = rows[y]
        for a, b in zip(xs[0::2], xs[1::2]):
            lo, hi = max(0, int(a + 0.5)), min(width, int(b + 0.5))
            if hi > lo:
                row[lo:hi] = b"\xff" * (hi - lo)
    return rows


def write_grey_png(path: str, rows: list[bytearray]) -> None:
    """An 8-bit greyscale PNG, written with the standard library."""
    import struct
    import zlib

    height, width = len(rows), len(rows[0]) if rows else 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    with open(path, "wb") as f:
        f.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


Box = tuple[int, int, int, int]  # x, y, w, h in source pixels


def kept_boxes(items, strip: str) -> list[tuple[int, Box]]:
    """The boxes kept for the strip named `strip`, as (source frame, box), in frame order.
    `items` are the scene's kept boxes (each with .strip, .frame and .box)."""
    return sorted((k.frame, tuple(k.box)) for k in items if k.strip == strip)


def job_boxes(
    here: int | None, current: Box | None, kept: list[tuple[int, Box]], mask_frame: int | None, rng: SourceRange
) -> tuple[list[tuple[int, Box]], str]:
    """The kept boxes a job sends beside the current frame's box or drawn mask, in frame order,
    and an empty string; or [] and what is wrong. The current box (on source frame `here`) replaces
    a kept one on its frame."""
    others = sorted((frame, box) for frame, box in kept if current is None or frame != here)
    for frame, _ in others:
        if not rng.start <= frame < rng.end:
            return [], f"the box kept on source frame {frame} is outside the strip ({rng.start}-{rng.end - 1})"
        if mask_frame is not None and frame <= mask_frame:
            return [], (
                f"the box kept on source frame {frame} comes before the drawn mask's frame ({mask_frame}): "
                f"with a mask, boxes correct later frames only"
            )
    return others, ""


def box_in_source(box: tuple[int, int, int, int], width: int, height: int) -> str:
    """An empty string when the box (x, y, w, h, source pixels) fits the frame, else what is wrong."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return "the box needs a width and a height"
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return f"the box {x},{y},{w},{h} reaches outside the {width}x{height} frame"
    return ""
