"""The no-weights upscaler: Lanczos resampling (OpenCV), optional unsharp mask."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from ..errors import InvalidRequest
from ..progress import Reporter
from .base import FlowFields, Upscaler, UpscalerOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnsharpMask:
    """out = in + amount * (in - gaussian(in, sigma)); amount 0 turns it off."""

    amount: float = 0.0
    sigma: float = 1.0


def check_frames(frames: np.ndarray, size: tuple[int, int]) -> None:
    """The interface's input contract, shared by every upscaler."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise InvalidRequest(f"upscaler expects (T, h, w, 3) uint8 frames, got {frames.dtype} {frames.shape}")
    if len(size) != 2 or min(size) <= 0:
        raise InvalidRequest(f"upscaler target size must be (H, W) > 0, got {size}")


class LanczosUpscaler(Upscaler):
    """cv2.INTER_LANCZOS4 to the exact size; sharpening off unless asked for."""

    name: ClassVar[str] = "lanczos"
    learned: ClassVar[bool] = False

    def __init__(self, unsharp: UnsharpMask | None = None) -> None:
        self.unsharp = unsharp or UnsharpMask()

    def upscale(
        self,
        frames: np.ndarray,
        size: tuple[int, int],
        flows: FlowFields | None,
        options: UpscalerOptions,
        reporter: Reporter,
    ) -> np.ndarray:
        check_frames(frames, size)
        height, width = size
        out = np.empty((frames.shape[0], height, width, 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            reporter.check()
            out[i] = self._one(frame, width, height)
            reporter.advance()
        return out

    def _one(self, frame: np.ndarray, width: int, height: int) -> np.ndarray:
        if frame.shape[:2] == (height, width):
            up = frame.copy()
        else:
            up = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LANCZOS4)
        if self.unsharp.amount > 0:
            blurred = cv2.GaussianBlur(up, (0, 0), self.unsharp.sigma)
            # addWeighted saturates to uint8, so no wrap-around at the extremes.
            up = cv2.addWeighted(up, 1.0 + self.unsharp.amount, blurred, -self.unsharp.amount, 0)
        return up
