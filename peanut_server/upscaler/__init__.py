"""UR-Net: bring the erased crop back to source resolution.

`BACKENDS` is ordered by preference for `auto`: the first whose
`availability()` is true runs. BasicVSR++ needs its weights on disk (found
through peanut_server.models.locate); Lanczos is always available.
"""

from __future__ import annotations

from .base import Upscaler, UpscalerOptions
from .basicvsrpp import BasicVSRPPUpscaler
from .lanczos import LanczosUpscaler, UnsharpMask

BACKENDS: dict[str, type[Upscaler]] = {
    BasicVSRPPUpscaler.name: BasicVSRPPUpscaler,
    LanczosUpscaler.name: LanczosUpscaler,
}

__all__ = ["BACKENDS", "BasicVSRPPUpscaler", "LanczosUpscaler", "UnsharpMask", "Upscaler", "UpscalerOptions"]
