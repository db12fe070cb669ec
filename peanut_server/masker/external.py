"""Masks the editor already has: one image, a folder, or a mask video."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..media import VideoSource, open_masks
from ..progress import Reporter
from .base import Masker, MaskerOptions, MaskPrompt


class ExternalMasker(Masker):
    name = "external"

    @classmethod
    def accepts(cls, prompt: MaskPrompt) -> bool:
        return bool(prompt.mask_path)

    def masks(
        self,
        source: VideoSource,
        start: int,
        end: int,
        prompt: MaskPrompt,
        options: MaskerOptions,
        reporter: Reporter,
    ) -> Iterator[np.ndarray]:
        self.report.chosen_object = f"masks from {prompt.mask_path}"
        self.report.score = 1.0
        yield from open_masks(prompt.mask_path, source.info, start, end).frames()
