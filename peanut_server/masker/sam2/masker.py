"""The grounded masker tracked by the official `sam2` package (.pt checkpoints, its own configs).

Grounding, ranking and the tracking loop are the grounded backend's
(grounded/masker.py); only the tracker differs (tracker.py).
"""

from __future__ import annotations

from ..grounded.masker import GroundedTrackerMasker, Tracker
from ..learned import packages_missing


class GroundedSam2PackageMasker(GroundedTrackerMasker):
    """The same grounding, tracked by the official `sam2` package with .pt checkpoints."""

    name = "grounded-sam2-package"
    tracker_ids = ("sam2.1-hiera-large", "sam2.1-hiera-base-plus", "sam2.1-hiera-small", "sam2.1-hiera-tiny")
    tracker_classes = ""  # the tracker is the sam2 package's; only the grounder uses transformers
    hydra_overrides: tuple[str, ...] = ()

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if packages_missing("sam2"):
            return False, "the sam2 package is not installed (pip install sam2)"
        return super().availability()

    def _make_tracker(self, placement) -> Tracker:
        from .tracker import Sam2PackageTracker

        return Sam2PackageTracker(self.tracker_id, hydra_overrides=self.hydra_overrides, placement=placement)
