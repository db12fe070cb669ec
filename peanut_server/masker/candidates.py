"""Object hypotheses: what a grounder found on one frame, for the ranking to choose among.

Motion segmentation (motion/segment.py), the learned detectors (learned.py) and
SAM 3's instances (sam3/) all describe what they found as Candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .colour import colour_descriptor, colour_fractions

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), pixels


@dataclass
class Candidate:
    """One object hypothesis on one frame, at working resolution."""

    mask: np.ndarray  # (h, w) bool
    bbox: Box
    area: int
    centroid: tuple[float, float]  # x, y in pixels
    speed: float = 0.0  # median residual motion, px/frame
    feature: np.ndarray | None = None  # appearance descriptor
    colours: dict[str, float] = field(default_factory=dict)
    det_score: float = -1.0  # detector confidence, learned grounders
    text_score: float = -1.0  # CLIP crop-vs-sentence, where available
    label: str = ""


def bounding_box(mask: np.ndarray) -> Box:
    """The mask's bounding box, x0, y0, x1, y1 (exclusive); (0, 0, 0, 0) for an empty mask."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return x, y, x + w, y + h


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes (0 when both are empty)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def candidate_from_mask(rgb: np.ndarray, mask: np.ndarray, speed: float = 0.0) -> Candidate:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return Candidate(mask=mask.astype(bool), bbox=(0, 0, 0, 0), area=0, centroid=(0.0, 0.0))
    return Candidate(
        mask=mask.astype(bool),
        bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
        area=int(len(xs)),
        centroid=(float(xs.mean()), float(ys.mean())),
        speed=speed,
        feature=colour_descriptor(rgb, mask),
        colours=colour_fractions(rgb, mask),
    )
