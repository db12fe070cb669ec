"""The no-weights tracker: warp the mask along the flow, snap it to the image.

Each step computes DIS flow from the new frame back to the previous one,
pulls the previous mask along it (so every new pixel asks where it came
from: no holes from forward splatting), and refines the warped mask with
GrabCut in a window around it. A mask that shrinks to almost nothing means
the object left or was covered: the tracker reports it lost (an empty mask,
never a full-frame one) and the caller looks for the object again.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from .motion import FlowEstimator, refine_mask, residual_motion, to_gray


def warp_mask(mask: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Mask of the previous frame carried to the current one; flow_back maps current -> previous."""
    h, w = mask.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    moved = cv2.remap(mask.astype(np.float32), gx + flow_back[..., 0], gy + flow_back[..., 1],
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved > 0.5


class FlowTracker:
    def __init__(self, flow: FlowEstimator | None = None, refine: bool = True,
                 lost_fraction: float = 0.15, min_area: int = 20, max_frame_fraction: float = 0.6) -> None:
        self.flow = flow or FlowEstimator()
        self.refine = refine
        self.lost_fraction = lost_fraction
        self.min_area = min_area
        self.max_frame_fraction = max_frame_fraction
        self.gray: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.last_residual: np.ndarray | None = None
        self._areas: deque[int] = deque(maxlen=15)

    def reset(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        self.gray = to_gray(rgb)
        self.mask = mask.astype(bool)
        self._areas.clear()
        if self.mask.any():
            self._areas.append(int(self.mask.sum()))

    @property
    def lost(self) -> bool:
        return self.mask is None or not self.mask.any()

    def step(self, rgb: np.ndarray) -> np.ndarray:
        """The mask on the next frame (empty when lost); also sets last_residual."""
        if self.gray is None or self.mask is None:
            raise RuntimeError("FlowTracker.step before reset")
        gray = to_gray(rgb)
        flow_back = self.flow(gray, self.gray)
        self.last_residual = residual_motion(flow_back)
        self.gray = gray
        if not self.mask.any():
            return self.mask
        mask = warp_mask(self.mask, flow_back)
        if self.refine and mask.any():
            mask = refine_mask(rgb, mask)
        area = int(mask.sum())
        reference = float(np.median(self._areas)) if self._areas else float(area)
        if area < self.min_area or area < self.lost_fraction * reference \
                or area > self.max_frame_fraction * mask.size:
            mask = np.zeros_like(mask)
        else:
            self._areas.append(area)
        self.mask = mask
        return mask
