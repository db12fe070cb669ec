"""The grounded backend: a text grounder picks the object, a transformers video tracker follows it."""

from .masker import GroundedEdgeTamMasker, GroundedTrackerMasker

__all__ = ["GroundedEdgeTamMasker", "GroundedTrackerMasker"]
