"""Shared helpers of the eraser benchmarks: test clips, and windowed streaming like the pipeline."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from peanut_server.eraser.base import Eraser, EraserOptions
from peanut_server.progress import Reporter

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def read_clip(path: Path, count: int, size: tuple[int, int] | None = None, start: int = 0) -> np.ndarray:
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i < start:
                continue
            image = frame.to_ndarray(format="rgb24")
            frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA) if size else image)
            if len(frames) == count:
                break
    return np.stack(frames)


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), size, interpolation=cv2.INTER_AREA) > 127


def erase_windows(
    frames: Iterable[np.ndarray],
    masks: Iterable[np.ndarray],
    eraser: Eraser,
    options: EraserOptions,
    window: int = 80,
    overlap: int = 10,
) -> Iterator[np.ndarray]:
    """Stream frames through the eraser in windows, as the pipeline does.

    Each window after the first starts with the last `overlap` frames of the
    previous one, already filled and with empty masks (known context), so
    memory is bounded by the window, not the clip.
    """
    buffer_f: list[np.ndarray] = []
    buffer_m: list[np.ndarray] = []
    carried = 0
    for frame, mask in zip(frames, masks):
        buffer_f.append(frame)
        buffer_m.append(mask)
        if len(buffer_f) == window:
            out = eraser.erase(np.stack(buffer_f), np.stack(buffer_m), options, Reporter()).frames
            yield from out[carried:]
            buffer_f = list(out[-overlap:])
            buffer_m = [np.zeros_like(buffer_m[0])] * overlap
            carried = overlap
    if len(buffer_f) > carried:
        out = eraser.erase(np.stack(buffer_f), np.stack(buffer_m), options, Reporter()).frames
        yield from out[carried:]
