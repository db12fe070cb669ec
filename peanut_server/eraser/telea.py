"""Per-frame image inpainting (OpenCV Telea): the comparison baseline.

This is the method's first experiment, kept as a yardstick: every frame is
filled on its own, so the fill flickers and smears. It is not the product's
eraser (that is flowguided); it exists so benchmarks and tests can show by how
much the flow-guided eraser beats it.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..progress import Reporter
from .base import Eraser, EraseResult, EraserOptions

INPAINT_RADIUS = 3


class TeleaEraser(Eraser):
    name = "telea"

    def erase(
        self,
        frames: np.ndarray,
        masks: np.ndarray,
        options: EraserOptions,
        reporter: Reporter,
    ) -> EraseResult:
        out = frames.copy()
        for t in range(len(frames)):
            reporter.check()
            if masks[t].any():
                mask = masks[t].astype(np.uint8) * 255
                out[t] = cv2.inpaint(frames[t], mask, INPAINT_RADIUS, cv2.INPAINT_TELEA)
        return EraseResult(frames=out, flows=None)
