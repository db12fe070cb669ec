"""The learned upscaler: BasicVSR++ x4, then an exact resample to the target size.

Why x4 first and resample after: the released models only do x4. For a ratio
below 4 (a 432-line crop going to 1080p is x2.5) we still run x4 and shrink
with INTER_AREA, which keeps every detail the network produced and
anti-aliases; pre-shrinking the input instead would throw information away
before the network sees it. Above 4 (432 -> 2160 is x5) the x4 result is
enlarged with INTER_CUBIC, the small remaining factor adding no new detail.

Torch is imported on first use, so listing backends stays cheap. The device
and precision come from the daemon's device policy (models/device.py: fp16
autocast on CUDA), the network from the daemon's model cache (models/cache.py).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from ...errors import BackendUnavailable
from ...progress import Reporter
from ..base import FlowFields, Upscaler, UpscalerOptions
from ..lanczos import check_frames

if TYPE_CHECKING:
    from ...models.cache import ModelNeed
    from .network import BasicVSRPlusPlus

log = logging.getLogger(__name__)


def find_weights() -> tuple[str, Path] | None:
    """(model id, path) of the first BasicVSR++ checkpoint on disk, in preference order."""
    from ...models.registry import locate
    from ..models import BASICVSRPP_MODEL_IDS

    for model_id in BASICVSRPP_MODEL_IDS:
        found = locate(model_id)
        if found:
            return model_id, next(iter(found.values()))
    return None


def fit_to_size(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample to exactly (H, W): INTER_AREA to shrink, INTER_CUBIC to enlarge."""
    height, width = size
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    shrink = height * width < h * w
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def deform_conv_missing() -> str:
    """Why torchvision cannot run the deformable alignment here ("" when it can)."""
    try:
        from torchvision.ops import deform_conv2d  # noqa: F401
    except ImportError as exc:
        return f"torchvision.ops.deform_conv2d is not available ({exc})"
    return ""


@functools.cache
def weight_bytes(mid_channels: int = 64, num_blocks: int = 7) -> int:
    """Parameters + buffers of the network in fp32, counted on torch's meta device (nothing allocated)."""
    import torch

    from .network import BasicVSRPlusPlus, BasicVSRPPConfig

    with torch.device("meta"):
        net = BasicVSRPlusPlus(BasicVSRPPConfig(mid_channels=mid_channels, num_blocks=num_blocks))
    return sum(t.numel() * t.element_size() for t in list(net.parameters()) + list(net.buffers()))


class BasicVSRPPUpscaler(Upscaler):
    name: ClassVar[str] = "basicvsrpp"
    learned: ClassVar[bool] = True

    def __init__(self, model_id: str | None = None) -> None:
        self.model_id = model_id  # None: the first one found, in preference order
        self.ran_model_id = ""  # which checkpoint the last call used, for job results

    @classmethod
    def availability(cls, device: str | None = None) -> tuple[bool, str]:
        """(available, why not): the weights, torchvision's deformable convolution, the device.

        The weights first: looking for files is instant, while importing torchvision
        to ask about deform_conv2d takes seconds, and without weights the answer
        is no either way (every `auto` job in a fresh process asks this).
        """
        reason = ""
        if find_weights() is None:
            from ...models.registry import missing_reason
            from ..models import BASICVSRPP_MODEL_IDS

            reason = missing_reason(BASICVSRPP_MODEL_IDS[0])
        if not reason:
            reason = deform_conv_missing()
        if not reason:
            from ...models.device import device_missing

            reason = device_missing(device)
        return (not reason), reason

    def _weights(self) -> tuple[str, Path]:
        if self.model_id is not None:
            from ...models.registry import locate, missing_reason

            found = locate(self.model_id)
            if not found:
                raise BackendUnavailable(f"basicvsrpp: {missing_reason(self.model_id)}")
            return self.model_id, next(iter(found.values()))
        hit = find_weights()
        if hit is None:
            raise BackendUnavailable(f"basicvsrpp: {self.availability()[1]}")
        return hit

    @classmethod
    def model_needs(cls, options: UpscalerOptions, working: tuple[int, int]) -> list[ModelNeed]:
        """What the network will hold for a job whose crops are at most `working` (width, height)."""
        import torch

        from ...models.cache import ModelNeed, model_key
        from ...models.device import device_pool, select
        from ..models import BASICVSRPP_MODEL_IDS
        from .runner import activation_bytes, choose_settings

        placement = select("basicvsrpp", None if options.device in ("", "auto") else options.device)
        hit = find_weights()
        model_id, path = hit if hit is not None else (BASICVSRPP_MODEL_IDS[0], None)
        w, h = working
        settings = choose_settings(
            h, w, 64, torch.device(placement.device), options.tile, options.chunk, dtype=placement.dtype
        )
        return [
            ModelNeed(
                key=model_key(model_id, placement.device, path),
                pool=device_pool(placement.device),
                weight_bytes=weight_bytes(),
                activation_bytes=activation_bytes(h, w, settings, 64),
            )
        ]

    def model(self, device: str = "auto") -> BasicVSRPlusPlus:
        """The network on the job's device, from the daemon's model cache (loaded on first use)."""
        from ...models.cache import model_cache, model_key
        from ...models.device import device_pool, select
        from .loader import load_checkpoint

        model_id, path = self._weights()
        placement = select("basicvsrpp", None if device in ("", "auto") else device)
        key = model_key(model_id, placement.device, path)
        net = model_cache().get_or_load(
            key,
            lambda: load_checkpoint(path).to(placement.device),
            reserve={device_pool(placement.device): weight_bytes()},
        )
        self.ran_model_id = model_id
        return net

    def upscale(
        self,
        frames: np.ndarray,
        size: tuple[int, int],
        flows: FlowFields | None,
        options: UpscalerOptions,
        reporter: Reporter,
    ) -> np.ndarray:
        from .runner import choose_settings, iter_upscaled, resolve_device

        check_frames(frames, size)
        t, h, w, _ = frames.shape
        out = np.empty((t, size[0], size[1], 3), dtype=np.uint8)
        if t == 0:
            return out
        net = self.model(options.device)
        settings = choose_settings(h, w, net.mid_channels, resolve_device(options.device), options.tile, options.chunk)
        use_flows = flows if options.reuse_flow else None
        log.info(
            "BasicVSR++ (%s) %d frames %dx%d -> %dx%d, flow %s, tile %d, chunk %d",
            self.ran_model_id,
            t,
            w,
            h,
            size[1],
            size[0],
            "reused" if use_flows is not None else "SPyNet",
            settings.tile,
            settings.chunk,
        )
        for start, chunk in iter_upscaled(net, frames, use_flows, settings, reporter.check):
            for i, frame in enumerate(chunk):
                out[start + i] = fit_to_size(frame, size)
            reporter.advance(len(chunk))
        return out
