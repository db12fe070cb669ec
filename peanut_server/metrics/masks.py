"""The masker's table: J, F and J&F as in the DAVIS evaluation, temporal IoU, connectivity.

J is the region similarity (IoU). F is the boundary F-measure: boundary pixels
of prediction and ground truth are matched within a tolerance of
ceil(0.008 * image diagonal) pixels, as the DAVIS toolkit does (bound_th =
0.008), and F = 2PR / (P + R). Both empty counts as perfect, one empty as 0.

Temporal IoU is the mean IoU between consecutive predicted masks (1 = no
change at all); it is reported beside the ground truth's own value, since a
moving object should change. Connectivity is the mean share of a predicted
mask's area in its largest connected component (1 = one piece).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

BOUND_TH = 0.008


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel inner boundary of a bool mask (the image border does not count as an edge)."""
    m = mask.astype(np.uint8)
    eroded = cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return (m > 0) & (eroded == 0)


def f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUND_TH) -> float:
    pred, gt = pred.astype(bool), gt.astype(bool)
    h, w = gt.shape
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w))
    pb, gb = boundary(pred), boundary(gt)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(radius) + 1, 2 * int(radius) + 1))
    gt_dil = cv2.dilate(gb.astype(np.uint8), disk) > 0
    pred_dil = cv2.dilate(pb.astype(np.uint8), disk) > 0
    precision = float((pb & gt_dil).sum()) / n_p
    recall = float((gb & pred_dil).sum()) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def connectivity(mask: np.ndarray) -> float:
    m = mask.astype(np.uint8)
    if not m.any():
        return 1.0
    count, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    return float(stats[1:, cv2.CC_STAT_AREA].max() / stats[1:, cv2.CC_STAT_AREA].sum())


@dataclass
class MaskScores:
    frames: int = 0
    J: float = 0.0
    F: float = 0.0
    JF: float = 0.0
    J_recall: float = 0.0  # share of frames with J > 0.5 (DAVIS "J recall")
    temporal_iou: float = 0.0
    temporal_iou_gt: float = 0.0
    connectivity: float = 0.0
    per_frame_J: list[float] = field(default_factory=list)
    per_frame_F: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        return {
            "frames": self.frames,
            "J": self.J,
            "F": self.F,
            "J&F": self.JF,
            "J_recall": self.J_recall,
            "temporal_iou": self.temporal_iou,
            "temporal_iou_gt": self.temporal_iou_gt,
            "connectivity": self.connectivity,
        }


def evaluate(pred: Iterable[np.ndarray], gt: Iterable[np.ndarray], bound_th: float = BOUND_TH) -> MaskScores:
    """Score two equally long mask sequences (streamed, one frame at a time)."""
    scores = MaskScores()
    prev_p = prev_g = None
    t_pred, t_gt, conn = [], [], []
    for p, g in zip(pred, gt, strict=True):
        p, g = np.asarray(p).astype(bool), np.asarray(g).astype(bool)
        if p.shape != g.shape:
            raise ValueError(f"mask sizes differ: {p.shape} vs {g.shape}")
        scores.per_frame_J.append(jaccard(p, g))
        scores.per_frame_F.append(f_measure(p, g, bound_th))
        conn.append(connectivity(p))
        if prev_p is not None:
            t_pred.append(jaccard(prev_p, p))
            t_gt.append(jaccard(prev_g, g))
        prev_p, prev_g = p, g
    scores.frames = len(scores.per_frame_J)
    if scores.frames == 0:
        raise ValueError("no frames to evaluate")
    scores.J = float(np.mean(scores.per_frame_J))
    scores.F = float(np.mean(scores.per_frame_F))
    scores.JF = (scores.J + scores.F) / 2
    scores.J_recall = float(np.mean(np.array(scores.per_frame_J) > 0.5))
    scores.temporal_iou = float(np.mean(t_pred)) if t_pred else 1.0
    scores.temporal_iou_gt = float(np.mean(t_gt)) if t_gt else 1.0
    scores.connectivity = float(np.mean(conn))
    return scores
