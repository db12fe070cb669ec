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


class DISFlow(FlowEstimator):
    name: ClassVar[str] = "dis"

    def __init__(self, options: DISOptions | None = None) -> None:
        self.options = options or DISOptions()
        self._dis = cv2.DISOpticalFlow_create(PRESETS[self.options.preset])

    def pair(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._dis.calc(_gray(first), _gray(second), None)

    def window(self, frames: np.ndarray, reporter=None) -> tuple[np.ndarray, np.ndarray]:
        # Convert each frame to grey once, not twice per pair.
        grays = [_gray(f) for f in frames]
        count, height, width = frames.shape[:3]
        forward = np.zeros((max(count - 1, 0), height, width, 2), np.float32)
        backward = np.zeros_like(forward)
        for t in range(count - 1):
            if reporter is not None:
                reporter.check()
            forward[t] = self._dis.calc(grays[t], grays[t + 1], None)
            backward[t] = self._dis.calc(grays[t + 1], grays[t], None)
        return forward, backward


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
