"""From a per-frame object probability to the binary mask the eraser gets.

Threshold (default 0.5), small-hole fill, optional temporal smoothing (a
majority vote over three frames, which removes one-frame flicker without
delaying edges that move steadily). Dilation is the pipeline's job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import cv2
import numpy as np


def fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Fill background regions enclosed by the mask that are smaller than max_area pixels."""
    if max_area <= 0 or not mask.any():
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    h, w = mask.shape
    out = mask.copy()
    for k in range(1, count):
        x, y, bw, bh, area = stats[k]
        touches_border = x == 0 or y == 0 or x + bw == w or y + bh == h
        if area < max_area and not touches_border:
            out[labels == k] = True
    return out


def soft_mask(mask: np.ndarray) -> np.ndarray:
    """A binary mask as a probability map with a soft one-pixel edge (for resampling)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 1.0)


def to_source(prob: np.ndarray, size: tuple[int, int], threshold: float) -> np.ndarray:
    """Resample a working-resolution probability map to (width, height) and threshold it."""
    w, h = size
    if prob.shape[1] != w or prob.shape[0] != h:
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return prob > threshold


class MaskFinisher:
    """Streams probability maps in, finished source-resolution masks out (in order)."""

    def __init__(
        self, size: tuple[int, int], threshold: float = 0.5, fill_holes: int = 64, temporal_smoothing: bool = False
    ) -> None:
        self.size = size
        self.threshold = threshold
        # fill_holes is in source pixels; the finisher fills after resampling.
        self.fill_holes = fill_holes
        self.smoothing = temporal_smoothing
        self._window: deque[np.ndarray] = deque()
        self._emitted = 0
        self._pushed = 0

    def _finish(self, mask: np.ndarray) -> np.ndarray:
        return fill_small_holes(mask, self.fill_holes)

    def push(self, prob: np.ndarray) -> Iterator[np.ndarray]:
        mask = to_source(prob, self.size, self.threshold)
        self._pushed += 1
        if not self.smoothing:
            yield self._finish(mask)
            return
        self._window.append(mask)
        if len(self._window) == 2 and self._emitted == 0:
            # The first frame has no predecessor: it keeps its own mask.
            yield self._finish(self._window[0])
            self._emitted += 1
        elif len(self._window) == 3:
            a, b, c = self._window
            vote = (a.astype(np.uint8) + b + c) >= 2
            yield self._finish(vote)
            self._emitted += 1
            self._window.popleft()

    def flush(self) -> Iterator[np.ndarray]:
        if self.smoothing and self._window:
            # The last frame has no successor: it keeps its own mask (as does a lone frame).
            yield self._finish(self._window[-1])
            self._emitted += 1
            self._window.clear()
