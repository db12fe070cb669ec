"""The masker that needs no weights: moving objects, named by colour, place, size, motion.

Grounding: moving-object segmentation (motion.py) on the first frame where
something moves, ranked by the words of the prompt (ranking.py). Tracking:
flow warping plus GrabCut (flowtrack.py), backwards to the start of the range
when the object is found mid-clip, then forwards. CME: every clip_window
frames the tracked mask's colour feature is compared with the memory of the
target; a low score with a better-matching moving candidate elsewhere means
the tracker slid onto a look-alike, so it re-anchors there and re-tracks the
frames since the last good check. Yielding lags clip_window frames behind
reading, so those frames can still be rewritten.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import PromptError
from ..media import VideoSource
from ..progress import Reporter
from .appearance import AppearanceMemory, colour_descriptor, colour_fractions, colour_pixels
from .base import FramePrompt, Masker, MaskerOptions, MaskPrompt, MaskReport, working_frames, working_scale
from .flowtrack import FlowTracker, PriorTracker
from .motion import Candidate, FlowEstimator, candidate_from_mask, refine_mask, residual_motion, segment_moving, to_gray
from .postprocess import MaskFinisher, fill_small_holes, soft_mask, to_source
from .prompt import PromptNotUnderstood, PromptQuery, parse_prompt, refusal_message, words_without_meaning
from .ranking import describe_choice, rank_candidates

log = logging.getLogger(__name__)

APPROXIMATE_WARNING = (
    "approximate: the no-weights masker could not check {words}; it took the best match on the "
    "other words (colour, position, size, order, motion) or on the box/points"
)


@dataclass
class _Frame:
    index: int  # absolute source frame number
    rgb: np.ndarray  # working resolution
    gray: np.ndarray


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


class MotionMasker(Masker):
    name = "motion"
    learned = False
    tracks_given_mask = True
    work_max_side = 480
    # GrabCut after each warp: sharp edges on clean objects; on cluttered real footage
    # plain warping + motion re-segmentation scores higher (see benchmarks/masker_sweep.py).
    refine_tracking = True
    # A mask the editor gave (propagate) is tracked as a prior refined by colour and motion
    # likelihoods (flowtrack.PriorTracker): on DAVIS footage it holds the object far better
    # than re-segmenting motion. Set False for the grounded path's tracker.
    prior_tracking = True
    box_moving_px = 1.0  # residual motion (px/frame) that marks the moving part of a box
    min_part_px = 100  # working-resolution pixels: smaller colour blobs of a merged region are flecks

    def __init__(self, cme: CMESettings | None = None) -> None:
        super().__init__()
        self.cme = cme or CMESettings()
        self.flow = FlowEstimator()
        self._given_mask = False
        self._colour_lock: list[str] = []  # colours a text-grounded target is held to
        self._lock_area = 0  # ... and its size when it was found

    def for_call(self) -> MotionMasker:
        call = super().for_call()
        call.flow = FlowEstimator()  # OpenCV's DIS object is not shared between threads
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

    def _work(self, source: VideoSource, start: int, end: int) -> Iterator[_Frame]:
        for index, rgb in working_frames(source, start, end, self.work_max_side):
            yield _Frame(index, rgb, to_gray(rgb))

    def _residuals(self, frame: _Frame, neighbours: list[_Frame]) -> list[np.ndarray]:
        return [residual_motion(self.flow(frame.gray, n.gray)) for n in neighbours]

    # ----- grounding ----------------------------------------------------------------------

    def _ground(self, query: PromptQuery, frames: list[_Frame], k: int) -> tuple[Candidate, float, str]:
        """Rank the moving objects of frames[k] (its neighbours give the motion)."""
        frame = frames[k]
        neighbours = [frames[j] for j in (k - 1, k + 1) if 0 <= j < len(frames)]
        candidates = segment_moving(frame.rgb, self._residuals(frame, neighbours))
        if query.colours:
            candidates = self._split_by_colour(frame.rgb, candidates, query.colours)
        h, w = frame.gray.shape
        ranked = rank_candidates(query, candidates, (w, h))
        best = candidates[ranked[0].index]
        return best, ranked[0].score, describe_choice(query, best, ranked[0], frame.index, len(candidates))

    def _colour_share(self, rgb: np.ndarray, mask: np.ndarray) -> float:
        named = np.logical_or.reduce([colour_pixels(rgb, colour) for colour in self._colour_lock])
        return float((named & mask).sum()) / max(int(mask.sum()), 1)

    def _colour_parts(self, rgb: np.ndarray, c: Candidate, colours: list[str]) -> list[Candidate]:
        """The parts of a moving region in the named colour that stand out as compact blobs.

        On real footage with a moving camera, motion segmentation merges a small object with
        what is next to it (a red ball with red graffiti, a blue ball with a yellow wall, a
        ball with the player it passes). Each compact blob of the named colour inside the
        region is then a candidate of its own; regions where the colour is scattered, or that
        are the coloured object already, stay as they are."""
        named = np.logical_or.reduce([colour_pixels(rgb, colour) for colour in colours]) & c.mask
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

    def _split_by_colour(self, rgb: np.ndarray, candidates: list[Candidate], colours: list[str]) -> list[Candidate]:
        return [part for c in candidates for part in self._colour_parts(rgb, c, colours)]

    def _anchor_from_frame_prompt(self, fp: FramePrompt, frames: list[_Frame], k: int, scale: float) -> np.ndarray:
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

    def _mask_in_box(self, frames: list[_Frame], k: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """The object inside a box: GrabCut from the box, checked against what moves in it.

        GrabCut alone takes whatever differs in colour from the box's surroundings; on real
        footage that is often the floor under a player. When part of the box moves unlike the
        camera, that part is the object: GrabCut's cut is kept where it agrees with it, and
        replaced by it where the two disagree.
        """
        frame = frames[k]
        h, w = frame.gray.shape
        x0, y0, x1, y1 = box
        inside = np.zeros((h, w), bool)
        inside[y0:y1, x0:x1] = True
        gc = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(
                cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
                gc,
                (x0, y0, x1 - x0, y1 - y0),
                bgd,
                fgd,
                4,
                cv2.GC_INIT_WITH_RECT,
            )
            cut = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)) & inside
        except cv2.error:
            cut = inside
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
        return cut & movers if agree >= 0.4 else movers

    @staticmethod
    def _read_given_mask(path: str, frame: _Frame) -> np.ndarray:
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
    def _check_words(query: PromptQuery, frame: _Frame, mask: np.ndarray, index: int) -> None:
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
        self._colour_lock = []
        reporter.stage("mask", end - start)
        cv2.setRNGSeed(options.seed)  # GrabCut's k-means start: same input, same masks
        self._vocabulary_warning(prompt, reporter)
        scale = self._scale(source)
        frames_in = self._work(source, start, end)
        cache: list[_Frame] = []
        anchor_k, anchor_mask = self._find_anchor(prompt, frames_in, cache, scale, reporter)
        # A box or points is the editor pointing at the object, like a given mask: tracked the same way.
        yield from self._propagate(
            source,
            cache,
            frames_in,
            anchor_k,
            anchor_mask,
            options,
            reporter,
            given_mask=self.prior_tracking and bool(prompt.frame_prompts),
        )

    def propagate(
        self,
        source: VideoSource,
        start: int,
        end: int,
        first_mask: np.ndarray,
        options: MaskerOptions,
        reporter: Reporter,
    ) -> Iterator[np.ndarray]:
        """Track a given mask of frame `start` (source resolution) through [start, end)."""
        self.report = MaskReport(
            backend=self.name,
            chosen_object="the given mask",
            score=1.0,
            extra={"grounder": "given mask", "tracker": "flow+grabcut"},
        )
        self._colour_lock = []
        reporter.stage("mask", end - start)
        cv2.setRNGSeed(options.seed)
        frames_in = self._work(source, start, end)
        first = next(frames_in)
        h, w = first.gray.shape
        mask = cv2.resize(first_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        yield from self._propagate(
            source, [first], frames_in, 0, mask, options, reporter, given_mask=self.prior_tracking
        )

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
        self, prompt: MaskPrompt, frames_in: Iterator[_Frame], cache: list[_Frame], scale: float, reporter: Reporter
    ) -> tuple[int, np.ndarray]:
        """Read frames until the object is found; returns (index into cache, working mask)."""
        if prompt.frame_prompts:
            fp = min(prompt.frame_prompts, key=lambda f: f.frame)
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
            if len({f.frame for f in prompt.frame_prompts}) > 1:
                self.report.warnings.append(
                    f"the no-weights tracker starts from the box/points of frame {fp.frame}; those on "
                    f"frames {', '.join(str(f.frame) for f in prompt.frame_prompts if f.frame != fp.frame)} were not used"
                )
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

    def _tracker(self, given_mask: bool) -> FlowTracker | PriorTracker:
        if given_mask:
            return PriorTracker(self.flow)
        return FlowTracker(self.flow, refine=self.refine_tracking)

    def _propagate(
        self,
        source: VideoSource,
        cache: list[_Frame],
        frames_in: Iterator[_Frame],
        anchor_k: int,
        anchor_mask: np.ndarray,
        options: MaskerOptions,
        reporter: Reporter,
        given_mask: bool = False,
    ) -> Iterator[np.ndarray]:
        finisher = MaskFinisher(
            (source.info.width, source.info.height), options.threshold, options.fill_holes, options.temporal_smoothing
        )
        window = max(1, options.clip_window)
        memory = AppearanceMemory(tau=self.cme.tau)
        anchor = cache[anchor_k]
        memory.write(colour_descriptor(anchor.rgb, anchor_mask), force=True)
        tracker = self._tracker(given_mask)
        self._given_mask = given_mask
        if given_mask:
            self.report.extra["tracker"] = "flow prior + colour/motion likelihoods"

        def emit(mask: np.ndarray) -> Iterator[np.ndarray]:
            for out in finisher.push(soft_mask(mask)):
                reporter.advance()
                yield out

        # Backwards from the anchor to the start of the range (object found mid-clip).
        before: list[np.ndarray] = []
        tracker.reset(anchor.rgb, anchor_mask)
        for frame in reversed(cache[:anchor_k]):
            reporter.check()
            before.append(self._checked_step(tracker, frame, memory))
        for mask in reversed(before):
            yield from emit(mask)
        del before

        # Forwards, with a buffer of clip_window frames that a re-anchoring may rewrite.
        tracker.reset(anchor.rgb, anchor_mask)
        buffer: deque[tuple[_Frame, np.ndarray]] = deque([(anchor, anchor_mask)])
        last_good = anchor.index
        scores: list[float] = []
        reanchors = 0
        lost_since: int | None = None
        motion = _MotionModel()
        motion.update(anchor.index, anchor_mask)

        def forward() -> Iterator[_Frame]:
            yield from cache[anchor_k + 1 :]
            cache.clear()  # the cached prefix is no longer needed
            yield from frames_in

        for step, frame in enumerate(forward(), start=1):
            reporter.check()
            mask = self._checked_step(tracker, frame, memory)
            if not tracker.lost and mask.sum() > 1.5 * motion.area:
                # The mask grew over something else (two objects touching): keep the part
                # that looks and moves like the target.
                mask = self._split(frame, mask, memory, motion)
                tracker.mask = mask
            if tracker.lost:
                if lost_since is None:
                    lost_since = frame.index
                found = self._reacquire(frame, tracker.last_residual, memory, motion)
                if found is not None:
                    mask = found.mask
                    tracker.reset(frame.rgb, mask)
                    repaired = self._repair(buffer, frame, mask, last_good, memory)
                    self.report.warnings.append(
                        f"object lost at frame {lost_since}, found again at frame "
                        f"{frame.index}; {repaired} earlier frame(s) re-tracked"
                    )
                    lost_since = None
            elif step % window == 0:
                feature = colour_descriptor(frame.rgb, mask)
                s = memory.score(feature)
                scores.append(s)
                if s > memory.tau:
                    memory.write(feature)
                    last_good = frame.index
                else:
                    other = self._lookalike_check(frame, tracker.last_residual, mask, memory, s, motion)
                    if other is not None:
                        reanchors += 1
                        mask = other.mask
                        tracker.reset(frame.rgb, mask)
                        memory.write(other.feature)
                        repaired = self._repair(buffer, frame, mask, last_good, memory)
                        self.report.warnings.append(
                            f"the tracked mask drifted to a look-alike (consistency {s:.2f}); re-anchored on frame "
                            f"{frame.index} and repaired {repaired} frame(s) since frame {last_good}"
                        )
                        last_good = frame.index
            if mask.any():
                motion.update(frame.index, mask)
            buffer.append((frame, mask))
            while len(buffer) > window:
                yield from emit(buffer.popleft()[1])
        while buffer:
            yield from emit(buffer.popleft()[1])
        for out in finisher.flush():
            reporter.advance()
            yield out
        self.report.extra.update(
            {
                "cme_checks": str(len(scores)),
                "cme_mean_consistency": f"{np.mean(scores):.3f}" if scores else "n/a",
                "reanchors": str(reanchors),
            }
        )

    def _checked_step(self, tracker: FlowTracker | PriorTracker, frame: _Frame, memory: AppearanceMemory) -> np.ndarray:
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
            parts = self._colour_parts(frame.rgb, candidate_from_mask(frame.rgb, near), self._colour_lock)
            part = max(parts, key=lambda p: (p.mask & mask).sum())  # the blob the tracked mask is on
            overlap = (part.mask & mask).sum() / max(int((part.mask | mask).sum()), 1)
            # Only a clear difference counts (the mask lags or holds other things); a ball whose
            # texture has other shades at its rim stays as tracked.
            if part.mask is not near and overlap < 0.8 and 0.3 * int(mask.sum()) <= part.area <= 1.5 * self._lock_area:
                mask = part.mask
                tracker.mask = mask
        if mask.any() and memory.score(colour_descriptor(frame.rgb, mask)) < self.cme.lost_tau:
            mask = np.zeros_like(mask)
            tracker.mask = mask
        return mask

    def _pick(
        self,
        frame: _Frame,
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
        self, frame: _Frame, residual: np.ndarray | None, memory: AppearanceMemory, motion: _MotionModel
    ) -> Candidate | None:
        """A moving candidate that looks like the remembered target, after the target was lost."""
        if residual is None:
            return None
        candidates = segment_moving(frame.rgb, [residual])
        if self._colour_lock:
            # As when grounding: the named colour's blobs of a region merged with others.
            candidates = self._split_by_colour(frame.rgb, candidates, self._colour_lock)
        return self._pick(frame, candidates, memory, motion, memory.tau)

    def _lookalike_check(
        self,
        frame: _Frame,
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

    def _split(self, frame: _Frame, mask: np.ndarray, memory: AppearanceMemory, motion: _MotionModel) -> np.ndarray:
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

    def _repair(
        self,
        buffer: deque[tuple[_Frame, np.ndarray]],
        frame: _Frame,
        mask: np.ndarray,
        after: int,
        memory: AppearanceMemory,
    ) -> int:
        """Re-track backwards from a new anchor over buffered frames after `after`.

        A frame takes the backward mask when it agrees better with the memory than
        the mask it has (which may sit on the look-alike). Returns frames changed.
        """
        tracker = self._tracker(self._given_mask)
        tracker.reset(frame.rgb, mask)
        changed = 0
        for i in range(len(buffer) - 1, -1, -1):
            old_frame, old_mask = buffer[i]
            if old_frame.index <= after:
                break
            new_mask = tracker.step(old_frame.rgb)
            if tracker.lost:
                break
            s_new = memory.score(colour_descriptor(old_frame.rgb, new_mask))
            s_old = memory.score(colour_descriptor(old_frame.rgb, old_mask)) if old_mask.any() else -1.0
            if s_new >= s_old:
                buffer[i] = (old_frame, new_mask)
                changed += 1
        return changed
