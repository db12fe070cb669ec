"""The no-weights backend: moving objects named by colour, place, size and motion, tracked by flow."""

from .masker import MotionMasker

__all__ = ["MotionMasker"]
