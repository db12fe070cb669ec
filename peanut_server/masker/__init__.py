"""P-MASK: from a sentence (or points, boxes, mask files) to one binary mask per frame.

BACKENDS is ordered by preference for `auto`: learned backends first, the
no-weights motion masker last.
"""

from __future__ import annotations

from .base import FramePrompt, Masker, MaskerOptions, MaskPrompt, MaskReport, PointPrompt
from .motion_masker import MotionMasker

BACKENDS: dict[str, type[Masker]] = {
    MotionMasker.name: MotionMasker,
}

__all__ = ["BACKENDS", "FramePrompt", "Masker", "MaskerOptions", "MaskPrompt", "MaskReport",
           "MotionMasker", "PointPrompt"]
