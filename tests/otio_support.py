"""Test support for the OTIO and Resolve tests: clips with a red square, and a small real run_clip.

`make_square_folder(dir, n)` writes a PNG folder whose frame i carries its own
index (tests.clips.index_frame) and a pure red 10x10 square that moves with i.
`simple_run_clip` is a real (small) implementation of the run_clip contract of
peanut_server.otio.run_timeline: it masks the red square (prompt mentioning
"red") or reads a static mask image, inpaints with OpenCV, keeps every pixel
outside the mask, and writes frame_{source index:06d}.png files and a matte.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np

from peanut_server.errors import PromptError
from peanut_server.otio.timeline import ClipJob
from peanut_server.progress import Reporter
from tests.clips import index_frame

SIZE = (64, 48)


def square_box(i: int) -> tuple[int, int, int, int]:
    x = 40 + (i * 3) % 16
    y = 30 + (i * 2) % 8
    return x, y, x + 10, y + 10


def square_frame(i: int) -> np.ndarray:
    frame = index_frame(i, SIZE)
    x0, y0, x1, y1 = square_box(i)
    frame[y0:y1, x0:x1] = (255, 0, 0)
    return frame


def make_square_folder(directory: str | Path, n: int) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(directory / f"{i:05d}.png"), cv2.cvtColor(square_frame(i), cv2.COLOR_RGB2BGR))
    return directory


def make_square_video(path: str | Path, n: int, fps=25) -> Path:
    """An FFV1 .mkv (lossless, so decoded frames equal square_frame(i))."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "bgr0"
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(square_frame(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_frames(path: str, start: int, end: int) -> list[np.ndarray]:
    """Source frames start..end-1 (RGB), from a PNG folder or a video file."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(".png"))
        return [cv2.cvtColor(cv2.imread(os.path.join(path, n)), cv2.COLOR_BGR2RGB) for n in names[start:end]]
    frames = []
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= end:
                break
            if i >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def red_mask(frame: np.ndarray) -> np.ndarray:
    return ((frame[..., 0] > 200) & (frame[..., 1] < 60) & (frame[..., 2] < 60)).astype(np.uint8) * 255


def simple_run_clip(job: ClipJob, output_path: str, matte_path: str, reporter: Reporter) -> dict:
    frames = read_frames(job.source_path, job.start_frame, job.end_frame)
    static = None
    if job.mask_path:
        static = (cv2.imread(job.mask_path, cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8) * 255
    elif "red" not in job.prompt.lower():
        raise PromptError(f"this test masker only knows red things, not {job.prompt!r}")
    os.makedirs(output_path, exist_ok=job.overwrite)
    os.makedirs(matte_path, exist_ok=job.overwrite)
    for i, frame in enumerate(frames):
        mask = static if static is not None else red_mask(frame)
        grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        filled = cv2.inpaint(frame, grown, 3, cv2.INPAINT_TELEA)
        out = np.where(grown[..., None] > 0, filled, frame)
        name = f"frame_{job.start_frame + i:06d}.png"
        cv2.imwrite(os.path.join(output_path, name), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        cv2.imwrite(os.path.join(matte_path, name), grown)
        reporter.advance()
    return {
        "output_path": output_path,
        "matte_path": matte_path,
        "frame_count": len(frames),
        "backends": ["test=opencv"],
    }


def read_png(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image
