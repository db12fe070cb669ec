"""NOF-Eraser: fill the masked region with background, consistent in time.

BACKENDS is ordered by preference for `auto`.
"""

from .base import EraseResult, Eraser, EraserOptions, FlowFields
from .telea import TeleaEraser

BACKENDS: dict[str, type[Eraser]] = {
    TeleaEraser.name: TeleaEraser,
}

__all__ = ["BACKENDS", "EraseResult", "Eraser", "EraserOptions", "FlowFields", "TeleaEraser"]
