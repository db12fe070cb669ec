"""The learned upscaler: BasicVSR++ x4, then an exact resample to the target size.

Why x4 first and resample after: the released models only do x4. For a ratio
below 4 (a 432-line crop going to 1080p is x2.5) we still run x4 and shrink
with INTER_AREA, which keeps every detail the network produced and
anti-aliases; pre-shrinking the input instead would throw information away
before the network sees it. Above 4 (432 -> 2160 is x5) the x4 result is
enlarged with INTER_CUBIC, the small remaining factor adding no new detail.

Torch is imported on first use, so listing backends stays cheap.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from ...errors import BackendUnavailable
from ...progress import Reporter
from ..base import FlowFields, Upscaler, UpscalerOptions
from ..lanczos import check_frames

if TYPE_CHECKING:
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


class BasicVSRPPUpscaler(Upscaler):
    name: ClassVar[str] = "basicvsrpp"
    learned: ClassVar[bool] = True

    # Loaded networks stay in memory between jobs: {(path, device): model}.
    _cache: ClassVar[dict[tuple[str, str], BasicVSRPlusPlus]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, model_id: str | None = None) -> None:
        self.model_id = model_id  # None: the first one found, in preference order
        self.ran_model_id = ""    # which checkpoint the last call used, for job results

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if find_weights() is None:
            from ...models.registry import missing_reason
            from ..models import BASICVSRPP_MODEL_IDS

            return False, missing_reason(BASICVSRPP_MODEL_IDS[0])
        return True, ""

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

    def model(self, device: str = "auto") -> BasicVSRPlusPlus:
        from .loader import load_checkpoint
        from .runner import resolve_device

        model_id, path = self._weights()
        dev = resolve_device(device)
        key = (str(path), str(dev))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = load_checkpoint(path).to(dev)
            self.ran_model_id = model_id
            return self._cache[key]

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
        settings = choose_settings(
            h, w, net.mid_channels, resolve_device(options.device), options.tile, options.chunk
        )
        use_flows = flows if options.reuse_flow else None
        log.info(
            "BasicVSR++ (%s) %d frames %dx%d -> %dx%d, flow %s, tile %d, chunk %d",
            self.ran_model_id, t, w, h, size[1], size[0],
            "reused" if use_flows is not None else "SPyNet", settings.tile, settings.chunk,
        )
        for start, chunk in iter_upscaled(net, frames, use_flows, settings, reporter.check):
            for i, frame in enumerate(chunk):
                out[start + i] = fit_to_size(frame, size)
            reporter.advance(len(chunk))
        return out
