"""NOF-Eraser: fill the masked region with background, consistent in time.

BACKENDS is ordered by preference for `auto`: the flow-guided eraser is the
product's; `telea` (per-frame image inpainting) is the comparison baseline,
never chosen by `auto` while the flow-guided one can run.
"""

from .base import Eraser, EraseResult, EraserOptions, FlowFields
from .flowguided import FlowGuidedEraser
from .telea import TeleaEraser

BACKENDS: dict[str, type[Eraser]] = {
    FlowGuidedEraser.name: FlowGuidedEraser,
    TeleaEraser.name: TeleaEraser,
}

__all__ = ["BACKENDS", "EraseResult", "Eraser", "EraserOptions", "FlowFields", "FlowGuidedEraser", "TeleaEraser"]
