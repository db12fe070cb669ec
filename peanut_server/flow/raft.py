"""RAFT optical flow (torchvision's implementation and checkpoints).

Weights are looked up through the model registry (models directory, then the
torch hub cache under torchvision's own file names), never downloaded here;
without them the backend is refused with `peanut models pull raft-small`.
The device comes from the daemon's device policy (models/device.py: always
fp32, see AUTOCAST_SAFE) and the loaded network lives in the daemon's model
cache (models/cache.py), so it is shared by every job and can be unloaded.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import ModelError
from ..progress import Reporter
from .base import FlowEstimator

if TYPE_CHECKING:
    from ..models.cache import ModelNeed
    from ..models.device import Placement

log = logging.getLogger(__name__)

# Refinement iterations: torchvision's default is 12; fewer is faster and
# little worse on small motions.
FLOW_UPDATES = 12
# Frame pairs per forward pass: bounds memory (RAFT's all-pairs correlation
# volume at 1/8 resolution grows with the square of the frame area).
PAIRS_PER_BATCH = 4
MIN_SIZE = 128
# Feature channels RAFT keeps at 1/8 resolution per image (feature maps of
# both images, context, hidden state, motion features): large 256 + 256 +
# 128 + 128 + 128, small 128 + 128 + 96 + 64 + 82, rounded up.
_FEATURE_CHANNELS = {"raft_small": 512, "raft_large": 900}


def raft_variant_missing(variant: str) -> str:
    """Why torchvision cannot build `variant` here ("" when it can): the capability, not the version."""
    try:
        from torchvision.models import optical_flow
    except ImportError as exc:
        return f"torchvision's optical_flow models cannot be imported ({exc})"
    if not callable(getattr(optical_flow, variant, None)):
        return f"this torchvision has no optical_flow.{variant}"
    return ""


def raft_available(variant: str, device: str | None = None) -> tuple[bool, str]:
    """(available, why not): torchvision's RAFT class, the weights on disk, and the device."""
    from ..models.device import device_missing
    from ..models.registry import missing_reason
    from .models import RAFT_IDS

    if variant not in RAFT_IDS:
        return False, f"unknown RAFT variant {variant!r}"
    reason = raft_variant_missing(variant) or missing_reason(RAFT_IDS[variant]) or device_missing(device)
    return (not reason), reason


@functools.cache
def raft_weight_bytes(variant: str) -> int:
    """Parameters + buffers of `variant` in fp32, counted on torch's meta device (nothing allocated)."""
    import torch

    with torch.device("meta"):
        model = build_raft(variant)
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def raft_activation_bytes(variant: str, height: int, width: int, pairs: int = PAIRS_PER_BATCH) -> int:
    """Peak working memory of one batch (`pairs` pairs, each way) on frames of height x width.

    The all-pairs correlation volume dominates: (h/8 * w/8)^2 floats per pair,
    plus its pooled pyramid (+1/4 + 1/16 + 1/64). This is an estimate from the
    architecture, not a measurement.
    """
    pad_h = max(MIN_SIZE, height + (-height) % 8)
    pad_w = max(MIN_SIZE, width + (-width) % 8)
    cells = (pad_h // 8) * (pad_w // 8)
    per_pair = cells * cells * 4 * 4 // 3 + cells * _FEATURE_CHANNELS[variant] * 4 * 2
    images = pad_h * pad_w * 3 * 4 * 2
    return 2 * pairs * (per_pair + images)


def raft_need(variant: str, working: tuple[int, int], device: str | None = None) -> ModelNeed:
    """What RAFT will hold for a job at working size (width, height) on the job's device."""
    from ..models.cache import ModelNeed, model_key
    from ..models.device import device_pool, select
    from ..models.registry import locate
    from .models import RAFT_IDS

    placement = select("raft", device)
    found = locate(RAFT_IDS[variant])
    return ModelNeed(
        key=model_key(RAFT_IDS[variant], placement.device, next(iter(found.values())) if found else None),
        pool=device_pool(placement.device),
        weight_bytes=raft_weight_bytes(variant),
        activation_bytes=raft_activation_bytes(variant, working[1], working[0]),
    )


def build_raft(variant: str):
    """An untrained RAFT of torchvision's architecture ("raft_small" or "raft_large")."""
    from torchvision.models import optical_flow

    if variant not in ("raft_small", "raft_large"):
        raise ValueError(f"unknown RAFT variant {variant!r}")
    return getattr(optical_flow, variant)(weights=None, progress=False)


def load_raft(variant: str, state_dict: dict):
    """RAFT with `state_dict` (torchvision key names) loaded strictly; ModelError on mismatch."""
    model = build_raft(variant)
    # torchvision checkpoints are plain state dicts; accept a {"state_dict": ...} wrapper too.
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first_line = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ModelError(f"checkpoint does not fit {variant}: {first_line}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"checkpoint does not fit {variant}: {len(result.missing_keys)} missing keys "
            f"(e.g. {result.missing_keys[:2]}), {len(result.unexpected_keys)} unexpected "
            f"(e.g. {result.unexpected_keys[:2]})"
        )
    return model.eval()


def load_raft_file(variant: str, path: str | Path):
    import torch

    try:
        state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files raise many types
        raise ModelError(f"cannot read RAFT checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    return load_raft(variant, state_dict)


class RaftFlow(FlowEstimator):
    name: ClassVar[str] = "raft"

    def __init__(
        self, model, device: str = "cpu", flow_updates: int = FLOW_UPDATES, placement: Placement | None = None
    ) -> None:
        from ..models.device import Placement

        self.placement = placement or Placement(device, "float32", "given")
        self.device = self.placement.device
        self.model = model.to(self.device).eval()
        self.flow_updates = flow_updates

    @classmethod
    def from_registry(cls, variant: str, device: str | None = None) -> RaftFlow:
        """The RAFT of `variant` on the job's device, from the model cache (loaded on first use)."""
        from ..models.cache import model_cache
        from ..models.registry import locate
        from .models import RAFT_IDS

        if variant not in RAFT_IDS:
            raise ValueError(f"unknown RAFT variant {variant!r}")
        ok, reason = raft_available(variant, device)
        if not ok:
            raise ModelError(f"RAFT ({variant}) cannot run: {reason}", code="MODEL_MISSING")
        need = raft_need(variant, (MIN_SIZE, MIN_SIZE), device)
        placement = _placement(device)
        path = next(iter(locate(RAFT_IDS[variant]).values()))

        def load() -> RaftFlow:
            return cls(load_raft_file(variant, path), placement=placement)

        return model_cache().get_or_load(need.key, load, reserve={need.pool: need.weight_bytes})

    def pair(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return self._batch(first[None], second[None])[0]

    def window(self, frames: np.ndarray, reporter: Reporter | None = None) -> tuple[np.ndarray, np.ndarray]:
        count = len(frames)
        forward = np.zeros((max(count - 1, 0),) + frames.shape[1:3] + (2,), np.float32)
        backward = np.zeros_like(forward)
        for start in range(0, count - 1, PAIRS_PER_BATCH):
            if reporter is not None:
                reporter.check()
            stop = min(start + PAIRS_PER_BATCH, count - 1)
            a, b = frames[start:stop], frames[start + 1 : stop + 1]
            both = self._batch(np.concatenate([a, b]), np.concatenate([b, a]))
            forward[start:stop] = both[: stop - start]
            backward[start:stop] = both[stop - start :]
        return forward, backward

    def _batch(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        height, width = first.shape[1:3]
        # RAFT works on 1/8 resolution features with a 4-level correlation
        # pyramid: pad to a multiple of 8 and to at least MIN_SIZE.
        pad_h = max(MIN_SIZE - height, (-height) % 8)
        pad_w = max(MIN_SIZE - width, (-width) % 8)

        def prepare(images: np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().to(self.device)
            t = t / 127.5 - 1.0
            return F.pad(t, (0, pad_w, 0, pad_h), mode="replicate") if (pad_h or pad_w) else t

        with torch.inference_mode(), self.placement.autocast_context():
            flows = self.model(prepare(first), prepare(second), num_flow_updates=self.flow_updates)[-1]
        return flows[:, :, :height, :width].float().permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def _placement(device: str | None) -> Placement:
    from ..models.device import select

    return select("raft", device)
