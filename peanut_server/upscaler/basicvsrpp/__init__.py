"""BasicVSR++ in plain PyTorch: network, official-checkpoint loader, tiled runner."""

from .backend import BasicVSRPPUpscaler, find_weights, fit_to_size

__all__ = ["BasicVSRPPUpscaler", "find_weights", "fit_to_size"]
