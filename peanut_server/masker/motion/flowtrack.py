"""The no-weights tracker: warp the mask along the flow, snap it to the image.

Each step computes DIS flow from the new frame back to the previous one,
pulls the previous mask along it (so every new pixel asks where it came
from: no holes from forward splatting), and refines the warped mask with
GrabCut in a window around it. A mask that shrinks to almost nothing means
the object left or was covered: the tracker reports it lost (an empty mask,
never a full-frame one) and the caller looks for the object again.

PriorTracker (below) is used for a mask the editor gave (a one-frame mask, a box or points):
the warped mask is a prior, updated per pixel by colour and motion likelihoods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from .segment import (
    ColourModels,
    FlowEstimator,
    camera_flow,
    learn_colour_models,
    moving_map,
    refine_mask,
    residual_motion,
    segment_moving,
    to_gray,
)


def _remap(image: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(
        image,
        gx + flow_back[..., 0],
        gy + flow_back[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def warp_mask(mask: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Mask of the previous frame carried to the current one; flow_back maps current -> previous."""
    return _remap(mask.astype(np.float32), flow_back) > 0.5


class MaskTracker(ABC):
    """What both trackers keep between steps, and their surface (reset, step, lost, mask,
    last_residual): the masker's search after a loss reads the last two frames and the motion."""

    def __init__(
        self, flow: FlowEstimator | None, lost_fraction: float, min_area: int, max_frame_fraction: float
    ) -> None:
        self.flow = flow or FlowEstimator()
        self.lost_fraction = lost_fraction  # a mask under this x the object's recent size: lost
        self.min_area = min_area
        self.max_frame_fraction = max_frame_fraction  # a mask over this share of the frame: lost
        self.gray: np.ndarray | None = None  # the last step's frame
        self.previous_gray: np.ndarray | None = None  # the frame before the last step's (a search reads it)
        self.mask: np.ndarray | None = None
        self.last_residual: np.ndarray | None = None  # the last step's motion the camera does not explain
        self._areas: deque[int] = deque(maxlen=15)  # recent mask areas (the object's size)

    def reset(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        """Start from `mask` on `rgb` (the anchor)."""
        self.gray = to_gray(rgb)
        self.previous_gray = None
        self.mask = mask.astype(bool)
        self._areas.clear()
        if self.mask.any():
            self._areas.append(int(self.mask.sum()))

    @property
    def lost(self) -> bool:
        return self.mask is None or not self.mask.any()

    @abstractmethod
    def step(self, rgb: np.ndarray) -> np.ndarray:
        """The mask on the next frame (empty when lost); also sets last_residual."""


class FlowTracker(MaskTracker):
    def __init__(
        self,
        flow: FlowEstimator | None = None,
        refine: bool = True,
        lost_fraction: float = 0.15,
        min_area: int = 20,
        max_frame_fraction: float = 0.6,
        freeze_models: bool = True,
        reseg_iou: float = 0.3,
        min_agreement: float = 0.0,
    ) -> None:
        super().__init__(flow, lost_fraction, min_area, max_frame_fraction)
        self.min_agreement = min_agreement
        self.reseg_iou = reseg_iou
        self.freeze_models = freeze_models
        self.models: ColourModels | None = None
        self.refine = refine

    def reset(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        super().reset(rgb, mask)
        # Colour models from the anchor (a trusted mask): later refinements cannot drift them.
        self.models = learn_colour_models(rgb, self.mask) if self.freeze_models else None

    def step(self, rgb: np.ndarray) -> np.ndarray:
        """The mask on the next frame (empty when lost); also sets last_residual."""
        if self.gray is None or self.mask is None:
            raise RuntimeError("FlowTracker.step before reset")
        gray = to_gray(rgb)
        flow_back = self.flow(gray, self.gray)
        self.last_residual = residual_motion(flow_back)
        self.previous_gray, self.gray = self.gray, gray
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
        if area < self.min_area or area < self.lost_fraction * reference or area > self.max_frame_fraction * mask.size:
            mask = np.zeros_like(mask)
        else:
            self._areas.append(area)
        self.mask = mask
        return mask


# ----- the given-mask tracker ------------------------------------------------------------------
#
# When the editor hands over a mask ("track this selection") the mask itself is the best
# evidence there is; re-segmenting motion on every frame throws it away. This tracker keeps
# the warped mask as a prior and asks each pixel near it two questions: does its colour look
# like the object or like the background ring around it, and does it move like the object or
# like the camera? A Bayes update of the prior with both likelihood ratios gives the new mask.

_BINS = 16  # per Lab channel: 4096 colour bins


def _colour_index(lab: np.ndarray) -> np.ndarray:
    q = (lab // (256 // _BINS)).astype(np.int32)
    return (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]


def _colour_hist(index: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """A smoothed, normalised histogram of the selected pixels' colour bins."""
    h = np.bincount(index[sel], minlength=_BINS**3).astype(np.float32)
    # Blur along the b and a axes so that a colour seen once also lends weight to its neighbours.
    h = cv2.GaussianBlur(h.reshape(_BINS * _BINS, _BINS), (3, 3), 0).reshape(-1)
    return (h + 1e-3) / (float(h.sum()) + 1e-3 * h.size)


def _ring(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask


def _object_motion(
    mask: np.ndarray,
    flow_back: np.ndarray,
    residual: np.ndarray | None = None,
    moving_px: float = 0.0,
    require_movers: bool = False,
) -> np.ndarray | None:
    """Similarity transform (2x3) carrying the previous mask to the current frame, fitted with
    RANSAC to the flow of the pixels that land inside the mask (robust to edge bleeding).

    With `residual` (motion the camera does not explain) and `moving_px`, only the landing
    pixels that move unlike the camera count when there are enough of them: a thin object
    (a rider, a bike) holds much background, whose flow would drag the mask along with it."""
    h, w = mask.shape
    ys, xs = np.mgrid[0:h:2, 0:w:2]
    px, py = xs + flow_back[ys, xs, 0], ys + flow_back[ys, xs, 1]
    ix = np.clip(np.round(px).astype(np.int32), 0, w - 1)
    iy = np.clip(np.round(py).astype(np.int32), 0, h - 1)
    core = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if core.sum() < 30:
        core = mask
    sel = core[iy, ix]
    if residual is not None and moving_px > 0:
        movers = sel & (residual[ys, xs] > moving_px)
        if movers.sum() > 0.3 * sel.sum():
            sel = movers
        elif require_movers:
            return None  # the object moved unlike the camera, and nothing under its mask does now
    if sel.sum() < 6:
        return None
    src = np.stack([px[sel], py[sel]], 1).astype(np.float32)
    dst = np.stack([xs[sel], ys[sel]], 1).astype(np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
    return matrix


@dataclass
class PriorTrackerOptions:
    dense_weight: float = 0.5  # prior = this * dense-flow warp + rest * object-motion warp
    prior_edge_px: float = 2.0  # px: the prior's certainty rises by e for each this far inside the edge
    band: int = 10  # px: the background ring the local colour model is learnt from
    anchor_weight: float = 0.7  # object colours: this much from the anchor, the rest from the last frame
    moving_px: float = 2.0  # residual (px/frame) above which a pixel moves unlike the camera
    prior_clip: float = 1e-3  # the prior never quite says certain: evidence can overrule it
    motion_spread: float = 0.25  # motion likelihood width, as a fraction of object-camera flow distance
    # Texture (sqrt of the structure tensor's smaller eigenvalue, image in 0..1) at which the flow
    # counts fully; measured 0.03-0.08 all help on DAVIS (bmx-trees 0.34 -> 0.41-0.44 J&F).
    texture: float = 0.05
    fb_px: float = 1.0  # forward-backward flow error (px) above which a pixel's flow is not trusted (0: off)
    max_growth: float = 1.2  # per frame: more is flow bleeding onto the background, cut back
    min_area_change: float = 0.7  # a refined mask outside [min, max] x the warped area is not trusted:
    max_area_change: float = 1.3  # the warped mask is kept instead
    max_size: float = 1.5  # never more than this x the expected area (the anchor's, scaled as the object moved)
    max_scale_step: float = 1.15  # per frame: the fitted similarity's area change is clipped to 1/this..this
    hold: bool = True  # while mostly hidden, keep the last shape moving with the object
    hold_fraction: float = 0.5  # "mostly hidden": the refined area below this x the usual area
    max_hold: int = 10  # frames: held longer, the smaller object is taken as it is
    # Motion evidence is at most this many nats either way (the prior reaches that 6 px inside the
    # carried edge): motion trims the edge but cannot carve the body out when parts of it move
    # like the camera (a planted foot, a goat the camera follows); was 10.
    motion_max_log: float = 3.0
    # px: the object's flow is compared with its own flow nearby (a Gaussian of this width over
    # the core), not one median for the whole body: a swinging leg or a turning head moves unlike
    # the body's median, and against the median it reads as background (0: the median only).
    local_motion_sigma: float = 24.0
    # A fast-swinging part (a dancer's legs) outruns the flow: the carried mask drops it, and the
    # prior is too sure of the edge for the colours to bring it back. While the carried mask is
    # smaller than `regrow_below` x the object's size (the anchor's, or the size the fitted
    # motion expects if larger), the moving regions (motion the camera does not explain) that
    # lie at least `moving_reach` inside it are taken as the object's moving parts: there the
    # prior is raised to `moving_prior` and the colour and motion evidence decide (0: off).
    # Only then: always on, it also took in what moves with the object (a car's shadow on the
    # road, DAVIS car-shadow 0.75 -> 0.70). Chosen while looking at DAVIS breakdance (0.11 -> 0.54).
    moving_prior: float = 0.5
    regrow_below: float = 0.8
    moving_reach: float = 0.2
    # Coast (carry the mask at its last speed) only when less than this share of the carried
    # mask moves unlike the camera: an object still moving there is visible, not hidden; coasting
    # a dancer whose centre slides as he turns carried the mask off him.
    coast_movers: float = 0.3


class PriorTracker(MaskTracker):
    """Tracks a given mask: warped prior, refined by colour and motion likelihoods."""

    def __init__(
        self,
        flow: FlowEstimator | None = None,
        options: PriorTrackerOptions | None = None,
        lost_fraction: float = 0.15,
        min_area: int = 20,
        max_frame_fraction: float = 0.6,
    ) -> None:
        super().__init__(flow, lost_fraction, min_area, max_frame_fraction)
        self.options = options or PriorTrackerOptions()
        self.index: np.ndarray | None = None  # colour bins of the previous frame
        self._anchor_hist: np.ndarray | None = None
        self.stats = {"capped": 0, "fallback": 0, "held": 0, "coasting": 0}  # how often each safeguard fired
        self._relative = np.zeros(2)  # the object's motion relative to the camera, px/frame (smoothed)
        self._anchor_area = 0
        self._expected_area = 0.0  # the anchor's area times the scale changes fitted since
        self._held_streak = 0  # consecutive frames the last shape was held

    def reset(self, rgb: np.ndarray, mask: np.ndarray) -> None:
        super().reset(rgb, mask)
        self.index = _colour_index(cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab))
        self._anchor_hist = _colour_hist(self.index, self.mask) if self.mask.any() else None
        self._held_streak = 0
        self._relative = np.zeros(2)
        self._anchor_area = int(self.mask.sum())
        self._expected_area = float(self._anchor_area)

    def step(self, rgb: np.ndarray) -> np.ndarray:
        """The mask on the next frame (empty when lost); also sets last_residual."""
        if self.gray is None or self.mask is None or self.index is None:
            raise RuntimeError("PriorTracker.step before reset")
        opt = self.options
        gray = to_gray(rgb)
        index = _colour_index(cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab))
        flow_back = self.flow(gray, self.gray)
        camera = camera_flow(flow_back)
        residual = np.linalg.norm(flow_back - camera, axis=-1)
        self.last_residual = residual
        consistent = np.ones(gray.shape, np.float32)
        if opt.fb_px > 0:
            # Pixels whose forward and backward flow disagree were hidden on the previous frame
            # (background uncovered behind a moving object, or an object coming out from behind
            # a trunk): their flow is guessed from the neighbours, often the object's, and would
            # drag the mask onto the background behind it.
            flow_fwd = self.flow(self.gray, gray)
            error = np.linalg.norm(flow_back + _remap(flow_fwd, flow_back), axis=-1)
            consistent = (error < opt.fb_px + 0.05 * np.linalg.norm(flow_back, axis=-1)).astype(np.float32)
        prev_mask, prev_index = self.mask, self.index
        self.previous_gray, self.gray, self.index = self.gray, gray, index
        if not prev_mask.any():
            return prev_mask
        h, w = prev_mask.shape
        dense = _remap(prev_mask.astype(np.float32), flow_back)
        # Pixels moving unlike the camera by at least half the object's own speed are the object's.
        speed = float(np.linalg.norm(self._relative))
        moving = speed > 2 * opt.moving_px
        matrix = _object_motion(prev_mask, flow_back, residual, max(opt.moving_px, 0.5 * speed), require_movers=moving)
        ys, xs = np.nonzero(prev_mask)
        centre = np.array([xs.mean(), ys.mean()])
        camera_fwd = -np.median(camera[prev_mask], 0)  # where the camera carries the mask's pixels
        coasting = matrix is None and moving
        if coasting:
            landing = dense > 0.5  # the carried mask (the same warp as warp_mask)
            coasting = not landing.any() or float((residual[landing] > opt.moving_px).mean()) <= opt.coast_movers
        if coasting:
            # A moving object whose pixels all stopped moving unlike the camera is hidden (or the
            # flow lost it): carry the mask at its last speed relative to the camera.
            shift = camera_fwd + self._relative
            matrix = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
            self.stats["coasting"] += 1
        if matrix is not None and not coasting:
            # The similarity's determinant is the object's area change (it approaches the camera
            # or goes away): the size limits follow it, so a car that grows 5x over the clip is
            # not cut back to its first size.
            step = float(np.clip(abs(np.linalg.det(matrix[:, :2])), 1 / opt.max_scale_step, opt.max_scale_step))
            self._expected_area *= step
        rigid = cv2.warpAffine(prev_mask.astype(np.float32), matrix, (w, h)) if matrix is not None else dense
        # While coasting the dense flow under the mask is the occluder's or the background's.
        # Flow is only measured where the image has texture; on a plain patch (a long shadow, a
        # plain shirt) it is filled in from the neighbours (often the background's): there the
        # object's own motion carries the mask, and motion is no evidence either way.
        texture = np.clip(np.sqrt(np.maximum(cv2.cornerMinEigenVal(gray, 5), 0)) / opt.texture, 0, 1)
        texture = texture * consistent
        dense_weight = opt.dense_weight * texture
        prior = rigid if coasting else dense_weight * dense + (1.0 - dense_weight) * rigid
        warped = prior > 0.5
        if not warped.any():
            self.mask = warped
            return warped
        # How sure the prior is grows with the distance from the carried mask's edge, on either
        # side (a logistic of the signed distance); a Gaussian blur of the mask would also wash
        # out its thin parts (a shadow, a wheel) and let the evidence drop them.
        inside = cv2.distanceTransform(warped.astype(np.uint8), cv2.DIST_L2, 3)
        outside = cv2.distanceTransform((~warped).astype(np.uint8), cv2.DIST_L2, 3)
        signed = np.clip((inside - outside) / opt.prior_edge_px, -30, 30)
        p = np.clip((1.0 / (1.0 + np.exp(-signed))).astype(np.float32), opt.prior_clip, 1 - opt.prior_clip)
        if opt.moving_prior > 0 and warped.sum() < opt.regrow_below * max(self._anchor_area, self._expected_area):
            count, labels = cv2.connectedComponents(moving_map([residual]).astype(np.uint8), connectivity=8)
            inside_share = np.bincount(labels[warped], minlength=count) / np.bincount(labels.ravel(), minlength=count)
            parts = inside_share >= opt.moving_reach
            parts[0] = False  # the background label
            p = np.where(parts[labels], np.maximum(p, opt.moving_prior), p).astype(np.float32)

        # Colour: object histogram (anchor + last frame) against the local background ring.
        fg = (
            opt.anchor_weight * self._anchor_hist + (1 - opt.anchor_weight) * _colour_hist(prev_index, prev_mask)
            if self._anchor_hist is not None
            else _colour_hist(prev_index, prev_mask)
        )
        bg = _colour_hist(prev_index, _ring(prev_mask, opt.band))
        ratio = fg[index] / bg[index]

        # Motion: distance to the object's flow against distance to the camera's flow. The
        # object's flow is taken from its moving core (the warped core may hold some background
        # the flow bled over), as the flow of the core's parts near each pixel (see
        # local_motion_sigma) or, far from them, the core's median; it says nothing when the
        # camera follows the object.
        core = cv2.erode(warped.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if core.sum() < 20:
            core = warped
        movers = core & (residual > opt.moving_px)
        source = movers if movers.sum() > 0.3 * core.sum() else core
        f_obj = np.median(flow_back[source], 0)
        if opt.local_motion_sigma <= 0:
            spread = max(1.0, opt.motion_spread * float(np.linalg.norm(f_obj - np.median(camera[core], 0))))
        else:
            # Normalised convolution of the core's flow: each pixel's "object flow" is that of
            # the object's parts around it; far from every part (weight < 5 %) it falls back
            # to the median.
            weight = source.astype(np.float32)
            near = cv2.GaussianBlur(weight, (0, 0), opt.local_motion_sigma)
            local = cv2.GaussianBlur(flow_back * weight[..., None], (0, 0), opt.local_motion_sigma)
            local /= np.maximum(near, 1e-6)[..., None]
            trust = np.clip(near / 0.05, 0, 1)[..., None]
            f_obj = trust * local + (1 - trust) * f_obj
            spread = np.maximum(1.0, opt.motion_spread * np.linalg.norm(f_obj - camera, axis=-1))
        d_obj = ((flow_back - f_obj) ** 2).sum(-1)
        d_cam = ((flow_back - camera) ** 2).sum(-1)
        motion = np.clip((d_cam - d_obj) / (2 * spread * spread), -opt.motion_max_log, opt.motion_max_log)
        ratio = ratio * np.exp(motion * texture)

        post = cv2.GaussianBlur((p * ratio / (p * ratio + (1 - p))).astype(np.float32), (0, 0), 1.0)
        mask = post > 0.5
        cap = opt.max_growth * int(prev_mask.sum())
        if mask.sum() > cap:
            # Growing faster than an object can (flow bleeding onto the background): keep
            # the pixels the evidence is surest of, up to the cap.
            mask = post >= np.sort(post[mask])[::-1][int(cap)]
            self.stats["capped"] += 1
        # Only the parts that touch the warped mask: look-alike colours far away are not the object.
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        keep = np.zeros(count, bool)
        keep[np.unique(labels[mask & warped])] = True
        keep[0] = False
        mask = keep[labels]
        area, warped_area = int(mask.sum()), int(warped.sum())
        if not opt.min_area_change * warped_area <= area <= opt.max_area_change * warped_area:
            mask = warped
            self.stats["fallback"] += 1
        area = int(mask.sum())
        reference = float(np.median(self._areas)) if self._areas else float(area)
        limit = opt.max_size * max(self._expected_area, self.min_area)
        if area > limit:
            # Bigger than the object ever was by this much: background taken in. Keep the pixels
            # the evidence is surest of.
            mask = post >= np.sort(post[mask])[::-1][int(limit)]
            area = int(mask.sum())
            self.stats["capped"] += 1
        held_before = self.stats["held"]
        held = rigid > 0.5
        shrunk = area < opt.hold_fraction * reference
        if opt.hold and shrunk and held.sum() >= self.min_area and self._held_streak < opt.max_hold:
            # Mostly hidden (a tree in front): keep the last shape, moved as the object moves,
            # and learn nothing from this frame; the colours and motion take over when it shows again.
            mask = held
            self.stats["held"] += 1
            self._held_streak += 1
        elif shrunk and self._held_streak >= opt.max_hold and area >= self.min_area:
            # Smaller for longer than an occlusion lasts: the object itself got smaller (it went
            # away from the camera). The evidence's mask is its new size.
            self._areas.clear()
            self._areas.append(area)
            self._held_streak = 0
        elif (
            area < self.min_area or area < self.lost_fraction * reference or area > self.max_frame_fraction * mask.size
        ):
            mask = np.zeros_like(mask)
        else:
            self._areas.append(area)
            self._held_streak = 0
        if matrix is not None and not coasting and self.stats["held"] == held_before:
            moved = matrix @ np.array([centre[0], centre[1], 1.0]) - centre
            self._relative = 0.5 * self._relative + 0.5 * (moved - camera_fwd)
        self.mask = mask
        return mask
