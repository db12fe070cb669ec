"""OpenCV DIS optical flow (Kroeger et al. 2016): no weights, fast on a CPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from .base import FlowEstimator

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class DISOptions:
    # "fast": ~5 ms a pair at 432x240 on one core; on running_car it completes
    # holes better than "medium", whose finer patches lock onto the hole's edges.
    preset: str = "fast"
    # The finest pyramid level (0: full resolution); None: the preset's ("fast" stops at a quarter).
    finest_scale: int | None = None


class DIS:
    """cv2.DISOpticalFlow for one preset, made afresh whenever the image size changes.

    OpenCV's DIS adapts its patch size, stride and finest scale to an image too small for the
    preset, and keeps them for every later call on the same object (DISOpticalFlowImpl::calc;
    seen with OpenCV 5.0). One object that once saw a small image (the daemon's warm-up clip, a
    thumbnail-sized job) computes other flow on full frames ever after: the "fast" preset then
    runs down to full resolution instead of stopping at a quarter. A job's output then hung on
    what ran before it: on DAVIS dog-agility the daemon's eraser propagated 17 % fewer hole
    pixels than `--local` and filled 3.4x as many per frame with Telea. For one size the adapted
    settings are the same every time, so keeping the object while the size stays gives the flow
    a fresh one would.
    """

    def __init__(
        self,
        preset: int,
        finest_scale: int | None = None,
        patch_stride: int | None = None,
        refinement_iterations: int | None = None,
    ) -> None:
        """`preset` with, where given, its finest pyramid level (0: full resolution), patch
        stride and variational refinement iterations replaced."""
        self.preset = preset
        self.settings = (finest_scale, patch_stride, refinement_iterations)
        self._size: tuple[int, ...] | None = None
        self._dis: cv2.DISOpticalFlow | None = None  # made on the first call, for its image size

    def _make(self) -> cv2.DISOpticalFlow:
        dis = cv2.DISOpticalFlow_create(self.preset)
        finest, stride, refinement = self.settings
        if finest is not None:
            dis.setFinestScale(finest)
        if stride is not None:
            dis.setPatchStride(stride)
        if refinement is not None:
            dis.setVariationalRefinementIterations(refinement)
        return dis

    def __call__(self, gray_from: np.ndarray, gray_to: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 flow: pixel p of gray_from moves to p + flow[p] in gray_to."""
        if gray_from.shape != self._size:
            self._dis = self._make()
            self._size = gray_from.shape
        return self._dis.calc(gray_from, gray_to, None)


class DISFlow(FlowEstimator):
    name: ClassVar[str] = "dis"

    def __init__(self, options: DISOptions | None = None) -> None:
        self.options = options or DISOptions()
        self._dis = DIS(PRESETS[self.options.preset], finest_scale=self.options.finest_scale)

    def pair(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._dis(_gray(first), _gray(second))

    def window(self, frames: np.ndarray, reporter=None) -> tuple[np.ndarray, np.ndarray]:
        # Convert each frame to grey once, not twice per pair.
        grays = [_gray(f) for f in frames]
        count, height, width = frames.shape[:3]
        forward = np.zeros((max(count - 1, 0), height, width, 2), np.float32)
        backward = np.zeros_like(forward)
        for t in range(count - 1):
            if reporter is not None:
                reporter.check()
            forward[t] = self._dis(grays[t], grays[t + 1])
            backward[t] = self._dis(grays[t + 1], grays[t])
        return forward, backward


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
