"""The masker that needs no weights: moving objects, named by colour, place, size, motion.

Grounding: moving-object segmentation (segment.py) on the first frame where
something moves, ranked by the words of the prompt (../ranking.py); or the
box, points or one-frame mask the editor gave. Tracking: the shared loop
(../tracking.py) with this backend's per-frame step, flow warping plus GrabCut
or the given-mask prior tracker (flowtrack.py). CME: the tracked mask's colour
feature against the memory of the target; a low score with a better-matching
moving candidate elsewhere means the tracker slid onto a look-alike, so the
loop re-anchors there. When the tracker loses the object, moving candidates
that look like it are searched on every frame.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ...errors import PromptError
from ...media import VideoSource
from ...progress import Reporter
from ..base import FramePrompt, Masker, MaskerOptions, MaskPrompt, MaskReport, PointPrompt
from ..candidates import Candidate, bounding_box, box_iou, candidate_from_mask
from ..colour import colour_descriptor, colour_fractions, colour_pixels
from ..frames import WorkFrame, working_frames, working_scale
from ..memory import AppearanceMemory
from ..postprocess import fill_small_holes, soft_mask, to_source
from ..prompt import PromptNotUnderstood, PromptQuery, parse_prompt, refusal_message, words_without_meaning
from ..ranking import describe_choice, rank_candidates
from ..tracking import Keyframe, Reanchor, TrackingBackend, track
from .flowtrack import FlowTracker, MaskTracker, PriorTracker
from .segment import FlowEstimator, TrackingFlowEstimator, grabcut, refine_mask, residual_motion, segment_moving

log = logging.getLogger(__name__)

APPROXIMATE_WARNING = (
    "approximate: the no-weights masker could not check {words}; it took the best match on the "
    "other words (colour, position, size, order, motion) or on the box/points"
)


@dataclass
class CMESettings:
    tau: float = 0.75  # consistency needed to write the memory
    switch_margin: float = 0.1  # a look-alike must beat the tracked mask by this much
    max_overlap: float = 0.3  # candidates overlapping the tracked mask more are the same object
    lost_tau: float = 0.4  # below this the mask is on background, not the target: lost


class _MotionModel:
    """Where the target was and how fast it went: predicts its place while it is hidden."""

    def __init__(self, history: int = 6) -> None:
        self.track: deque[tuple[int, float, float, int]] = deque(maxlen=history)

    def update(self, index: int, mask: np.ndarray) -> None:
        ys, xs = np.nonzero(mask)
        if len(xs):
            self.track.append((index, float(xs.mean()), float(ys.mean()), len(xs)))

    @property
    def area(self) -> float:
        """The target's usual size: a mask shrinking while the object is being lost (partly
        hidden, or the tracker sliding off it) does not count, or the object found again at
        its full size would look too big to be it."""
        if not self.track:
            return 0.0
        areas = np.array([a for *_, a in self.track], float)
        return float(np.median(areas[areas >= 0.5 * areas.max()]))

    def predict(self, index: int) -> tuple[float, float] | None:
        if not self.track:
            return None
        i1, x1, y1, _ = self.track[-1]
        i0, x0, y0, _ = self.track[0]
        if i1 == i0:
            return x1, y1
        vx, vy = (x1 - x0) / (i1 - i0), (y1 - y0) / (i1 - i0)
        return x1 + vx * (index - i1), y1 + vy * (index - i1)


class _ColourBlobs:
    """The compact blobs of the named colour in the whole frame, to complete a part of one.

    Motion segmentation finds only the parts of a slow or evenly textured object whose
    motion stands out (often the leading and trailing edges), so the named-colour part of
    a moving region can be half a ball. Its whole blob of that colour is the object, when
    that blob is compact and not much larger than the part: a ball, not the lawn it rolls on.
    """

    MAX_GROWTH = 4.0  # the completed blob may be at most this many times the part
    MIN_GROWTH = 1.25  # a part that is nearly its whole blob already is left as it is

    def __init__(self, in_colour: np.ndarray) -> None:
        closed = cv2.morphologyEx(in_colour.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        _, self.labels, self.stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)

    def complete(self, part: np.ndarray) -> np.ndarray:
        touching = np.unique(self.labels[part])
        touching = touching[touching > 0]
        if len(touching) != 1:
            return part
        k = int(touching[0])
        area = int(self.stats[k, cv2.CC_STAT_AREA])
        box = int(self.stats[k, cv2.CC_STAT_WIDTH]) * int(self.stats[k, cv2.CC_STAT_HEIGHT])
        size = int(part.sum())
        if not self.MIN_GROWTH * size <= area <= self.MAX_GROWTH * size or area < 0.5 * box:
            return part
        return part | (self.labels == k)


def _cut_from_movers(rgb: np.ndarray, movers: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """GrabCut started from what moves in a box (probably object; the rest of the box probably
    background, outside it background): the movers' blocky outline snapped to colour edges.
    The movers themselves when the cut is empty or drops half of them."""
    labels = np.where(inside, cv2.GC_PR_BGD, cv2.GC_BGD).astype(np.uint8)
    labels[movers] = cv2.GC_PR_FGD
    cut = grabcut(rgb, labels, 4)
    if cut is None:
        return movers
    cut = cut[0] & inside
    return cut if (cut & movers).sum() >= 0.5 * movers.sum() else movers


def _in_colour(rgb: np.ndarray, colours: list[str]) -> np.ndarray:
    """Pixels of any of the named colours."""
    return np.logical_or.reduce([colour_pixels(rgb, colour) for colour in colours])


def _shade_ratio(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hue x saturation table, 0-255: how much more often each shade is on the object than
    off it (for cv2.calcBackProject): the object's own shades, not its colour's whole range."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    sel = mask.astype(np.uint8)
    on = cv2.calcHist([hsv], [0, 1], sel, [45, 32], [0, 180, 0, 256])
    off = cv2.calcHist([hsv], [0, 1], 1 - sel, [45, 32], [0, 180, 0, 256])
    on, off = on / max(float(on.sum()), 1.0), off / max(float(off.sum()), 1.0)
    return (255 * on / (on + off + 1e-6)).astype(np.float32)


class MotionMasker(Masker, TrackingBackend):
    name = "motion"
    learned = False
    tracks_given_mask = True
    work_max_side = 480
    # GrabCut after each warp: sharp edges on clean objects; on cluttered real footage
    # plain warping + motion re-segmentation scores higher (see benchmarks/masker_sweep.py).
    refine_tracking = True
    # A mask the editor gave (or a box, points) is tracked as a prior refined by colour and motion
    # likelihoods (flowtrack.PriorTracker): on DAVIS footage it holds the object far better
    # than re-segmenting motion. Set False for the grounded path's tracker.
    prior_tracking = True
    box_moving_px = 1.0  # residual motion (px/frame) that marks the moving part of a box
    # A box on a later frame confirms the tracked mask when their bounding boxes overlap this
    # much (IoU); set before it was measured, see _anchor_at_keyframe.
    keyframe_box_agreement = 0.7
    min_part_px = 100  # working-resolution pixels: smaller colour blobs of a merged region are flecks

    def __init__(self, cme: CMESettings | None = None) -> None:
        super().__init__()
        self.cme = cme or CMESettings()
        self.flow = FlowEstimator()
        self.tracking_flow = TrackingFlowEstimator()
        self._given_mask = False  # tracking a mask the editor gave (or pointed at): PriorTracker
        self._motion = _MotionModel()  # where the target went, going forwards
        self._colour_lock: list[str] = []  # colours a text-grounded target is held to
        self._lock_area = 0  # ... and its size when it was found
        self._lock_shades: np.ndarray | None = None  # ... and its own shades of that colour (_shade_ratio)

    def for_call(self) -> MotionMasker:
        call = super().for_call()
        call.flow = FlowEstimator()  # OpenCV's DIS object is not shared between threads
        call.tracking_flow = TrackingFlowEstimator()
        return call

    @classmethod
    def accepts(cls, prompt: MaskPrompt) -> bool:
        return bool(prompt.text or prompt.frame_prompts)

    @classmethod
    def unchecked_words(cls, prompt: MaskPrompt) -> list[str]:
        return words_without_meaning(prompt.text, with_box=bool(prompt.frame_prompts))

    # ----- frames -------------------------------------------------------------------------

    def _scale(self, source: VideoSource) -> float:
        return working_scale(source, self.work_max_side)

    def _work(self, source: VideoSource, start: int, end: int) -> Iterator[WorkFrame]:
        for index, rgb in working_frames(source, start, end, self.work_max_side):
            yield WorkFrame(index, rgb)

    def _residuals(self, frame: WorkFrame, neighbours: list[WorkFrame]) -> list[np.ndarray]:
        return [residual_motion(self.flow(frame.gray, n.gray)) for n in neighbours]

    # ----- grounding ----------------------------------------------------------------------

    def _ground(self, query: PromptQuery, frames: list[WorkFrame], k: int) -> tuple[Candidate, float, str]:
        """Rank the moving objects of frames[k] (its neighbours give the motion)."""
        frame = frames[k]
        neighbours = [frames[j] for j in (k - 1, k + 1) if 0 <= j < len(frames)]
        candidates = segment_moving(frame.rgb, self._residuals(frame, neighbours))
        in_colour = _in_colour(frame.rgb, query.colours) if query.colours else None
        if in_colour is not None:
            candidates = self._split_by_colour(frame.rgb, candidates, in_colour)
        h, w = frame.gray.shape
        ranked = rank_candidates(query, candidates, (w, h))
        best = candidates[ranked[0].index]
        if in_colour is not None:
            # Motion segmentation finds only the parts of a slow or evenly textured object
            # whose motion stands out, so the chosen part can be half a ball: complete it
            # to its whole blob of the named colour. Only the chosen one: the others were
            # ranked as found, and a blob grown while tracking could join the object to a
            # same-coloured patch it passes.
            best = self._completed(frame.rgb, best, _ColourBlobs(in_colour))
        return best, ranked[0].score, describe_choice(query, best, ranked[0], frame.index, len(candidates))

    def _colour_share(self, rgb: np.ndarray, mask: np.ndarray) -> float:
        return float((_in_colour(rgb, self._colour_lock) & mask).sum()) / max(int(mask.sum()), 1)

    def _colour_parts(self, rgb: np.ndarray, c: Candidate, in_colour: np.ndarray) -> list[Candidate]:
        """The parts of a moving region in the named colour that stand out as compact blobs.

        On real footage with a moving camera, motion segmentation merges a small object with
        what is next to it (a red ball with red graffiti, a blue ball with a yellow wall, a
        ball with the player it passes). Each compact blob of the named colour inside the
        region is then a candidate of its own; regions where the colour is scattered, or that
        are the coloured object already, stay as they are. `in_colour`: the frame's pixels
        of the named colours (computed once per frame, not per region)."""
        named = in_colour & c.mask
        if named.sum() < 30 or named.sum() > 0.8 * c.area:
            return [c]
        named = cv2.morphologyEx(named.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(named, connectivity=8)
        parts = []
        for k in range(1, count):
            area = int(stats[k, cv2.CC_STAT_AREA])
            bw, bh = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
            if area < self.min_part_px or area < 0.5 * bw * bh:  # a compact blob, not a fleck or a streak
                continue
            if area > 0.75 * c.area:
                return [c]  # the region is the coloured object already (its texture has other shades)
            parts.append(candidate_from_mask(rgb, fill_small_holes(labels == k, max(64, area // 4)), c.speed))
        return parts or [c]

    @staticmethod
    def _completed(rgb: np.ndarray, c: Candidate, whole: _ColourBlobs) -> Candidate:
        """`c` completed to its whole compact blob of the named colour (see _ColourBlobs)."""
        mask = whole.complete(c.mask)
        return (
            c
            if mask.sum() == c.area
            else candidate_from_mask(rgb, fill_small_holes(mask, max(64, c.area // 4)), c.speed)
        )

    def _split_by_colour(self, rgb: np.ndarray, candidates: list[Candidate], in_colour: np.ndarray) -> list[Candidate]:
        return [part for c in candidates for part in self._colour_parts(rgb, c, in_colour)]

    def _anchor_from_frame_prompt(self, fp: FramePrompt, frames: list[WorkFrame], k: int, scale: float) -> np.ndarray:
        frame = frames[k]
        h, w = frame.gray.shape
        if fp.box is not None:
            x0, y0, x1, y1 = (int(round(v * scale)) for v in fp.box)
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                raise PromptError(f"the box on frame {fp.frame} is empty or outside the frame", code="PROMPT_BAD_BOX")
            mask = self._mask_in_box(frames, k, (x0, y0, x1, y1))
            negatives = [(p.x * scale, p.y * scale) for p in fp.points if not p.positive]
            return self._exclude(mask, negatives)
        positives = [(p.x * scale, p.y * scale) for p in fp.points if p.positive]
        if not positives:
            raise PromptError(f"frame {fp.frame} has no positive point or box", code="PROMPT_NO_POINTS")
        neighbours = [frames[j] for j in (k - 1, k + 1) if 0 <= j < len(frames)]
        candidates = segment_moving(frame.rgb, self._residuals(frame, neighbours)) if neighbours else []
        hit = [c for c in candidates if any(c.mask[min(h - 1, int(y)), min(w - 1, int(x))] for x, y in positives)]
        negatives = [(p.x * scale, p.y * scale) for p in fp.points if not p.positive]
        hit = [c for c in hit if not any(c.mask[min(h - 1, int(y)), min(w - 1, int(x))] for x, y in negatives)]
        if hit:
            return np.logical_or.reduce([c.mask for c in hit])
        # No moving object under the points: GrabCut in a box around them.
        r = max(h, w) // 8
        xs, ys = [p[0] for p in positives], [p[1] for p in positives]
        seed = np.zeros((h, w), bool)
        seed[max(0, int(min(ys)) - r) : int(max(ys)) + r, max(0, int(min(xs)) - r) : int(max(xs)) + r] = True
        return refine_mask(frame.rgb, seed)

    def _mask_in_box(self, frames: list[WorkFrame], k: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """The object inside a box: GrabCut from the box, checked against what moves in it.

        GrabCut alone takes whatever differs in colour from the box's surroundings; on real
        footage that is often the floor under a player. When part of the box moves unlike the
        camera, that part is the object: GrabCut's cut is kept where it agrees with it, and
        replaced by it where the two disagree (see below). On the 34 tuning clips (frame 0,
        benchmarks/masker_box_cut.py) the two rules for disagreement took the mean J from 0.648
        to 0.678: car-turn 0.19 -> 0.81, flamingo 0.55 -> 0.78, boat 0.54 -> 0.70, no clip down.
        """
        frame = frames[k]
        h, w = frame.gray.shape
        x0, y0, x1, y1 = box
        inside = np.zeros((h, w), bool)
        inside[y0:y1, x0:x1] = True
        cut = grabcut(frame.rgb, np.zeros((h, w), np.uint8), 4, rect=(x0, y0, x1 - x0, y1 - y0))
        cut = inside if cut is None else cut[0] & inside
        neighbour = frames[k + 1] if k + 1 < len(frames) else frames[k - 1] if k > 0 else None
        if neighbour is None:
            return cut if cut.any() else inside
        residual = residual_motion(self.flow(frame.gray, neighbour.gray))
        movers = (residual > self.box_moving_px) & inside
        movers = (
            cv2.morphologyEx(
                movers.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
            ).astype(bool)
            & inside
        )
        if movers.sum() < 0.1 * inside.sum():
            return cut if cut.any() else inside  # a still object: colour is all there is
        agree = (cut & movers).sum() / max((cut | movers).sum(), 1)
        self.report.extra["box"] = f"grabcut/motion agreement {agree:.2f}"
        if agree >= 0.4:
            return cut & movers
        # They disagree. A few moving parts inside a cut much larger than they are (the wheels
        # and front of a turning car the camera follows) are the object's: the cut holds it.
        # Movers outside the cut, or as large as it, mean GrabCut took something else (the
        # floor under a player): the movers are the object, snapped to its colour edges.
        if (cut & movers).sum() >= 0.7 * movers.sum() and movers.sum() < 0.25 * cut.sum():
            return cut
        return _cut_from_movers(frame.rgb, movers, inside)

    @staticmethod
    def _read_given_mask(path: str, frame: WorkFrame) -> np.ndarray:
        """A one-image mask (the object on the prompted frame) at working resolution."""
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise PromptError(f"cannot read the mask image {path}", code="PROMPT_BAD_MASK")
        h, w = frame.gray.shape
        mask = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) > 127
        if not mask.any():
            raise PromptError(f"the mask image {path} is empty: nothing to track", code="PROMPT_BAD_MASK")
        return mask

    @staticmethod
    def _check_words(query: PromptQuery, frame: WorkFrame, mask: np.ndarray, index: int) -> None:
        """Text plus a box: the box picks the object, the colour and position words must fit it."""
        if not mask.any():
            return
        fractions = colour_fractions(frame.rgb, mask)
        for colour in query.colours:
            if fractions[colour] < 0.15:
                raise PromptError(
                    f"the object in the box on frame {index} is not {colour} ({colour} covers "
                    f"{100 * fractions[colour]:.0f}% of it): check the box or the words",
                    code="PROMPT_BOX_MISMATCH",
                )
        h, w = mask.shape
        ys, xs = np.nonzero(mask)
        cx, cy = xs.mean() / w, ys.mean() / h
        wrong = {
            "left": cx > 0.5,
            "right": cx < 0.5,
            "top": cy > 0.5,
            "bottom": cy < 0.5,
            "centre": abs(cx - 0.5) > 0.25 or abs(cy - 0.5) > 0.25,
        }
        for position in query.position:
            if wrong.get(position):
                raise PromptError(
                    f"the object in the box on frame {index} is not on the {position} of the "
                    f"picture: check the box or the words",
                    code="PROMPT_BOX_MISMATCH",
                )

    @staticmethod
    def _exclude(mask: np.ndarray, negatives: list[tuple[float, float]]) -> np.ndarray:
        """Drop the connected parts of the mask under an excluded point."""
        if not negatives or not mask.any():
            return mask
        h, w = mask.shape
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        drop = {int(labels[min(h - 1, int(y)), min(w - 1, int(x))]) for x, y in negatives} - {0}
        return mask & ~np.isin(labels, list(drop)) if drop else mask

    # ----- the interface ------------------------------------------------------------------

    def masks(
        self, source: VideoSource, start: int, end: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> Iterator[np.ndarray]:
        self.report = MaskReport(backend=self.name, extra={"grounder": "motion", "tracker": "flow+grabcut"})
        self._colour_lock, self._lock_shades = [], None
        reporter.stage("mask", end - start)
        cv2.setRNGSeed(options.seed)  # GrabCut's k-means start: same input, same masks
        self._vocabulary_warning(prompt, reporter)
        scale = self._scale(source)
        frames_in = self._work(source, start, end)
        cache: list[WorkFrame] = []
        anchor_k, anchor_mask = self._find_anchor(prompt, frames_in, cache, scale, reporter)
        # A box or points is the editor pointing at the object, like a given mask: tracked the same way.
        given_mask = self.prior_tracking and bool(prompt.frame_prompts)
        self._given_mask = given_mask
        if given_mask:
            self.report.extra["tracker"] = "flow prior + colour/motion likelihoods"
        self._motion = _MotionModel()
        size = (source.info.width, source.info.height)
        keyframes = self._keyframes(prompt, cache[anchor_k].index, scale)
        yield from track(self, cache, frames_in, anchor_k, anchor_mask, size, options, reporter, self.report, keyframes)

    def preview(
        self, source: VideoSource, frame: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> tuple[np.ndarray, MaskReport]:
        """The mask on one frame, grounded with its two neighbours for motion."""
        given = prompt.tracked_mask_frame
        if given is not None:
            # A mask of frame `given`: track it to the previewed frame.
            lo, hi = min(given, frame), max(given, frame) + 1
            masks = list(self.masks(source, lo, hi, prompt, options, reporter))
            return masks[frame - lo], self.report
        self.report = MaskReport(backend=self.name, extra={"grounder": "motion", "tracker": "none"})
        cv2.setRNGSeed(options.seed)  # as in masks(): the same box previewed twice gives the same cut
        lo, hi = max(0, frame - 1), min(source.info.frame_count, frame + 2)
        frames = list(self._work(source, lo, hi))
        k = frame - lo
        scale = self._scale(source)
        self._vocabulary_warning(prompt, reporter)
        fps = [fp for fp in prompt.frame_prompts if fp.frame == frame]
        if fps:
            mask = self._anchor_from_frame_prompt(fps[0], frames, k, scale)
            self.report.chosen_object, self.report.score = f"the object at the given points/box on frame {frame}", 1.0
        else:
            query = parse_prompt(prompt.text)
            best, score, text = self._ground(query, frames, k)
            mask, self.report.chosen_object, self.report.score = best.mask, text, score
        size = (source.info.width, source.info.height)
        return fill_small_holes(to_source(soft_mask(mask), size, options.threshold), options.fill_holes), self.report

    # ----- internals ----------------------------------------------------------------------

    def _vocabulary_warning(self, prompt: MaskPrompt, reporter: Reporter) -> None:
        """Name the words that were not checked (once: the report carries it to the job result).

        The pipeline refuses such a prompt unless it is approximate; a caller that bypasses
        the pipeline and did not ask for an approximation is refused here too."""
        words = self.unchecked_words(prompt)
        if not words:
            return
        if not prompt.approximate:
            raise PromptNotUnderstood(refusal_message("no-weights", words))
        self.report.ignored_words = words
        message = APPROXIMATE_WARNING.format(words=", ".join(f'"{w}"' for w in words))
        self.report.warnings.append(message)
        reporter.warn(message)

    def _find_anchor(
        self,
        prompt: MaskPrompt,
        frames_in: Iterator[WorkFrame],
        cache: list[WorkFrame],
        scale: float,
        reporter: Reporter,
    ) -> tuple[int, np.ndarray]:
        """Read frames until the object is found; returns (index into cache, working mask)."""
        if prompt.frame_prompts:
            given = prompt.tracked_mask_frame
            fp = min(prompt.frame_prompts, key=lambda f: (f.frame != given, f.frame))  # the mask's frame first
            for frame in frames_in:
                cache.append(frame)
                if frame.index > fp.frame:  # one frame after the prompt, for its motion
                    break
            ks = [k for k, f in enumerate(cache) if f.index == fp.frame]
            if not ks:
                raise PromptError(f"the points/box are on frame {fp.frame}, outside the range", code="PROMPT_BAD_FRAME")
            if prompt.tracked_mask_frame is not None:
                mask = self._read_given_mask(prompt.mask_path, cache[ks[0]])
            else:
                mask = self._anchor_from_frame_prompt(fp, cache, ks[0], scale)
            if prompt.text:
                self._check_words(parse_prompt(prompt.text), cache[ks[0]], mask, fp.frame)
            self.report.chosen_object, self.report.score = (
                f"the object at the given points/box on frame {fp.frame}",
                1.0,
            )
            self.report.extra["grounder"] = "points/box"
            return ks[0], mask
        query = parse_prompt(prompt.text)
        last_error: PromptError | None = None

        def attempt(k: int) -> tuple[int, np.ndarray] | None:
            nonlocal last_error
            try:
                best, score, text = self._ground(query, cache, k)
            except PromptError as exc:
                if exc.code == "PROMPT_AMBIGUOUS":
                    raise
                last_error = exc
                return None
            self.report.chosen_object, self.report.score = text, score
            # A target that is mostly the named colour keeps to it while tracked.
            if query.colours and sum(best.colours.get(c, 0.0) for c in query.colours) >= 0.6:
                self._colour_lock, self._lock_area = list(query.colours), best.area
                self._lock_shades = _shade_ratio(cache[k].rgb, best.mask)
            return k, best.mask

        for frame in frames_in:
            cache.append(frame)
            # Ground on the frame before the newest one, so it has neighbours on both sides.
            if len(cache) >= 3 and (found := attempt(len(cache) - 2)) is not None:
                return found
        if 1 < len(cache) < 3 and (found := attempt(0)) is not None:
            return found
        if last_error is not None:
            raise last_error
        raise PromptError(
            f"found no moving object for \u201c{prompt.text}\u201d in a range of "
            f"{len(cache)} frame(s); motion needs at least two frames",
            code="PROMPT_NOTHING_FOUND",
        )

    def _keyframes(self, prompt: MaskPrompt, anchor_index: int, scale: float) -> dict[int, Keyframe]:
        """The boxes/points on frames after the anchor's: the tracker restarts from each (tracking.py)."""

        def keyframe(fp: FramePrompt) -> Keyframe:
            return lambda frame, previous, carried: self._anchor_at_keyframe(fp, frame, previous, carried, scale)

        return {
            fp.frame: keyframe(fp)
            for fp in prompt.frame_prompts
            if fp.frame > anchor_index and (fp.box is not None or fp.points)
        }

    def _anchor_at_keyframe(
        self, fp: FramePrompt, frame: WorkFrame, previous: WorkFrame, carried: np.ndarray, scale: float
    ) -> np.ndarray | None:
        """The editor's box or points on a later frame, as a mask to restart the tracker from.

        The "check frames" warning also names frames the tracker got right, and a box cut is
        weaker than a tracked mask (benchmarks/masker_box_cut.py: mean J 0.65 on the tuning
        clips): where the mask the tracker carried to this frame fits the editor's mark (its
        bounding box overlaps the box by keyframe_box_agreement, or it holds every positive
        point and no excluded one), the mark confirms it, and None says so: the running pass
        goes on. Only a mark the carried mask does not fit is cut afresh (with the motion
        between this frame and the one before).
        """
        h, w = carried.shape
        if carried.any() and fp.box is not None:
            box = tuple(v * scale for v in fp.box)
            if box_iou(box, bounding_box(carried)) >= self.keyframe_box_agreement:
                return None
        elif carried.any() and fp.points:

            def under(p: PointPrompt) -> bool:
                return bool(carried[min(h - 1, int(p.y * scale)), min(w - 1, int(p.x * scale))])

            if all(under(p) == p.positive for p in fp.points):
                return None
        return self._anchor_from_frame_prompt(fp, [previous, frame], 1, scale)

    def _tracker(self, given_mask: bool) -> MaskTracker:
        if given_mask:
            return PriorTracker(self.tracking_flow)
        return FlowTracker(self.tracking_flow, refine=self.refine_tracking)

    # ----- the per-frame part of tracking (tracking.py runs the loop) -----------------------

    @property
    def tau(self) -> float:
        return self.cme.tau

    def track_start(self, frame: WorkFrame, anchor: np.ndarray) -> tuple[MaskTracker, np.ndarray]:
        tracker = self._tracker(self._given_mask)
        tracker.reset(frame.rgb, anchor)
        return tracker, anchor

    def track_step(self, run: MaskTracker, frame: WorkFrame, memory: AppearanceMemory, forward: bool) -> np.ndarray:
        mask = self._checked_step(run, frame, memory)
        if forward and not run.lost and mask.sum() > 1.5 * self._motion.area:
            # The mask grew over something else (two objects touching): keep the part
            # that looks and moves like the target.
            mask = self._split(frame, mask, memory, self._motion)
            run.mask = mask
        return mask

    def track_lost(self, run: MaskTracker) -> bool:
        return run.lost

    def track_feature(self, frame: WorkFrame, output: np.ndarray) -> np.ndarray:
        return colour_descriptor(frame.rgb, output)

    def track_probability(self, output: np.ndarray) -> np.ndarray:
        return soft_mask(output)

    def track_reacquire(self, frame: WorkFrame, run: MaskTracker, memory: AppearanceMemory) -> Reanchor | None:
        if self._colour_lock:
            # The named colour's blob of the target's size where the target should be.
            blob = self._colour_blob(frame, np.zeros(frame.gray.shape, bool), memory)
            if blob is not None:
                return Reanchor(blob)
        found = self._reacquire(frame, self._search_residual(frame, run), memory, self._motion)
        return Reanchor(found.mask) if found is not None else None

    def track_lookalike(
        self,
        frame: WorkFrame,
        output: np.ndarray,
        run: MaskTracker,
        memory: AppearanceMemory,
        score: float,
    ) -> Reanchor | None:
        other = self._lookalike_check(frame, self._search_residual(frame, run), output, memory, score, self._motion)
        return Reanchor(other.mask, feature=other.feature) if other is not None else None

    def _search_residual(self, frame: WorkFrame, run: MaskTracker) -> np.ndarray | None:
        """The motion the camera does not explain on `frame`, on the flow grounding reads: a
        search for the object (after a loss, or for a look-alike) segments what moves with
        grounding's thresholds, which were set on that flow and not on the tracker's finer one."""
        if run.previous_gray is None:
            return None
        return residual_motion(self.flow(frame.gray, run.previous_gray))

    def track_repair_step(self, run: MaskTracker, frame: WorkFrame, memory: AppearanceMemory) -> np.ndarray | None:
        # The bare tracker step: a repair stops where the tracker loses the object.
        mask = run.step(frame.rgb)
        return None if run.lost else mask

    def track_prefer_repaired(
        self, frame: WorkFrame, repaired: np.ndarray, old: np.ndarray, memory: AppearanceMemory
    ) -> bool:
        # Taken when it agrees better with the memory than the mask the frame has.
        s_new = memory.score(colour_descriptor(frame.rgb, repaired))
        s_old = memory.score(colour_descriptor(frame.rgb, old)) if old.any() else -1.0
        return s_new >= s_old

    def track_settled(self, frame: WorkFrame, output: np.ndarray) -> None:
        if output.any():
            self._motion.update(frame.index, output)

    def _checked_step(self, tracker: MaskTracker, frame: WorkFrame, memory: AppearanceMemory) -> np.ndarray:
        """One tracker step; a mask that looks nothing like the target (it stayed on the
        background after the object vanished) counts as lost."""
        mask = tracker.step(frame.rgb)
        if mask.any() and self._colour_lock and self._colour_share(frame.rgb, mask) < 0.8:
            # The sentence named the object's colour and the object is that colour: when the
            # tracked mask is no longer mostly that colour, what the tracker added in other
            # colours (the shadow, the foot it passes) is not the object.
            # Look around the tracked mask as far as half the object's size: flow lags behind a
            # small fast object, and the colour finds it again.
            r = max(3, int(0.5 * np.sqrt(self._lock_area)))
            near = cv2.dilate(
                mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            ).astype(bool)
            parts = self._colour_parts(
                frame.rgb, candidate_from_mask(frame.rgb, near), _in_colour(frame.rgb, self._colour_lock)
            )
            part = max(parts, key=lambda p: (p.mask & mask).sum())  # the blob the tracked mask is on
            overlap = (part.mask & mask).sum() / max(int((part.mask | mask).sum()), 1)
            # Only a clear difference counts (the mask lags or holds other things); a ball whose
            # texture has other shades at its rim stays as tracked.
            if part.mask is not near and overlap < 0.8 and 0.3 * int(mask.sum()) <= part.area <= 1.5 * self._lock_area:
                mask = part.mask
                tracker.mask = mask
        if self._colour_lock and mask.any():
            blob = self._colour_blob(frame, mask, memory)
            if blob is None:
                blob = self._one_part(frame, mask, memory)
            if blob is not None:
                mask = blob
                tracker.mask = mask
        if mask.any() and memory.score(colour_descriptor(frame.rgb, mask)) < self.cme.lost_tau:
            mask = np.zeros_like(mask)
            tracker.mask = mask
        return mask

    def _one_part(self, frame: WorkFrame, mask: np.ndarray, memory: AppearanceMemory) -> np.ndarray | None:
        """For a target held to a named colour: when the tracked mask fell apart into several
        sizeable parts (it took in a look-alike it passed), the part of the target's size that
        looks most like the target."""
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        parts = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= 0.2 * self._lock_area]
        if len(parts) < 2:
            return None
        sized = [k for k in parts if 0.5 * self._lock_area <= stats[k, cv2.CC_STAT_AREA] <= 1.6 * self._lock_area]
        if not sized:
            return None
        best = max(sized, key=lambda k: memory.score(colour_descriptor(frame.rgb, labels == k)))
        return labels == best

    def _colour_blob(self, frame: WorkFrame, mask: np.ndarray, memory: AppearanceMemory) -> np.ndarray | None:
        """For a target held to a named colour: the compact blob of that colour, of the target's
        size, nearest to where the target should be, when the tracked mask is not already it.

        A small fast object outruns the flow (the warped mask lags behind it or falls off it),
        but its colour, which the sentence named, stays: it is found again on the same frame.
        Only blobs near the prediction and of the target's size are taken, so a look-alike of
        the same colour elsewhere, or of another size, is not; nor one that matches the memory
        of the target less than what is tracked."""
        size = float(self._lock_area)
        # Where it should be: the motion model's prediction, and each sizeable part of the
        # tracked mask (which may also hold a look-alike it brushed past).
        places = [self._motion.predict(frame.index)]
        if mask.any():
            count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
            places += [tuple(centroids[k]) for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= 0.3 * size]
        places = [p for p in places if p is not None]
        if not places:
            return None
        named = _in_colour(frame.rgb, self._colour_lock)
        if self._lock_shades is not None:
            # Only the target's own shades of the colour: yellow grass is yellow too, but duller
            # than a yellow ball.
            hsv = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2HSV)
            likely = cv2.calcBackProject([hsv], [0, 1], self._lock_shades, [0, 180, 0, 256], 1)
            named &= likely > 127
        named = cv2.morphologyEx(named.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        # Cut thin bridges to background of a similar colour (yellow grass around a yellow ball):
        # an opening a third of the target's radius wide keeps the target's compact body.
        radius = max(2, int(0.3 * np.sqrt(size / np.pi)))
        named = cv2.morphologyEx(
            named, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        )
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(named, connectivity=8)
        reach = 1.5 * np.sqrt(size)
        best, best_cost = 0, np.inf
        for k in range(1, count):
            area = float(stats[k, cv2.CC_STAT_AREA])
            bw, bh = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
            if not 0.5 * size <= area <= 1.6 * size or area < 0.5 * bw * bh:
                continue  # another size, or not compact: not the target
            dist = min(float(np.hypot(centroids[k][0] - x, centroids[k][1] - y)) for x, y in places)
            if dist > reach:
                continue
            cost = dist / reach + abs(np.log(area / size))
            if cost < best_cost:
                best, best_cost = k, cost
        if best == 0:
            return None
        blob = fill_small_holes(labels == best, max(64, int(size) // 4))
        overlap = (blob & mask).sum() / max(int((blob | mask).sum()), 1)
        if overlap >= 0.8:
            return None
        # It must also look like the target, at least as much as what is tracked: a look-alike
        # of a close shade that the target passes behind is not taken.
        score = memory.score(colour_descriptor(frame.rgb, blob))
        if score <= memory.tau:
            return None
        return blob

    def _pick(
        self,
        frame: WorkFrame,
        candidates: list[Candidate],
        memory: AppearanceMemory,
        motion: _MotionModel,
        min_score: float,
    ) -> Candidate | None:
        """The candidate that best looks like the memory and sits where the target should be."""
        h, w = frame.gray.shape
        reach = 0.3 * float(np.hypot(h, w))
        expected = motion.predict(frame.index)
        area = motion.area
        best, best_total = None, -np.inf
        for c in candidates:
            s = memory.score(c.feature)
            if s <= min_score:
                continue
            # Two objects merged into one blob, or a fragment: wait for a clean view.
            if area and not 0.3 * area <= c.area <= 1.6 * area:
                continue
            dist = (
                0.0 if expected is None else float(np.hypot(c.centroid[0] - expected[0], c.centroid[1] - expected[1]))
            )
            if dist > reach:
                continue
            total = s - 0.5 * dist / reach
            if total > best_total:
                best, best_total = c, total
        return best

    def _reacquire(
        self, frame: WorkFrame, residual: np.ndarray | None, memory: AppearanceMemory, motion: _MotionModel
    ) -> Candidate | None:
        """A moving candidate that looks like the remembered target, after the target was lost."""
        if residual is None:
            return None
        candidates = segment_moving(frame.rgb, [residual])
        if self._colour_lock:
            # As when grounding: the named colour's blobs of a region merged with others.
            candidates = self._split_by_colour(frame.rgb, candidates, _in_colour(frame.rgb, self._colour_lock))
        return self._pick(frame, candidates, memory, motion, memory.tau)

    def _lookalike_check(
        self,
        frame: WorkFrame,
        residual: np.ndarray | None,
        mask: np.ndarray,
        memory: AppearanceMemory,
        s_tracked: float,
        motion: _MotionModel,
    ) -> Candidate | None:
        """Re-run grounding; a separate candidate that matches the memory clearly better wins."""
        if residual is None:
            return None
        others = []
        for c in segment_moving(frame.rgb, [residual]):
            inter = np.logical_and(c.mask, mask).sum()
            if inter <= self.cme.max_overlap * min(c.area, int(mask.sum()) or 1):
                others.append(c)
        return self._pick(frame, others, memory, motion, max(memory.tau, s_tracked + self.cme.switch_margin))

    def _split(self, frame: WorkFrame, mask: np.ndarray, memory: AppearanceMemory, motion: _MotionModel) -> np.ndarray:
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if count <= 2:
            return mask
        parts = [
            candidate_from_mask(frame.rgb, labels == k)
            for k in range(1, count)
            if stats[k, cv2.CC_STAT_AREA] >= 0.2 * motion.area
        ]
        best = self._pick(frame, parts, memory, motion, -1.0)
        return best.mask if best is not None else mask
