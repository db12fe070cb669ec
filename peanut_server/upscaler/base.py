"""The upscaler interface: bring erased frames back to source resolution.

The pipeline crops the region around the mask (plus a margin) over a window,
passes the low-resolution crop and the size it must have at source
resolution, and composites the result inside the feathered mask. Upscalers
therefore never see the untouched parts of the frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..eraser.base import FlowFields
from ..progress import Reporter


@dataclass
class UpscalerOptions:
    reuse_flow: bool = True  # align with the eraser's flow instead of SPyNet
    tile: int = 0  # spatial tile size at low resolution, 0 = auto
    chunk: int = 0  # temporal chunk length, 0 = auto
    device: str = "auto"


class Upscaler(ABC):
    name: ClassVar[str]
    learned: ClassVar[bool] = False

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, ""

    @abstractmethod
    def upscale(
        self,
        frames: np.ndarray,
        size: tuple[int, int],
        flows: FlowFields | None,
        options: UpscalerOptions,
        reporter: Reporter,
    ) -> np.ndarray:
        """(T, h, w, 3) uint8 RGB -> (T, H, W, 3) uint8 with (H, W) = size exactly.

        `flows`, when given, is the eraser's completed flow for these frames
        and crop, at the low resolution.
        """
