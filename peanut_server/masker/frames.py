"""Frames at working resolution, shared by the maskers that scale frames down.

The tracking loop (tracking.py) and every backend's per-frame step see the
clip as WorkFrames: the source frame number, and the frame at the backend's
working resolution.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..media.types import VideoSource


@dataclass
class WorkFrame:
    index: int  # absolute source frame number
    rgb: np.ndarray  # working resolution

    @cached_property
    def gray(self) -> np.ndarray:
        """Grey levels, for optical flow (computed once, on first use)."""
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)


def working_scale(source: VideoSource, max_side: int) -> float:
    """The factor that brings the longer side of `source` down to `max_side` (never up)."""
    return min(1.0, max_side / max(source.info.width, source.info.height))


def working_frames(source: VideoSource, start: int, end: int, max_side: int) -> Iterator[tuple[int, np.ndarray]]:
    """(source frame index, RGB at working resolution) for frames start..end-1.

    INTER_AREA: a downscale that averages, so thin details do not alias; contiguous,
    because OpenCV and torch want it and a resized or sliced frame may not be."""
    scale = working_scale(source, max_side)
    for k, rgb in enumerate(source.frames(start, end)):
        if scale < 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        yield start + k, np.ascontiguousarray(rgb)
