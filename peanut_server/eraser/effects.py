"""Growing an object's mask to its effects: the shadow it casts.

A mask that covers a person but not their shadow leaves a dark shape walking
across the cleaned shot. No weights are needed to find most shadows, because
a cast shadow has three properties an editor would point out:

1. it is darker than the same ground when the object is elsewhere, and
   darker than the ground around it. The first: the brightest of a few
   other frames of the window (t +- 10, t +- 20) aligned to this one by a
   homography fitted to background features (outside the masks), so a
   panning camera does not matter; a wall base that is dark in every frame
   is not taken. The second: a large median filter of the frame (a shadow
   thinner than half its window disappears in it);
2. it keeps the ground's colour: a shadow dims the light, it does not
   change the chromaticity much (Cucchiara et al. 2003, in RGB here);
3. it touches the object: only dark regions connected to the mask are taken.

Where the object does not move, no neighbour shows the ground unshadowed,
and nothing is added: the option then changes nothing rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NEIGHBOUR_OFFSETS = (-20, -10, 10, 20)
# Side of the median filter for the ground around a shadow (pixels at working size).
GROUND_WINDOW = 41


@dataclass
class EffectsOptions:
    darker_than: float = 0.82  # luminance ratio to the unshadowed ground, at most
    min_drop: float = 12.0  # luminance drop in levels, at least
    chroma_tolerance: float = 0.12  # normalised-RGB distance to the ground, at most
    max_growth: float = 2.0  # the effects may add at most this times the object's area


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _align(frame: np.ndarray, neighbour: np.ndarray, background: np.ndarray) -> np.ndarray | None:
    """Homography taking the neighbour's pixels onto frame's grid, from background features."""
    gray_t = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    gray_n = cv2.cvtColor(neighbour, cv2.COLOR_RGB2GRAY)
    points = cv2.goodFeaturesToTrack(
        gray_t, maxCorners=400, qualityLevel=0.01, minDistance=7, mask=background.astype(np.uint8) * 255
    )
    if points is None or len(points) < 8:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(gray_t, gray_n, points, None, winSize=(21, 21), maxLevel=3)
    ok = status.ravel() == 1
    if ok.sum() < 8:
        return None
    homography, _ = cv2.findHomography(moved[ok], points[ok], cv2.RANSAC, 2.0)
    return homography


def effects_mask(frames: np.ndarray, masks: np.ndarray, t: int, options: EffectsOptions | None = None) -> np.ndarray:
    """The shadow of masks[t] in frames[t]: (H, W) bool, outside masks[t]."""
    options = options or EffectsOptions()
    count, height, width = masks.shape
    mask = masks[t]
    if not mask.any():
        return np.zeros_like(mask)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))
    background = ~(cv2.dilate(masks[t].astype(np.uint8), kernel) > 0)
    ground, ground_valid = [], []
    for offset in NEIGHBOUR_OFFSETS:
        n = t + offset
        if not 0 <= n < count:
            continue
        homography = _align(frames[t], frames[n], background)
        if homography is None:
            continue
        warped = cv2.warpPerspective(
            frames[n], homography, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        covered = (
            cv2.warpPerspective(
                np.ones((height, width), np.uint8), homography, (width, height), flags=cv2.INTER_NEAREST
            )
            > 0
        )
        object_there = (
            cv2.warpPerspective(masks[n].astype(np.uint8), homography, (width, height), flags=cv2.INTER_NEAREST) > 0
        )
        ground.append(warped)
        ground_valid.append(covered & ~object_there)
    if not ground:
        return np.zeros_like(mask)
    # The ground when the object is elsewhere: the brightest aligned neighbour.
    stack = np.stack(ground).astype(np.float32)
    # Each neighbour's luminance is min-filtered over 5x5: a misalignment of
    # up to 2 pixels at a strong edge (a wall's top) must not look darker.
    luminance = np.stack([cv2.erode(_gray(g), np.ones((5, 5), np.uint8)) for g in ground])
    luminance[~np.stack(ground_valid)] = -1.0
    brightest = np.argmax(luminance, axis=0)
    ground_luma = np.take_along_axis(luminance, brightest[None], axis=0)[0]
    ground_rgb = np.take_along_axis(stack, brightest[None, ..., None], axis=0)[0]
    has_ground = ground_luma >= 0
    # The ground around the shadow in this frame: a dark scene element (a wall
    # base, a fence) that is dark in every frame is no shadow, and one that is
    # only darker than its neighbours in time may be a lighting change.
    local_luma = cv2.medianBlur(cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY), GROUND_WINDOW).astype(np.float32)

    here = frames[t].astype(np.float32)
    luma = _gray(frames[t])
    chroma_here = here / (here.sum(axis=2, keepdims=True) + 1.0)
    chroma_ground = ground_rgb / (ground_rgb.sum(axis=2, keepdims=True) + 1.0)
    chroma_distance = np.abs(chroma_here - chroma_ground).sum(axis=2)
    darker = (luma <= options.darker_than * ground_luma) & (ground_luma - luma >= options.min_drop)
    darker &= luma <= options.darker_than * local_luma
    candidate = has_ground & darker & (chroma_distance <= options.chroma_tolerance) & ~mask
    # Shadows at grazing light are lines a few pixels thick: close small gaps,
    # no opening (it would erase them).
    candidate = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    candidate &= ~mask

    # Only dark regions that touch the object.
    touching = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    count_cc, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    if count_cc <= 1:
        return np.zeros_like(mask)
    keep = np.unique(labels[touching & candidate])
    keep = keep[keep > 0]
    shadow = np.isin(labels, keep)
    if shadow.sum() > options.max_growth * mask.sum():
        return np.zeros_like(mask)  # not a shadow: most likely misalignment of a dark scene
    return shadow


def grow_to_effects(
    frames: np.ndarray, masks: np.ndarray, options: EffectsOptions | None = None, check=None
) -> np.ndarray:
    """masks (T, H, W) bool grown by each frame's shadow (see effects_mask)."""
    grown = masks.copy()
    for t in range(len(masks)):
        if check is not None:
            check()
        grown[t] |= effects_mask(frames, masks, t, options)
    return grown
