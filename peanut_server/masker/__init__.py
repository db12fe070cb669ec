"""P-MASK: from a sentence (or points, boxes, mask files) to one binary mask per frame.

The package, read top-down:

    base.py         the interface every backend implements: prompts, options, report,
                    masks() (the clip) and preview() (one frame)
    tracking.py     the tracking loop the tracking backends share: from the anchor frame
                    backwards, then forwards, with the CME check and repairs; a backend
                    supplies only its per-frame step (TrackingBackend)
    frames.py       frames at working resolution
    prompt.py       reading the sentence: colour, position, size, order, motion words
    ranking.py      choosing the candidate the words name (candidates.py: what was found)
    colour.py       named colours and the colour feature; memory.py: the CME memory
    postprocess.py  from working-resolution probabilities to source-resolution masks
    learned.py      the learned parts (detectors, CLIP, the transformers video tracker),
                    loaded from the model registry; models.py: their weights
    motion/         no weights: moving-object grounding, flow tracking
    grounded/       a text grounder + SAM 2.1 or EdgeTAM (transformers)
    sam2/           the same grounding, tracked by the official sam2 package
    sam3/           SAM 3: every instance of the sentence's concept, with ids
    external.py     masks the editor already has

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
