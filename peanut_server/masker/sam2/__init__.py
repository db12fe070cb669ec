"""The sam2-package backend: grounding as in grounded/, tracking by the official sam2 package."""

from .masker import GroundedSam2PackageMasker

__all__ = ["GroundedSam2PackageMasker"]
