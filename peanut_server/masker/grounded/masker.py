"""Learned masker: a text grounder picks the object, a video tracker follows it.

Grounding runs on the first frame of the range (then every clip_window frames
until the object shows up); candidates are ranked by the sentence's words,
the detector's score and, where a CLIP model is present, the crop's CLIP
similarity to the sentence. Tracking (the shared loop, ../tracking.py, with
the video tracker's step) runs backwards to the range start when the object
was found later, then forwards. CME: every clip_window frames the
tracked mask's feature (CLIP image feature of the masked crop, or the colour
histogram without CLIP) is compared with the memory; on a drift the grounder
runs again and the tracker re-anchors on the candidate that matches memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import ClassVar, Protocol

import numpy as np

from ...errors import BackendUnavailable, PromptError
from ...media import VideoSource
from ...progress import Reporter
from ..base import Masker, MaskerOptions, MaskPrompt, MaskReport
from ..candidates import Candidate, bounding_box
from ..colour import colour_descriptor
from ..frames import WorkFrame, working_frames, working_scale
from ..learned import ClipScorer, HFGrounder, HFVideoTracker, cached_part, model_available, part_need
from ..memory import AppearanceMemory
from ..postprocess import MaskFinisher
from ..prompt import PromptQuery, parse_prompt
from ..ranking import describe_choice, rank_candidates
from ..tracking import Keyframe, Reanchor, TrackingBackend, track

log = logging.getLogger(__name__)


class Session(Protocol):
    def step(self, rgb: np.ndarray) -> np.ndarray: ...


class Tracker(Protocol):
    def start(self, rgb: np.ndarray, box=None, mask=None, points=None) -> tuple[Session, np.ndarray]: ...


def _first_available(ids: tuple[str, ...]) -> tuple[str, str]:
    """The first model of `ids` whose files are on disk, or ("", a short reason)."""
    first_reason = ""
    for model_id in ids:
        ok, reason = model_available(model_id)
        if ok:
            return model_id, ""
        first_reason = first_reason or reason
    if "package" in first_reason:
        return "", first_reason
    others = f" (or one of {', '.join(ids[:-1])})" if len(ids) > 1 else ""
    return "", f"run `peanut models pull {ids[-1]}`{others}"


class GroundedTrackerMasker(Masker, TrackingBackend):
    """Grounding DINO / OWLv2 boxes + CLIP disambiguation + SAM 2.1 tracking (transformers)."""

    name = "grounded-sam2"
    learned = True
    device_policy = "sam2"  # the tracker's entry in models/device.py, shown by `peanut info`
    tracker_classes = "sam2_video"  # models/capabilities.py: the transformers classes the tracker calls
    grounder_ids: ClassVar[tuple[str, ...]] = ("grounding-dino-base", "grounding-dino-tiny", "owlv2-base")
    tracker_ids: ClassVar[tuple[str, ...]] = (
        "hf-sam2.1-hiera-large",
        "hf-sam2.1-hiera-base-plus",
        "hf-sam2.1-hiera-small",
        "hf-sam2.1-hiera-tiny",
    )
    clip_ids: ClassVar[tuple[str, ...]] = ("clip-vit-b32",)
    work_max_side = 1024
    box_threshold = 0.3
    tau = 0.8
    switch_margin = 0.05

    def __init__(self, grounder_id: str = "", tracker_id: str = "", clip_id: str = "", device: str = "") -> None:
        super().__init__()
        self.grounder_id = grounder_id or _first_available(self.grounder_ids)[0]
        self.tracker_id = tracker_id or _first_available(self.tracker_ids)[0]
        self.clip_id = clip_id if clip_id else _first_available(self.clip_ids)[0]
        # "" = the job's MaskerOptions.device, else the daemon's device policy.
        self.device = device
        self._job_device = device
        # The parts come from the daemon's model cache (loaded once, shared by every job and
        # preview); a call holds them here while it runs (see Masker.for_call).
        self._grounder: HFGrounder | None = None
        self._tracker: Tracker | None = None
        self._clip: ClipScorer | None = None
        # The job being tracked: its sentence (re-grounding on a drift) and mask threshold.
        self._query: PromptQuery | None = None
        self._threshold = 0.5

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        from ...models.capabilities import transformers_reason
        from ...models.device import device_missing
        from ...models.registry import get_spec

        tracker, why_t = _first_available(cls.tracker_ids)
        if not tracker:
            return False, f"no tracker weights: {why_t}"
        grounder, why_g = _first_available(cls.grounder_ids)
        if not grounder:
            return False, f"no grounding weights: {why_g}"
        reason = (
            (transformers_reason(cls.tracker_classes) if cls.tracker_classes else "")
            or transformers_reason(get_spec(grounder).architecture)
            or device_missing(None)
        )
        return (not reason), reason

    @classmethod
    def model_needs(cls, options: MaskerOptions, working: tuple[int, int]) -> list:
        """The parts a job will load (tracker, grounder, CLIP when present), for the memory check at Submit.

        The masker works at its own size (work_max_side), whatever the eraser's `working` is."""
        ids = [_first_available(ids)[0] for ids in (cls.tracker_ids, cls.grounder_ids, cls.clip_ids)]
        return [part_need(model_id, options.device or None) for model_id in ids if model_id]

    @classmethod
    def accepts(cls, prompt: MaskPrompt) -> bool:
        return bool(prompt.text or prompt.frame_prompts)

    # ----- parts ----------------------------------------------------------------------------

    def _make_tracker(self, placement) -> Tracker:
        return HFVideoTracker(self.tracker_id, placement=placement)

    def _use_device(self, options: MaskerOptions) -> None:
        """The device this call's parts run on: the masker's own, else the job's (else the policy's)."""
        self._job_device = self.device or options.device

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            if not self.tracker_id:
                raise BackendUnavailable(f"{self.name}: {self.availability()[1]}")
            self._tracker = cached_part(self.tracker_id, self._job_device, self._make_tracker)
        return self._tracker

    @property
    def grounder(self) -> HFGrounder:
        if self._grounder is None:
            if not self.grounder_id:
                raise BackendUnavailable(f"{self.name}: {self.availability()[1]}")
            grounder_id = self.grounder_id
            self._grounder = cached_part(
                grounder_id, self._job_device, lambda placement: HFGrounder(grounder_id, placement=placement)
            )
        return self._grounder

    @property
    def clip(self) -> ClipScorer | None:
        if self._clip is None and self.clip_id:
            clip_id = self.clip_id
            self._clip = cached_part(
                clip_id, self._job_device, lambda placement: ClipScorer(clip_id, placement=placement)
            )
        return self._clip

    def _feature(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.zeros(1, np.float32)
        if self.clip is not None:
            return self.clip.image_features([ClipScorer.crop(rgb, bounding_box(mask), mask)])[0]
        return colour_descriptor(rgb, mask)

    # ----- frames ---------------------------------------------------------------------------

    def _scale(self, source: VideoSource) -> float:
        return working_scale(source, self.work_max_side)

    def _work(self, source: VideoSource, start: int, end: int) -> Iterator[WorkFrame]:
        for index, rgb in working_frames(source, start, end, self.work_max_side):
            yield WorkFrame(index, rgb)

    # ----- grounding ------------------------------------------------------------------------

    def _candidates(self, query: PromptQuery, rgb: np.ndarray) -> list[Candidate]:
        candidates = self.grounder.detect(rgb, query.text, box_threshold=self.box_threshold)
        if len(candidates) > 1 and self.clip is not None:
            crops = [ClipScorer.crop(rgb, c.bbox) for c in candidates]
            for c, s in zip(candidates, self.clip.text_scores(crops, query.text)):
                c.text_score = float(s)
        return candidates

    def _ground(self, query: PromptQuery, frame: WorkFrame) -> tuple[Candidate, float, str]:
        candidates = self._candidates(query, frame.rgb)
        h, w = frame.rgb.shape[:2]
        ranked = rank_candidates(query, candidates, (w, h), what=f"objects ({self.grounder_id})")
        best = candidates[ranked[0].index]
        return best, ranked[0].score, describe_choice(query, best, ranked[0], frame.index, len(candidates))

    def _prompt_kwargs(self, prompt: MaskPrompt, frame_index: int, scale: float) -> dict:
        fp = next(f for f in prompt.frame_prompts if f.frame == frame_index)
        kwargs: dict = {}
        if fp.box is not None:
            kwargs["box"] = tuple(v * scale for v in fp.box)
        if fp.points:
            kwargs["points"] = [(p.x * scale, p.y * scale, p.positive) for p in fp.points]
        if not kwargs:
            raise PromptError(f"frame {fp.frame} has neither points nor a box", code="PROMPT_NO_POINTS")
        return kwargs

    # ----- the interface --------------------------------------------------------------------

    def _report(self) -> MaskReport:
        return MaskReport(
            backend=self.name,
            extra={"grounder": self.grounder_id, "tracker": self.tracker_id, "clip": self.clip_id or "none"},
        )

    def preview(
        self, source: VideoSource, frame: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> tuple[np.ndarray, MaskReport]:
        self._use_device(options)
        self.report = self._report()
        scale = self._scale(source)
        f = next(self._work(source, frame, frame + 1))
        if any(fp.frame == frame for fp in prompt.frame_prompts):
            _, prob = self.tracker.start(f.rgb, **self._prompt_kwargs(prompt, frame, scale))
            self.report.chosen_object, self.report.score = f"the object at the given points/box on frame {frame}", 1.0
        else:
            query = parse_prompt(prompt.text)
            best, score, text = self._ground(query, f)
            _, prob = self.tracker.start(f.rgb, box=best.bbox)
            self.report.chosen_object, self.report.score = text, score
        finisher = MaskFinisher((source.info.width, source.info.height), options.threshold, options.fill_holes)
        return next(iter(finisher.push(prob))), self.report

    def masks(
        self, source: VideoSource, start: int, end: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> Iterator[np.ndarray]:
        self._use_device(options)
        self.report = self._report()
        reporter.stage("mask", end - start)
        scale = self._scale(source)
        frames_in = self._work(source, start, end)
        cache: list[WorkFrame] = []
        window = max(1, options.clip_window)
        query = parse_prompt(prompt.text) if prompt.text else None
        start_kwargs: dict | None = None
        prompt_frames = sorted(fp.frame for fp in prompt.frame_prompts)
        last_error: PromptError | None = None
        for frame in frames_in:
            cache.append(frame)
            if prompt_frames:
                if frame.index == prompt_frames[0]:
                    start_kwargs = self._prompt_kwargs(prompt, frame.index, scale)
                    self.report.chosen_object = f"the object at the given points/box on frame {frame.index}"
                    self.report.score = 1.0
                    break
                continue
            if query is None:
                raise PromptError("nothing to track: give a text prompt, points or a box", code="PROMPT_EMPTY")
            if (frame.index - start) % window:
                continue
            try:
                best, score, text = self._ground(query, frame)
            except PromptError as exc:
                if exc.code == "PROMPT_AMBIGUOUS":
                    raise
                last_error = exc
                continue
            start_kwargs = {"box": best.bbox}
            self.report.chosen_object, self.report.score = text, score
            break
        if start_kwargs is None:
            if prompt_frames:
                raise PromptError(
                    f"the points/box are on frame {prompt_frames[0]}, outside [{start}, {end})", code="PROMPT_BAD_FRAME"
                )
            raise last_error or PromptError(f"found nothing for \u201c{prompt.text}\u201d", code="PROMPT_NOTHING_FOUND")
        self._query, self._threshold = query, options.threshold
        size = (source.info.width, source.info.height)
        # The boxes/points on later frames: the tracker restarts from each (tracking.py).
        keyframes = {
            index: _fixed(self._prompt_kwargs(prompt, index, scale))
            for index in prompt_frames
            if index > cache[-1].index
        }
        yield from track(
            self, cache, frames_in, len(cache) - 1, start_kwargs, size, options, reporter, self.report, keyframes
        )

    # ----- the per-frame part of tracking (tracking.py runs the loop) -------------------------

    def track_start(self, frame: WorkFrame, anchor: dict) -> tuple[Session, np.ndarray]:
        return self.tracker.start(frame.rgb, **anchor)

    def track_step(self, run: Session, frame: WorkFrame, memory: AppearanceMemory, forward: bool) -> np.ndarray:
        return run.step(frame.rgb)

    def track_feature(self, frame: WorkFrame, output: np.ndarray) -> np.ndarray | None:
        mask = output > self._threshold
        return self._feature(frame.rgb, mask) if mask.any() else None

    def track_probability(self, output: np.ndarray) -> np.ndarray:
        if (output > self._threshold).mean() > 0.9:
            # A tracker that lost the object can light up everything: never hand that on.
            self.report.warnings.append("a near full-frame mask was dropped")
            return np.zeros_like(output)
        return output

    def track_lookalike(
        self, frame: WorkFrame, output: np.ndarray, run: Session, memory: AppearanceMemory, score: float
    ) -> Reanchor | None:
        """Ground the sentence again; a candidate apart from the tracked mask that matches memory better."""
        if self._query is None:
            return None
        mask = output > self._threshold
        best, best_s = None, max(memory.tau, score + self.switch_margin)
        for c in self._candidates(self._query, frame.rgb):
            if mask.any() and np.logical_and(c.mask, mask).sum() > 0.5 * min(c.area, int(mask.sum())):
                continue
            s = memory.score(self._feature(frame.rgb, c.mask))
            if s > best_s:
                best, best_s = c, s
        return Reanchor({"box": best.bbox}) if best is not None else None


def _fixed(anchor: dict) -> Keyframe:
    """A keyframe whose anchor is known before its frame is read (the editor's box or points)."""
    return lambda frame, previous, carried: anchor


class GroundedEdgeTamMasker(GroundedTrackerMasker):
    """The same grounding, tracked by EdgeTAM (lighter; transformers EdgeTamVideoModel)."""

    name = "grounded-edgetam"
    tracker_ids = ("edgetam",)
    device_policy = "edgetam"
    tracker_classes = "edgetam_video"
