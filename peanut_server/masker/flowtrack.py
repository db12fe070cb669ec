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

from .motion import (ColourModels, FlowEstimator, learn_colour_models, refine_mask, residual_motion,
                     segment_moving, to_gray)


def warp_mask(mask: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Mask of the previous frame carried to the current one; flow_back maps current -> previous."""
    h, w = mask.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    moved = cv2.remap(mask.astype(np.float32), gx + flow_back[..., 0], gy + flow_back[..., 1],
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved > 0.5


class FlowTracker:
    def __init__(self, flow: FlowEstimator | None = None, refine: bool = True,
                 lost_fraction: float = 0.15, min_area: int = 20, max_frame_fraction: float = 0.6,
                 freeze_models: bool = True, reseg_iou: float = 0.3, min_agreement: float = 0.0) -> None:
        self.min_agreement = min_agreement
        self.reseg_iou = reseg_iou
        self.freeze_models = freeze_models
        self.models: ColourModels | None = None
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
        # Colour models from the anchor (a trusted mask): later refinements cannot drift them.
        self.models: ColourModels | None = learn_colour_models(rgb, self.mask) if self.freeze_models else None
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
        reference = float(np.median(self._areas)) if self._areas else float(mask.sum())
        if self.reseg_iou > 0 and mask.any():
            # Re-segmentation: chained warps drift (flow bleeds over the object's edge and
            # the mask grows or shrinks), so a moving region that overlaps the warped mask
            # well replaces it. Regions of another size (two objects merged, a fragment)
            # are not taken.
            best, best_iou = None, self.reseg_iou
            for c in segment_moving(rgb, [self.last_residual], refine=False):
                if not 0.5 * reference <= c.area <= 1.5 * reference:
                    continue
                inter = int(np.logical_and(c.mask, mask).sum())
                iou = inter / max(c.area + int(mask.sum()) - inter, 1)
                if iou > best_iou:
                    best, best_iou = c, iou
            if best is not None:
                mask = best.mask
        if self.refine and mask.any():
            mask = refine_mask(rgb, mask, models=self.models, min_agreement=self.min_agreement)
        area = int(mask.sum())
        if area < self.min_area or area < self.lost_fraction * reference \
                or area > self.max_frame_fraction * mask.size:
            mask = np.zeros_like(mask)
        else:
            self._areas.append(area)
        self.mask = mask
        return mask
