"""Synthetic clips for tests: frames that carry their own index, and a moving object.

Other test modules import these helpers, so they stay small and documented:

- `make_index_clip(path, n)` writes a video whose frame i shows the binary code
  of i as a grid of big black/white blocks. The blocks are large (whole frame
  split into 4 x 4 cells) and full contrast, so the code survives lossy codecs
  (H.264/HEVC/ProRes, 4:2:0 chroma) and `decode_index(frame)` reads it back.
- `make_index_folder(dir, n)` writes the same frames as a PNG folder, named
  frame_0.png, frame_1.png, ... without zero padding (so natural sorting matters).
- `make_object_clip(dir, background)` writes a disc moving over a real still
  background, its ground-truth masks, and the clean background frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from peanut_server.masker import FramePrompt, MaskPrompt
from peanut_server.masker.candidates import bounding_box

GRID = 4  # GRID x GRID cells, one bit each: up to 2**16 frames
BITS = GRID * GRID


def index_frame(index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """RGB uint8 (h, w, 3) frame whose cells spell `index` in binary (cell 0 = bit 0)."""
    w, h = size
    if not 0 <= index < 2**BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    frame = np.zeros((h, w, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            r, c = divmod(bit, GRID)
            frame[r * h // GRID : (r + 1) * h // GRID, c * w // GRID : (c + 1) * w // GRID] = 255
    # A faint colour tint per cell keeps chroma planes busy (so 4:2:0 paths are exercised)
    # without moving any cell across the 127 threshold.
    frame[..., 0] = np.where(frame[..., 0] > 127, 235, 20)
    return frame


def decode_index(frame: np.ndarray) -> int:
    """Read back the index drawn by `index_frame` (RGB or grey, any size, lossy-safe)."""
    grey = frame.mean(axis=2) if frame.ndim == 3 else frame.astype(np.float64)
    h, w = grey.shape
    value = 0
    for bit in range(BITS):
        r, c = divmod(bit, GRID)
        y0, y1 = r * h // GRID, (r + 1) * h // GRID
        x0, x1 = c * w // GRID, (c + 1) * w // GRID
        # Only the centre half of each cell: edges blur under lossy coding.
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        if grey[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean() > 127:
            value |= 1 << bit
    return value


def make_index_clip(
    path: str | Path,
    n_frames: int,
    size: tuple[int, int] = (64, 48),
    fps: int | Fraction = 25,
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    open_gop: bool = False,
    start_pts: int = 0,
    time_base: Fraction | None = None,
    pix_fmt: str | None = None,
    audio: bool = False,
    audio_rate: int = 8000,
    rotation: int = 0,
) -> Path:
    """Write a clip whose frame i encodes i; the container comes from the extension.

    `start_pts` shifts every timestamp (in `time_base`, default 1/(fps*100)), so the
    first frame does not sit at 0. `audio` adds a mono track (AAC in .mp4, PCM
    elsewhere) whose samples during frame k are the constant 100 * (k % 200), so a
    test can tell which frame's time range a piece of audio came from.
    """
    path = Path(path)
    fps = Fraction(fps)
    if time_base is None:
        # 1/(100 fps) for integer rates; 1/numerator for NTSC-style rates (30000/1001 -> 1/30000).
        time_base = Fraction(1, fps.numerator * 100) if fps.denominator == 1 else Fraction(1, fps.numerator)
    tb = time_base
    options: dict[str, str] = {}
    if codec == "libx264":
        options = {
            "crf": "12",
            "preset": "ultrafast" if bframes == 0 else "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop={int(open_gop)}",
        }
        if bframes:
            options["x264-params"] += ":b-pyramid=normal"
    elif codec == "libx265":
        options = {
            "crf": "12",
            "preset": "ultrafast",
            "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
            f":open-gop={int(open_gop)}:log-level=error",
        }
    elif codec == "prores_ks":
        options = {"profile": "hq"}
    default_fmt = {"prores_ks": "yuv422p10le", "ffv1": "bgr0", "mpeg4": "yuv420p"}.get(codec, "yuv420p")
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps, options=options)
        vs.width, vs.height = size
        vs.pix_fmt = pix_fmt or default_fmt
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if codec in ("libx264", "libx265", "mpeg4"):
            vs.codec_context.gop_size = gop
        if rotation:
            vs.set_display_rotation(rotation)
        astream = None
        if audio:
            acodec = "aac" if path.suffix.lower() == ".mp4" else "pcm_s16le"
            astream = out.add_stream(acodec, rate=audio_rate, layout="mono")
        ticks = int(round(1 / fps / tb))  # time_base units per frame
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i, size), format="rgb24")
            frame.pts = start_pts + i * ticks
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            _write_index_audio(out, astream, n_frames, fps, audio_rate, start_pts * tb)
    return path


def _write_index_audio(
    out: av.container.OutputContainer, stream: av.AudioStream, n_frames: int, fps: Fraction, rate: int, start: Fraction
) -> None:
    samples_per_frame = Fraction(rate) / fps
    total = int(n_frames * samples_per_frame)
    k = (np.arange(total) / samples_per_frame).astype(np.int64)
    data = (100 * (k % 200)).astype(np.int16)
    first = int(round(start * rate))
    for i in range(0, total, 1024):
        chunk = data[i : i + 1024]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = first + i
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_index_folder(
    directory: str | Path, n_frames: int, size: tuple[int, int] = (64, 48), ext: str = "png", prefix: str = "frame_"
) -> Path:
    """Frames frame_0.<ext> .. frame_<n-1>.<ext> (no zero padding), frame i encoding i."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n_frames):
        bgr = cv2.cvtColor(index_frame(i, size), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(directory / f"{prefix}{i}.{ext}"), bgr):
            raise OSError(f"could not write {directory / f'{prefix}{i}.{ext}'}")
    return directory


@dataclass(frozen=True)
class ObjectClip:
    frames: Path  # PNG folder: background with the moving disc
    masks: Path  # PNG folder: 255 where the disc is, 0 elsewhere
    clean: Path  # PNG folder: the background alone (ground truth for erasers)
    n_frames: int
    size: tuple[int, int]


def make_object_clip(
    directory: str | Path, background: str | Path, n_frames: int = 12, size: tuple[int, int] = (96, 64), radius: int = 9
) -> ObjectClip:
    """A textured disc moving left to right over a still real image, with exact masks.

    `background` is any image OpenCV reads (e.g. shared_data / "davis/tennis/00000.png");
    it is resized to `size`. The disc moves `size[0] / (2 * n_frames)` pixels a frame
    along a gentle diagonal, so consecutive masks overlap but differ.
    """
    directory = Path(directory)
    bg = cv2.imread(str(background), cv2.IMREAD_COLOR)
    if bg is None:
        raise OSError(f"could not read background {background}")
    w, h = size
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA)
    dirs = [directory / name for name in ("frames", "masks", "clean")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n_frames):
        cx = radius + 1 + i * (w - 2 * radius - 2) / max(n_frames - 1, 1)
        cy = h / 2 + (i - n_frames / 2) * 0.5
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        frame = bg.copy()
        # Stripes inside the disc so flow / inpainting tests see texture, not a flat blob.
        stripes = ((xx + yy + 2 * i) // 3 % 2).astype(bool)
        frame[inside & stripes] = (30, 40, 200)
        frame[inside & ~stripes] = (240, 230, 20)
        name = f"frame_{i:06d}.png"
        cv2.imwrite(str(dirs[0] / name), frame)
        cv2.imwrite(str(dirs[1] / name), inside.astype(np.uint8) * 255)
        cv2.imwrite(str(dirs[2] / name), bg)
    return ObjectClip(frames=dirs[0], masks=dirs[1], clean=dirs[2], n_frames=n_frames, size=size)


def remux_cut(src: str | Path, dst: str | Path, first: int) -> Path:
    """Stream-copy `src` from frame `first` on, like `ffmpeg -ss T -c copy`.

    Packets are copied from the last keyframe at or before `first` (decoding needs
    them) with timestamps shifted so that frame `first` lands at 0; the frames before
    it get negative times, which the MP4/MOV muxer hides behind an edit list and the
    demuxer then marks as discarded. Frame 0 of the result shows index `first`.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        packets = [p for p in inp.demux(stream) if p.size]
        shown = sorted(p.pts for p in packets)
        shift = shown[first]
        keys = [k for k, p in enumerate(packets) if p.is_keyframe and p.pts <= shift]
        copy = out.add_stream_from_template(stream)
        for packet in packets[keys[-1] :]:
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = copy
            out.mux(packet)
    return dst


def frames_to_video(frames: list[np.ndarray], path: str | Path, fps: int = 25, crf: int = 14) -> Path:
    """Encode RGB frames (same size, even sides) as an H.264 file: a real clip as a video source."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_davis(folder: str | Path, n_frames: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A DAVIS sequence from ../shared/data/davis: RGB frames and bool masks of `folder` and `folder`_mask."""
    folder = Path(folder)
    masks_dir = folder.parent / (folder.name + "_mask")
    names = sorted(p.name for p in folder.iterdir())[:n_frames]
    frames = [cv2.cvtColor(cv2.imread(str(folder / n)), cv2.COLOR_BGR2RGB) for n in names]
    masks = [cv2.imread(str(masks_dir / (Path(n).stem + ".png")), cv2.IMREAD_GRAYSCALE) > 127 for n in names]
    return frames, masks


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """x, y, w, h of the mask's bounding box (the --box a user would draw)."""
    x0, y0, x1, y1 = bounding_box(mask)
    return x0, y0, x1 - x0, y1 - y0


def tracked_mask_prompt(mask: np.ndarray, folder: str | Path, frame: int = 0) -> MaskPrompt:
    """The product's "track this mask from frame F" prompt (`peanut mask --mask M.png --mask-frame F`):
    the mask as a one-image PNG plus an empty FramePrompt(frame=F)."""
    path = Path(folder) / f"mask_{frame:05d}.png"
    cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    return MaskPrompt(mask_path=str(path), frame_prompts=[FramePrompt(frame=frame)])


def decode_matte16(path: str | Path) -> list[np.ndarray]:
    """A matte video's frames as 16-bit grey, whatever codec carries it.

    FFV1 mattes decode as gray16le and come back as they are. ProRes 4444 (10/12-bit
    4:4:4) and H.264 (8-bit) mattes decode as limited-range Y'CbCr: their luma plane
    is read directly and expanded to full range here, because swscale's yuv444p12le -> gray16le
    conversion was seen to write garbage into one row of an odd-width frame (3 of
    90 frames; the row's first pixels came back as 32768), while the file's own
    luma was right every time.
    """
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            name = frame.format.name
            if name == "gray16le":
                frames.append(frame.to_ndarray())
                continue
            match = re.fullmatch(r"yuv4[24][024]p(\d*)(le)?", name)
            if match is None:
                raise ValueError(f"{path}: a matte decodes as {name}, neither grey nor Y'CbCr")
            bits = int(match.group(1) or 8)
            plane = frame.planes[0]  # luma: full size whatever the chroma subsampling
            dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
            rows = np.frombuffer(bytes(plane), dtype).reshape(frame.height, plane.line_size // dtype.itemsize)
            luma = rows[:, : frame.width]
            black, span = 16 << (bits - 8), 219 << (bits - 8)  # limited range: Y' from 16 to 235 (8-bit scale)
            full = (luma.astype(np.float64) - black) * (65535.0 / span)
            frames.append(np.clip(np.rint(full), 0, 65535).astype(np.uint16))
    return frames
