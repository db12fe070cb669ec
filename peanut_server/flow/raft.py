"""RAFT optical flow (torchvision's implementation and checkpoints).

Weights are looked up through the model registry (models directory, then the
torch hub cache under torchvision's own file names), never downloaded here;
without them the backend is refused with `peanut models pull raft-small`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ModelError
from ..progress import Reporter
from .base import FlowEstimator

log = logging.getLogger(__name__)

# Refinement iterations: torchvision's default is 12; fewer is faster and
# little worse on small motions.
FLOW_UPDATES = 12
# Frame pairs per forward pass: bounds memory (RAFT's all-pairs correlation
# volume at 1/8 resolution grows with the square of the frame area).
PAIRS_PER_BATCH = 4
MIN_SIZE = 128


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

    def __init__(self, model, device: str = "cpu", flow_updates: int = FLOW_UPDATES) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.flow_updates = flow_updates

    @classmethod
    def from_registry(cls, variant: str, device: str | None = None) -> "RaftFlow":
        from ..models.registry import locate, missing_reason
        from .models import RAFT_IDS

        model_id = RAFT_IDS[variant]
        found = locate(model_id)
        if not found:
            raise ModelError(f"RAFT ({variant}) cannot run: {missing_reason(model_id)}", code="MODEL_MISSING")
        return cls(load_raft_file(variant, next(iter(found.values()))), device or _default_device())

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
            a, b = frames[start:stop], frames[start + 1: stop + 1]
            both = self._batch(np.concatenate([a, b]), np.concatenate([b, a]))
            forward[start:stop] = both[: stop - start]
            backward[start:stop] = both[stop - start:]
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

        with torch.inference_mode():
            flows = self.model(prepare(first), prepare(second), num_flow_updates=self.flow_updates)[-1]
        return flows[:, :, :height, :width].permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
