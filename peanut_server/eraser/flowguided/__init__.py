"""The flow-guided eraser (default NOF-Eraser backend)."""

from .eraser import FlowGuidedEraser
from .fill import FillStats, fill_window

__all__ = ["FillStats", "FlowGuidedEraser", "fill_window"]
