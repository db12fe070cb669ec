"""Moving-object segmentation without weights: DIS flow minus camera motion.

The camera's motion between two frames is fitted as a homography to the flow
field with RANSAC (most pixels are background); what the homography does not
explain is object motion. A pixel is moving when its residual is large in
both temporal directions (one direction alone also lights up the background
an object uncovers). Connected components of that map are the candidates.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...flow.dis import DIS
from ..candidates import Candidate, candidate_from_mask

_GRID_STEP = 6


def to_gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class FlowEstimator(DIS):
    """DIS optical flow (OpenCV, medium preset), one instance per thread."""

    def __init__(self) -> None:
        super().__init__(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


class TrackingFlowEstimator(DIS):
    """DIS flow for carrying a mask from frame to frame: the medium preset down to full resolution
    (the preset stops at half), with a sparser patch grid and 2 variational refinement
    iterations to pay for it.

    On the 34 tuning clips (12 fps, benchmarks/masker_tuning.py) J&F from the mask 0.582 -> 0.625
    and from the box 0.518 -> 0.549; held out, run once: 0.658 -> 0.660 and 0.609 -> 0.624.
    Grounding, points, the box cut and the search after a loss keep FlowEstimator: their motion
    thresholds were set on its flow, and on the finer one water, dust and a slow walker's legs
    read as movers (the box cut on DAVIS elephant fell from J 0.79 to 0.14).
    """

    def __init__(self) -> None:
        super().__init__(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, finest_scale=0, patch_stride=4, refinement_iterations=2)


def camera_flow(flow: np.ndarray) -> np.ndarray:
    """The part of a flow field explained by a homography (the camera's motion)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[_GRID_STEP // 2 : h : _GRID_STEP, _GRID_STEP // 2 : w : _GRID_STEP]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    hom = None
    if len(src) >= 8:
        hom, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.0, maxIters=500)
    if hom is None:
        # Degenerate fields (e.g. a flat image): fall back to the median translation.
        return np.broadcast_to(np.median(flow.reshape(-1, 2), 0), flow.shape).astype(np.float32)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    pts = np.stack([gx, gy], -1).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(pts, hom).reshape(h, w, 2)
    return moved - np.stack([gx, gy], -1)


def residual_motion(flow: np.ndarray) -> np.ndarray:
    """Per-pixel magnitude of the motion the camera does not explain."""
    return np.linalg.norm(flow - camera_flow(flow), axis=-1)


def moving_map(residuals: list[np.ndarray], min_px: float = 0.8) -> np.ndarray:
    """Bool map of pixels moving in every given direction, cleaned up morphologically."""
    res = np.minimum.reduce(residuals) if len(residuals) > 1 else residuals[0]
    # Adaptive: a noisy flow field raises the bar, a clean one keeps it at min_px.
    thr = max(min_px, 4.0 * float(np.median(res)))
    moving = (res > thr).astype(np.uint8)
    moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return moving.astype(bool)


def segment_moving(
    rgb: np.ndarray,
    residuals: list[np.ndarray],
    min_area_frac: float = 0.002,
    refine: bool = True,
) -> list[Candidate]:
    """Moving objects on one frame: connected components of the residual-motion map."""
    h, w = rgb.shape[:2]
    moving = moving_map(residuals)
    res = np.minimum.reduce(residuals) if len(residuals) > 1 else residuals[0]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(moving.astype(np.uint8), connectivity=8)
    min_area = max(20, int(min_area_frac * h * w))
    out = []
    for k in range(1, count):
        if stats[k, cv2.CC_STAT_AREA] < min_area:
            continue
        comp = labels == k
        # Something "moving" over most of the frame is a failed camera fit, not an object.
        if comp.sum() > 0.6 * h * w:
            continue
        mask = refine_mask(rgb, comp) if refine else comp
        if mask.sum() < min_area:
            mask = comp
        out.append(candidate_from_mask(rgb, mask, float(np.median(res[comp]))))
    return out


ColourModels = tuple[np.ndarray, np.ndarray]  # GrabCut's (background, foreground) GMMs


def grabcut(
    rgb: np.ndarray,
    labels: np.ndarray,
    iterations: int,
    rect: tuple[int, int, int, int] | None = None,
    models: ColourModels | None = None,
) -> tuple[np.ndarray, ColourModels] | None:
    """OpenCV's GrabCut on an RGB image: (the foreground it cut, its colour models), or None
    where OpenCV refuses (one of the two label classes is empty).

    `labels` holds a cv2.GC_* label per pixel and is GrabCut's working array (overwritten: pass
    one made for the call); with `rect` (x, y, w, h) the labels start from the rectangle
    instead, and with `models` those models are used frozen.
    """
    if models is not None:
        bgd, fgd, mode = models[0].copy(), models[1].copy(), cv2.GC_EVAL_FREEZE_MODEL
    else:
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        mode = cv2.GC_INIT_WITH_RECT if rect is not None else cv2.GC_INIT_WITH_MASK
    try:
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), labels, rect, bgd, fgd, iterations, mode)
    except cv2.error:
        return None
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), (bgd, fgd)


def _window(seed: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    h, w = seed.shape
    ys, xs = np.nonzero(seed)
    return (
        max(0, xs.min() - 2 * margin),
        max(0, ys.min() - 2 * margin),
        min(w, xs.max() + 1 + 2 * margin),
        min(h, ys.max() + 1 + 2 * margin),
    )


def learn_colour_models(rgb: np.ndarray, mask: np.ndarray) -> ColourModels | None:
    """Object and background colour GMMs from a trusted mask (GrabCut's models)."""
    mask = mask.astype(bool)
    area = int(mask.sum())
    if area < 16:
        return None
    margin = int(max(6, 0.35 * np.sqrt(area)))
    x0, y0, x1, y1 = _window(mask, margin)
    sub = mask[y0:y1, x0:x1]
    if sub.all():
        return None
    cut = grabcut(np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.where(sub, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8), 1)
    return None if cut is None else cut[1]


def refine_mask(
    rgb: np.ndarray,
    seed: np.ndarray,
    iterations: int = 3,
    models: ColourModels | None = None,
    min_agreement: float = 0.0,
) -> np.ndarray:
    """Snap a rough object mask to colour edges with GrabCut, in a window around it.

    The seed is "probably object", a ring around it "probably background" and
    the rest of the window background; a result that differs wildly from the
    seed (GrabCut swallowing a similar background) falls back to the seed.
    With `models` (learned on a trusted frame) the colour models stay frozen,
    so they cannot drift with the seed.
    """
    seed = seed.astype(bool)
    area = int(seed.sum())
    if area < 16:
        return seed
    margin = int(max(6, 0.35 * np.sqrt(area)))
    x0, y0, x1, y1 = _window(seed, margin)
    roi = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    sub = seed[y0:y1, x0:x1].astype(np.uint8)
    ring = cv2.dilate(sub, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    gc = np.full(sub.shape, cv2.GC_BGD, np.uint8)
    gc[ring > 0] = cv2.GC_PR_BGD
    gc[sub > 0] = cv2.GC_PR_FGD
    if (gc == cv2.GC_BGD).sum() < 16:
        return seed
    cut = grabcut(roi, gc, iterations, models=models)
    if cut is None:
        return seed
    got = cut[0]
    got = cv2.morphologyEx(got.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    n = int(got.sum())
    if n < 0.4 * area or n > 2.0 * area:
        return seed
    # GrabCut may only adjust the seed, not replace it: on real footage a cut that
    # disagrees much with the seed is more often wrong than right.
    inter = int(np.logical_and(got, seed[y0:y1, x0:x1]).sum())
    if inter / max(n + area - inter, 1) < min_agreement:
        return seed
    out = np.zeros_like(seed)
    out[y0:y1, x0:x1] = got
    # Keep only the parts connected to the seed: GrabCut may pick up far look-alike pixels.
    count, labels = cv2.connectedComponents(out.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    hit = np.unique(labels[out & seed])
    keep[hit] = True
    keep[0] = False
    return keep[labels]
