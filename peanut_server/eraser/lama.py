"""Image inpainting for pixels that no frame of the window shows.

LaMa (big-lama, loaded through spandrel) when its weights are on disk,
OpenCV's Telea inpainting otherwise. The flow-guided eraser calls this on
keyframes only and propagates the result, so invented content does not
flicker. LaMa runs where the device policy puts it (models/device.py; fp32:
its Fourier convolutions are not known safe in half precision) and lives in
the daemon's model cache (models/cache.py) between jobs.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from ..errors import ModelError

if TYPE_CHECKING:
    from ..models.cache import ModelNeed
    from ..models.device import Placement

log = logging.getLogger(__name__)

OPENCV_RADIUS = 5
# Working memory of one LaMa call per input pixel: the full-resolution stem
# (64 channels, a few maps alive at once) dominates; the 1/8 resolution FFC
# blocks with their complex spectra add about as much again. An estimate
# from the architecture, in bytes per pixel, not a measurement.
LAMA_ACTIVATION_BYTES_PER_PIXEL = 64 * 4 * 8


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

    def __init__(self, descriptor, device: str = "cpu", placement: Placement | None = None) -> None:
        from ..models.device import Placement

        self.descriptor = descriptor
        self.placement = placement or Placement(device, "float32", "given")
        self.device = self.placement.device

    @classmethod
    def from_file(cls, path: str | Path, device: str = "cpu", placement: Placement | None = None) -> LamaInpainter:
        from spandrel import ModelLoader

        device = placement.device if placement is not None else device
        try:
            descriptor = ModelLoader(device=device).load_from_file(str(path))
        except Exception as exc:  # spandrel raises several types for a bad file
            raise ModelError(f"cannot load LaMa from {path}: {type(exc).__name__}: {exc}") from exc
        return cls._checked(descriptor, device, placement)

    @classmethod
    def from_state_dict(cls, state_dict: dict, device: str = "cpu") -> LamaInpainter:
        from spandrel import ModelLoader

        try:
            descriptor = ModelLoader(device=device).load_from_state_dict(state_dict)
        except Exception as exc:
            raise ModelError(f"cannot load LaMa state dict: {type(exc).__name__}: {exc}") from exc
        return cls._checked(descriptor, device)

    @classmethod
    def _checked(cls, descriptor, device: str, placement: Placement | None = None) -> LamaInpainter:
        if descriptor.architecture.id != "LaMa":
            raise ModelError(f"expected a LaMa checkpoint, got {descriptor.architecture.id}")
        descriptor.eval()
        return cls(descriptor, device, placement)

    def fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import torch

        if not hole.any():
            return image.copy()
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0).to(self.device)
        mask = torch.from_numpy(hole.astype(np.float32))[None, None].to(self.device)
        with torch.inference_mode(), self.placement.autocast_context():
            result = self.descriptor(tensor, mask)
        result = (result[0].float().permute(1, 2, 0).clamp(0, 1) * 255.0).round().byte().cpu().numpy()
        out = image.copy()
        out[hole] = result[hole]
        return out


def lama_class_missing() -> str:
    """Why spandrel cannot load LaMa here ("" when it can): the capability, not the version."""
    try:
        from spandrel import MAIN_REGISTRY
    except ImportError:
        return "the spandrel package is not installed (pip install peanut-video[lama])"
    if not any(support.architecture.id == "LaMa" for support in MAIN_REGISTRY.architectures()):
        return "this spandrel has no LaMa architecture"
    return ""


def lama_available(device: str | None = None) -> tuple[bool, str]:
    """(available, why not): spandrel's LaMa architecture, the weights on disk, and the device."""
    from ..models.device import device_missing
    from ..models.registry import missing_reason
    from .models import LAMA_ID

    # Weights first: without them the answer is "no" before spandrel, torch and torchvision are
    # imported (about 2.5 CPU s in every new process, a fifth of a short 1080p job's CPU).
    reason = missing_reason(LAMA_ID) or lama_class_missing() or device_missing(device)
    return (not reason), reason


def lama_weight_bytes() -> int:
    """Declared size of big-lama's weights before loading: its file's size (an fp32 state dict)."""
    from .models import LAMA

    return sum(f.size for f in LAMA.files)


def lama_activation_bytes(height: int, width: int) -> int:
    """Working memory of one LaMa call on a height x width keyframe (padded to a multiple of 8)."""
    return (height + (-height) % 8) * (width + (-width) % 8) * LAMA_ACTIVATION_BYTES_PER_PIXEL


def lama_need(working: tuple[int, int], device: str | None = None) -> ModelNeed:
    """What LaMa will hold for a job at working size (width, height) on the job's device."""
    from ..models.cache import ModelNeed, model_key
    from ..models.device import device_pool, select
    from ..models.registry import locate
    from .models import LAMA_ID

    placement = select("lama", device)
    found = locate(LAMA_ID)
    return ModelNeed(
        key=model_key(LAMA_ID, placement.device, next(iter(found.values())) if found else None),
        pool=device_pool(placement.device),
        weight_bytes=lama_weight_bytes(),
        activation_bytes=lama_activation_bytes(working[1], working[0]),
    )


_logged: set[str] = set()  # reasons already logged once per process


def lama_chosen(name: str = "auto", device: str | None = None) -> bool:
    """Whether get_inpainter(name) would run LaMa (for the memory check before a job)."""
    name = (name or "auto").lower()
    return name == "lama" or (name == "auto" and lama_available(device)[0])


def get_inpainter(name: str = "auto", device: str | None = None) -> Inpainter:
    """ "lama", "synthesis", "opencv", or "auto".

    "auto" is LaMa when its weights are present, else the no-weights
    exemplar/frequency synthesis (synthesis.py), else OpenCV's Telea (when
    OpenCV lacks its contrib modules). `device` is the job's request ("" or
    None: the daemon's). The LaMa model comes from the daemon's model cache:
    loaded once, kept between jobs until the budget needs its memory.
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
    ok, reason = lama_available(device)
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
    from ..models.cache import model_cache
    from ..models.device import select
    from ..models.registry import locate
    from .models import LAMA_ID

    need = lama_need((0, 0), device)
    placement = select("lama", device)
    path = next(iter(locate(LAMA_ID).values()))
    return model_cache().get_or_load(
        need.key, lambda: LamaInpainter.from_file(path, placement=placement), reserve={need.pool: need.weight_bytes}
    )
