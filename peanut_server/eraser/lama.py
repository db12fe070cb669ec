"""Image inpainting for pixels that no frame of the window shows.

LaMa (big-lama, loaded through spandrel) when its weights are on disk,
OpenCV's Telea inpainting otherwise. The flow-guided eraser calls this on
keyframes only and propagates the result, so invented content does not
flicker.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

OPENCV_RADIUS = 5


class Inpainter(ABC):
    name: ClassVar[str]
    # Seconds per hole rather than milliseconds: the eraser then keeps it for
    # never-seen regions that stay on screen (see fill.py, lasting holes).
    costly: ClassVar[bool] = False

    @abstractmethod
    def fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """`image` (H, W, 3) uint8 RGB with `hole` (H, W) bool filled; other pixels unchanged."""


class OpenCVInpainter(Inpainter):
    name = "opencv"

    def __init__(self, radius: int = OPENCV_RADIUS) -> None:
        self.radius = radius

    def fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        if not hole.any():
            return image.copy()
        return cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8) * 255, self.radius, cv2.INPAINT_TELEA)


class LamaInpainter(Inpainter):
    """LaMa through spandrel's model loader (the same path for a file or a state dict)."""

    name = "lama"

    def __init__(self, descriptor, device: str = "cpu") -> None:
        self.descriptor = descriptor
        self.device = device

    @classmethod
    def from_file(cls, path: str | Path, device: str = "cpu") -> "LamaInpainter":
        from spandrel import ModelLoader

        try:
            descriptor = ModelLoader(device=device).load_from_file(str(path))
        except Exception as exc:  # spandrel raises several types for a bad file
            raise ModelError(f"cannot load LaMa from {path}: {type(exc).__name__}: {exc}") from exc
        return cls._checked(descriptor, device)

    @classmethod
    def from_state_dict(cls, state_dict: dict, device: str = "cpu") -> "LamaInpainter":
        from spandrel import ModelLoader

        try:
            descriptor = ModelLoader(device=device).load_from_state_dict(state_dict)
        except Exception as exc:
            raise ModelError(f"cannot load LaMa state dict: {type(exc).__name__}: {exc}") from exc
        return cls._checked(descriptor, device)

    @classmethod
    def _checked(cls, descriptor, device: str) -> "LamaInpainter":
        if descriptor.architecture.id != "LaMa":
            raise ModelError(f"expected a LaMa checkpoint, got {descriptor.architecture.id}")
        descriptor.eval()
        return cls(descriptor, device)

    def fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import torch

        if not hole.any():
            return image.copy()
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0).to(self.device)
        mask = torch.from_numpy(hole.astype(np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            result = self.descriptor(tensor, mask)
        result = (result[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().byte().cpu().numpy()
        out = image.copy()
        out[hole] = result[hole]
        return out


def lama_available() -> tuple[bool, str]:
    from ..models.registry import missing_reason

    from .models import LAMA_ID

    try:
        import spandrel  # noqa: F401
    except ImportError:
        return False, "the spandrel package is not installed (pip install peanut-video[lama])"
    reason = missing_reason(LAMA_ID)
    return (not reason), reason


_cached: dict[str, Inpainter] = {}
_logged: set[str] = set()  # reasons already logged once per process


def get_inpainter(name: str = "auto", device: str = "cpu") -> Inpainter:
    """"lama", "synthesis", "opencv", or "auto".

    "auto" is LaMa when its weights are present, else the no-weights
    exemplar/frequency synthesis (synthesis.py), else OpenCV's Telea (when
    OpenCV lacks its contrib modules). The LaMa model is loaded once per
    process and kept (models stay loaded between jobs).
    """
    from .synthesis import SynthesisInpainter, xphoto_available

    name = (name or "auto").lower()
    if name == "opencv":
        return OpenCVInpainter()
    if name == "synthesis":
        ok, reason = xphoto_available()
        if not ok:
            raise ModelError(f"synthesis cannot run: {reason}")
        return SynthesisInpainter()
    if name not in ("auto", "lama"):
        raise ValueError(f"unknown inpainter {name!r}: use auto, lama, synthesis or opencv")
    ok, reason = lama_available()
    if not ok:
        if name == "lama":
            raise ModelError(f"LaMa cannot run: {reason}")
        if "lama" not in _logged:
            _logged.add("lama")
            log.info("LaMa not used: %s; exemplar synthesis fills never-seen pixels", reason)
        if xphoto_available()[0]:
            return SynthesisInpainter()
        if "xphoto" not in _logged:
            _logged.add("xphoto")
            log.warning("never-seen pixels use Telea: %s", xphoto_available()[1])
        return OpenCVInpainter()
    key = f"lama:{device}"
    if key not in _cached:
        from ..models.registry import locate

        from .models import LAMA_ID

        path = next(iter(locate(LAMA_ID).values()))
        _cached[key] = LamaInpainter.from_file(path, device)
    return _cached[key]
