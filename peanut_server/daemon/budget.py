"""The memory safety net: a model cache with a budget, and an up-front fit check for jobs.

Backends (maskers, erasers, upscalers) stay loaded between jobs because loading
takes seconds; but a daemon left running for days must not grow without bound.
`ModelCache` (models/cache.py) holds the Pipeline's backend instances and every
loaded network (RAFT, LaMa, BasicVSR++, ...): when
the sum of their estimated sizes exceeds the budget, the least recently used
instances are dropped (their memory is freed once no running job holds them).

`estimate_job_bytes` adds up what a job will hold at once (the windows of frames
the erase pass holds in flight, at working and at source resolution, and the
models it uses);
`MemoryBudget.check_job` refuses a job that cannot fit, before it is queued,
with both numbers in the message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ResourceExhausted
from ..models.cache import ModelCache, ModelNeed, estimate_bytes, estimate_pools
from ..pipeline.run import FRAMES_QUEUED, KEEP_SOURCE_BYTES, WINDOWS_IN_FLIGHT

__all__ = [
    "MIB",
    "WINDOWS_IN_FLIGHT",
    "JobEstimate",
    "MemoryBudget",
    "ModelCache",
    "ModelNeed",
    "default_budget_bytes",
    "estimate_bytes",
    "estimate_job_bytes",
    "estimate_pools",
    "physical_memory_bytes",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_BUDGET_FRACTION = 0.75
# The compositor keeps the source frames of the windows it holds only up to this
# size together (pipeline/run.py); beyond it, it decodes them twice instead.
SOURCE_WINDOW_CAP = KEEP_SOURCE_BYTES
# Working frames go through the eraser as float32 planes, flows and masks: a
# window costs a few times its uint8 size. 4x is what the flow-guided eraser
# needs (frames + 2 flow fields + masks), rounded up.
WORKING_FACTOR = 4


def physical_memory_bytes() -> int:
    """Total RAM of this machine, from psutil (every platform); os.sysconf where psutil fails; 0 if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - an unsupported platform: fall back, never fail the daemon
        log.warning("psutil could not tell the RAM size", exc_info=True)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no os.sysconf on Windows
        return 0


def default_budget_bytes() -> int:
    return int(physical_memory_bytes() * DEFAULT_BUDGET_FRACTION)


@dataclass
class JobEstimate:
    working_bytes: int
    source_bytes: int
    model_bytes: int  # weights and activations in RAM
    accelerator_bytes: dict[str, int] = field(default_factory=dict)  # per GPU: weights and activations there
    windows_in_flight: int = 1  # eraser windows the job holds at once (the figures above count them all)

    @property
    def total(self) -> int:
        """What the job needs in RAM."""
        return self.working_bytes + self.source_bytes + self.model_bytes


def estimate_job_bytes(
    width: int,
    height: int,
    working: tuple[int, int],
    window: int,
    model_bytes: int,
    channels: int = 3,
    windows_in_flight: int = 1,
) -> JobEstimate:
    """Bytes a job holds at once in RAM: its windows in flight at working and at source resolution, plus its models.

    The streaming erase pass (pipeline/run.py, the default) holds up to
    WINDOWS_IN_FLIGHT windows at once: one read ahead, one in the eraser, one
    being upscaled and composited; and FRAMES_QUEUED finished frames waiting for
    the writer. Only the window in the eraser holds its float planes and flows
    (WORKING_FACTOR); the others hold their working frames once. Every window
    holds its object masks at source resolution (a byte a pixel), and its source
    frames while all windows in flight fit under SOURCE_WINDOW_CAP together.
    The sequential pass and a Ray task hold one window (windows_in_flight=1).
    Streaming, the mask pass runs beside the erase pass; it holds its decoder's
    frame and the tracker's re-check buffer (clip_window frames at the masker's
    working size, 8 by default): about 1 % of one 80-frame eraser window at
    1080p, not counted. Before a box the editor put on a later frame it holds up
    to tracking.KEYFRAME_REACH frames instead (what they weigh is written there),
    not counted either.
    """
    working_frame = working[0] * working[1] * channels
    source_frame = width * height * channels
    working_bytes = working_frame * window * (WORKING_FACTOR + windows_in_flight - 1)
    # Beyond the cap the compositor decodes again, but still holds a frame or two.
    source_bytes = max(min(source_frame * window * windows_in_flight, SOURCE_WINDOW_CAP), source_frame * 2)
    source_bytes += width * height * window * windows_in_flight  # the object masks
    if windows_in_flight > 1:
        # Finished frames queued for the writer, each with its alpha (RGBA at most, 16-bit matte).
        source_bytes += FRAMES_QUEUED * width * height * (channels + 1 + 2)
    return JobEstimate(working_bytes, source_bytes, model_bytes, windows_in_flight=windows_in_flight)


def accelerator_memory_bytes(pool: str) -> int | None:
    """Total memory of a CUDA device ("cuda:N"), or None when torch cannot tell."""
    try:
        import torch

        return int(torch.cuda.get_device_properties(int(pool.split(":")[1])).total_memory)
    except Exception:  # noqa: BLE001 - no CUDA, or a broken driver: not limited here
        return None


class MemoryBudget:
    """The daemon's memory budget: the model cache's limits and the fit check for new jobs.

    `budget_bytes` limits RAM; each GPU is limited to DEFAULT_BUDGET_FRACTION of
    its own memory (or `accelerator_bytes[pool]` when given).
    """

    def __init__(self, budget_bytes: int, accelerator_bytes: dict[str, int] | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._accelerator_bytes = dict(accelerator_bytes or {})
        self.cache = ModelCache(budget_bytes, limit_of=self.limit)

    def limit(self, pool: str) -> int | None:
        if pool == "cpu":
            return self.budget_bytes
        if pool not in self._accelerator_bytes:
            total = accelerator_memory_bytes(pool)
            if total is None:
                return None
            self._accelerator_bytes[pool] = int(total * DEFAULT_BUDGET_FRACTION)
        return self._accelerator_bytes[pool]

    def backend_bytes(self, backends: list[tuple[str, type]]) -> dict[str, int]:
        """Bytes per pool of the (stage, class) backend instances themselves: measured if loaded, else declared (RAM)."""
        pools: dict[str, int] = {}
        for stage, cls in backends:
            key = (stage, getattr(cls, "name", cls.__name__))
            held = (
                self.cache.pools_of(key)
                if key in self.cache
                else {"cpu": int(getattr(cls, "estimated_memory_bytes", 0))}
            )
            for pool, size in held.items():
                pools[pool] = pools.get(pool, 0) + size
        return pools

    def model_bytes(self, backends: list[tuple[str, type]]) -> int:
        """RAM held by the backend instances (see backend_bytes)."""
        return self.backend_bytes(backends).get("cpu", 0)

    def need_bytes(self, needs: Sequence[ModelNeed]) -> dict[str, int]:
        """Bytes per pool for a job's models: loaded ones by their measured size, others as declared; plus activations."""
        pools: dict[str, int] = {}
        for need in needs:
            held = self.cache.pools_of(need.key) if need.key in self.cache else {need.pool: need.weight_bytes}
            for pool, size in held.items():
                pools[pool] = pools.get(pool, 0) + size
            pools[need.pool] = pools.get(need.pool, 0) + need.activation_bytes
        return pools

    def check_job(
        self,
        width: int,
        height: int,
        working: tuple[int, int],
        window: int,
        backends: list[tuple[str, type]],
        needs: Sequence[ModelNeed] = (),
        windows_in_flight: int = 1,
    ) -> JobEstimate:
        """Refuse (ResourceExhausted) a job that cannot fit even with every other model unloaded.

        `windows_in_flight`: eraser windows the job's erase pass holds at once
        (WINDOWS_IN_FLIGHT when it streams; see estimate_job_bytes).

        A job that fits only once least recently used models are unloaded is
        let in: the cache unloads them when the job's models load.
        """
        pools = self.need_bytes(needs)
        for pool, size in self.backend_bytes(backends).items():
            pools[pool] = pools.get(pool, 0) + size
        ram_models = pools.pop("cpu", 0)
        estimate = estimate_job_bytes(width, height, working, window, ram_models, windows_in_flight=windows_in_flight)
        estimate.accelerator_bytes = pools
        if estimate.total > self.budget_bytes:
            held = f"{windows_in_flight} windows of {window} frames" if windows_in_flight > 1 else f"{window} frames"
            raise ResourceExhausted(
                f"this job needs about {estimate.total / MIB:.0f} MiB "
                f"({held} in flight: frames at working resolution {estimate.working_bytes / MIB:.0f} MiB, "
                f"at source resolution with their masks {estimate.source_bytes / MIB:.0f} MiB, "
                f"models {estimate.model_bytes / MIB:.0f} MiB) but the memory budget is "
                f"{self.budget_bytes / MIB:.0f} MiB; use a lower working_height or a shorter "
                f"subvideo_length, or start peanut-server with a larger --memory-budget-mb",
                code="OUT_OF_MEMORY_BUDGET",
            )
        for pool, size in pools.items():
            limit = self.limit(pool)
            if limit is not None and size > limit:
                parts = [
                    f"{need.key[1]} {(need.weight_bytes + need.activation_bytes) / MIB:.0f} MiB"
                    for need in needs
                    if need.pool == pool
                ]
                parts += [
                    f"{stage} {getattr(cls, 'name', cls.__name__)} as loaded"
                    for stage, cls in backends
                    if self.cache.pools_of((stage, getattr(cls, "name", cls.__name__))).get(pool)
                ]
                raise ResourceExhausted(
                    f"this job needs about {size / MIB:.0f} MiB on {pool} ({', '.join(parts)}; weights and activations) "
                    f"but the budget there is {limit / MIB:.0f} MiB; use a lower working_height, "
                    f"or run it on another device (--device)",
                    code="OUT_OF_MEMORY_BUDGET",
                )
        return estimate


def job_model_needs(backends: list[tuple[str, type]], options, working: tuple[int, int]) -> list[ModelNeed]:
    """The learned models a job's chosen (stage, class) backends will load, from their `model_needs`.

    `options` is the job's PipelineOptions; each stage gets its own options
    (eraser_options, upscaler_options, masker_options). A backend without
    `model_needs` holds no cached model, or reports its size through the
    Pipeline's instance cache (`model_bytes`).
    """
    needs: list[ModelNeed] = []
    for stage, cls in backends:
        method = getattr(cls, "model_needs", None)
        if callable(method):
            needs.extend(method(getattr(options, f"{stage}_options"), working))
    return needs
