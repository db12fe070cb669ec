"""P-MASK: from a sentence (or points, boxes, mask files) to one binary mask per frame.

BACKENDS is ordered by preference for `auto`: learned backends first, the
no-weights motion masker last.
"""

from __future__ import annotations

from .base import FramePrompt, Masker, MaskerOptions, MaskPrompt, MaskReport, PointPrompt
from .grounded import GroundedEdgeTamMasker, GroundedTrackerMasker
from .motion import MotionMasker
from .sam2 import GroundedSam2PackageMasker
from .sam3 import Sam3Masker

BACKENDS: dict[str, type[Masker]] = {
    Sam3Masker.name: Sam3Masker,
    GroundedTrackerMasker.name: GroundedTrackerMasker,
    GroundedSam2PackageMasker.name: GroundedSam2PackageMasker,
    GroundedEdgeTamMasker.name: GroundedEdgeTamMasker,
    MotionMasker.name: MotionMasker,
}

__all__ = [
    "BACKENDS",
    "GroundedEdgeTamMasker",
    "GroundedSam2PackageMasker",
    "GroundedTrackerMasker",
    "FramePrompt",
    "Masker",
    "MaskerOptions",
    "MaskPrompt",
    "MaskReport",
    "MotionMasker",
    "PointPrompt",
    "Sam3Masker",
]
