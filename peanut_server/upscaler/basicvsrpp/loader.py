"""Load the official BasicVSR++ checkpoints (mmagic / mmediting model zoo) unchanged.

The released .pth files are `{"meta": ..., "state_dict": {...}}` with every
network key prefixed by `generator.` (the restorer wraps the network) and one
extra buffer `step_counter` of the training wrapper. We strip the prefix, drop
that buffer, and then demand a strict key and shape match: a checkpoint of
another architecture must fail loudly rather than half-load.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import ModelError
from .network import BasicVSRPlusPlus, BasicVSRPPConfig

log = logging.getLogger(__name__)

PREFIX = "generator."
IGNORED_KEYS = frozenset({"step_counter"})
_BLOCK_KEY = re.compile(r"^backbone\.backward_1\.main\.2\.(\d+)\.conv1\.weight$")


def normalize_state_dict(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Official checkpoint (or a bare state dict) -> network state dict keys."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise ModelError("BasicVSR++ checkpoint has no state_dict mapping")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in IGNORED_KEYS:
            continue
        name = key[len(PREFIX) :] if key.startswith(PREFIX) else key
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"BasicVSR++ checkpoint entry {key!r} is not a tensor")
        out[name] = value
    return out


def infer_config(state: Mapping[str, torch.Tensor]) -> BasicVSRPPConfig:
    """Read mid_channels / num_blocks from the shapes, so small test models load too."""
    try:
        mid = int(state["feat_extract.main.0.weight"].shape[0])
        groups = int(state["deform_align.backward_1.conv_offset.6.weight"].shape[0]) // 27
    except KeyError as exc:
        raise ModelError(f"not a BasicVSR++ checkpoint: key {exc.args[0]!r} missing") from None
    blocks = [int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))]
    if not blocks:
        raise ModelError("not a BasicVSR++ checkpoint: no propagation residual blocks")
    try:
        return BasicVSRPPConfig(mid_channels=mid, num_blocks=max(blocks) + 1, deform_groups=groups)
    except ValueError as exc:
        raise ModelError(f"not a usable BasicVSR++ checkpoint: {exc}") from None


def load_state_dict_strict(model: BasicVSRPlusPlus, state: Mapping[str, torch.Tensor]) -> None:
    """Copy `state` into `model`; every key and shape must match, else ModelError."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise ModelError("BasicVSR++ checkpoint does not fit the network: " + "; ".join(parts))
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise ModelError(
            f"BasicVSR++ checkpoint does not fit the network: {len(wrong)} shape mismatches "
            f"(e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)})"
        )
    model.load_state_dict(state, strict=True)


def model_from_checkpoint(checkpoint: Mapping[str, object]) -> BasicVSRPlusPlus:
    """Build the network that fits `checkpoint` and load it strictly (eval mode)."""
    state = normalize_state_dict(checkpoint)
    model = BasicVSRPlusPlus(infer_config(state))
    load_state_dict_strict(model, state)
    return model.eval()


def load_checkpoint(path: Path) -> BasicVSRPlusPlus:
    """Read an official .pth file from disk into an eval-mode network on the CPU."""
    try:
        # weights_only: a checkpoint is data; never run pickled code from it.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"BasicVSR++ weights not found at {path}") from None
    except Exception as exc:  # unpickling errors come in many types
        raise ModelError(f"cannot read BasicVSR++ checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(checkpoint, Mapping):
        raise ModelError(f"BasicVSR++ checkpoint {path} is not a dict")
    model = model_from_checkpoint(checkpoint)
    log.info("loaded BasicVSR++ %s from %s", model.config, path)
    return model
