"""The masker interface: from a prompt to one binary mask per frame.

A masker streams: it yields one mask per source frame of the range, at source
resolution, in order. What it chose and how sure it is lands in `report` by the
time the iteration ends.

One instance per backend is kept by the Pipeline and shared by every job and
preview; each call runs on `masker.for_call()`, a copy with its own report
(and whatever else a call keeps), so two calls never write into each other's
report. Learned weights are not held by the instance: they come from the
daemon's model cache (models/cache.py), loaded once.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..media.types import VideoSource
from ..progress import Reporter


@dataclass
class PointPrompt:
    x: float
    y: float
    positive: bool = True


@dataclass
class FramePrompt:
    frame: int  # absolute source frame number
    points: list[PointPrompt] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 pixels


@dataclass
class MaskPrompt:
    text: str = ""
    mask_path: str = ""
    frame_prompts: list[FramePrompt] = field(default_factory=list)
    # Accept the best match on the words the masker understands; without it a prompt
    # with words the running masker cannot check is refused before any work.
    approximate: bool = False

    @property
    def tracked_mask_frame(self) -> int | None:
        """The frame a one-image mask shows the object on, when the editor asks to track it.

        The proto has no field of its own for this: a mask file plus exactly one frame
        prompt with neither box nor points means "this mask is the object on that frame,
        follow it" (a one-image mask alone stays a static matte, as before). Boxes and
        points on later frames then correct the tracking there (keyframes)."""
        if self.mask_path:
            bare = [fp.frame for fp in self.frame_prompts if fp.box is None and not fp.points]
            if len(bare) == 1:
                return bare[0]
        return None


@dataclass
class MaskerOptions:
    threshold: float = 0.5
    clip_window: int = 8  # CME re-check interval, frames
    fill_holes: int = 64  # fill holes smaller than this many pixels
    temporal_smoothing: bool = False
    seed: int = 0
    device: str = ""  # learned maskers: "" = the daemon's device policy, or cpu/cuda[:N]/mps


@dataclass
class MaskReport:
    backend: str = ""
    chosen_object: str = ""  # e.g. "moving object #2, red, left"
    score: float = 0.0
    warnings: list[str] = field(default_factory=list)
    ignored_words: list[str] = field(default_factory=list)  # prompt words not checked (approximate)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. {"grounder": "motion", "tracker": "flow"}


class Masker(ABC):
    name: ClassVar[str]
    learned: ClassVar[bool] = False
    tracks_given_mask: ClassVar[bool] = False  # can follow a one-frame mask (MaskPrompt.tracked_mask_frame)

    def __init__(self) -> None:
        self.report = MaskReport(backend=self.name)

    def for_call(self) -> Masker:
        """A copy of this masker for one job or preview: the same settings, a fresh report.

        The Pipeline reuses one instance per backend; a call's state (its report, the
        parts it holds while it runs) lives on the copy and goes with it."""
        call = copy.copy(self)
        call.report = MaskReport(backend=self.name)
        return call

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, ""

    @classmethod
    def accepts(cls, prompt: MaskPrompt) -> bool:
        """Whether this backend can serve this kind of prompt (text, points, files)."""
        return bool(prompt.text)

    @classmethod
    def unchecked_words(cls, prompt: MaskPrompt) -> list[str]:
        """Words of the prompt this backend cannot check (learned backends read every word).

        The pipeline refuses a job with such words unless the prompt is approximate.
        """
        return []

    @abstractmethod
    def masks(
        self,
        source: VideoSource,
        start: int,
        end: int,
        prompt: MaskPrompt,
        options: MaskerOptions,
        reporter: Reporter,
    ) -> Iterator[np.ndarray]:
        """Yield (H, W) bool masks at source resolution for frames start..end-1.

        Raise PromptError with an actionable message when the prompt is empty,
        matches nothing, or matches several objects that cannot be told apart.
        """

    def preview(
        self, source: VideoSource, frame: int, prompt: MaskPrompt, options: MaskerOptions, reporter: Reporter
    ) -> tuple[np.ndarray, MaskReport]:
        """The mask on one frame, for an editor checking the prompt before running the clip.

        This default masks [frame, frame + 1); backends that ground with neighbouring frames
        (motion) or keep a model warm between calls override it."""
        mask = next(iter(self.masks(source, frame, frame + 1, prompt, options, reporter)))
        return mask, self.report
