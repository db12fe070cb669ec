"""The memory safety net: a model cache with a budget, and an up-front fit check for jobs.

Backends (maskers, erasers, upscalers) stay loaded between jobs because loading
takes seconds; but a daemon left running for days must not grow without bound.
`ModelCache` is the mapping the Pipeline keeps its backend instances in: when
the sum of their estimated sizes exceeds the budget, the least recently used
instances are dropped (their memory is freed once no running job holds them).

`estimate_job_bytes` adds up what a job will hold at once (one window of frames
at working resolution, one window at source resolution, the models it uses);
`MemoryBudget.check_job` refuses a job that cannot fit, before it is queued,
with both numbers in the message.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..errors import ResourceExhausted

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_BUDGET_FRACTION = 0.75
# The compositor keeps one window of source frames only up to this size (see
# pipeline/run.py KEEP_SOURCE_BYTES); beyond it, it decodes them twice instead.
SOURCE_WINDOW_CAP = 512 * MIB
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


def _torch_module_bytes(module: Any, seen: set[int]) -> int:
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        key = tensor.data_ptr()
        if key in seen:
            continue  # tied weights are counted once
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def estimate_bytes(instance: Any) -> int:
    """A backend instance's resident size: its own `memory_bytes()`, else its torch modules.

    Backends with no learned model (Telea, Lanczos) come out near 0, which is right:
    they hold no weights.
    """
    method = getattr(instance, "memory_bytes", None)
    if callable(method):
        return max(0, int(method()))
    torch = sys.modules.get("torch")  # never import torch just to measure nothing
    if torch is None:
        return 0
    seen: set[int] = set()
    if isinstance(instance, torch.nn.Module):
        return _torch_module_bytes(instance, seen)
    total = 0
    # One level of attributes: backends hold their networks as fields.
    for value in vars(instance).values() if hasattr(instance, "__dict__") else ():
        if isinstance(value, torch.nn.Module):
            total += _torch_module_bytes(value, seen)
    return total


class ModelCache(MutableMapping):
    """Backend instances by key, least recently used dropped past `budget_bytes`.

    Sizes are measured when an instance is stored and again on every access (a
    backend may load its network lazily, on its first job).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._sizes: dict[Any, int] = {}
        self._lock = threading.RLock()
        self.evicted: list[Any] = []   # keys dropped, oldest first (for logs and tests)

    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            value = self._items[key]
            self._items.move_to_end(key)
            self._sizes[key] = estimate_bytes(value)
            self._evict(keep=key)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            self._sizes[key] = estimate_bytes(value)
            self._evict(keep=key)

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            del self._items[key]
            self._sizes.pop(key, None)

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def size_of(self, key: Any) -> int:
        return self._sizes.get(key, 0)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def _evict(self, keep: Any) -> None:
        # The instance just used stays even if it alone is over the budget:
        # the job that asked for it is running (the up-front check let it in).
        while self.total_bytes() > self.budget_bytes:
            victim = next((k for k in self._items if k != keep), None)
            if victim is None:
                return
            size = self._sizes.get(victim, 0)
            del self[victim]
            self.evicted.append(victim)
            log.info("model cache: unloaded %s (%.1f MiB) to stay within %.0f MiB",
                     victim, size / MIB, self.budget_bytes / MIB)
        if self.evicted:
            _release_accelerator_memory()


def _release_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class JobEstimate:
    working_bytes: int
    source_bytes: int
    model_bytes: int

    @property
    def total(self) -> int:
        return self.working_bytes + self.source_bytes + self.model_bytes


def estimate_job_bytes(width: int, height: int, working: tuple[int, int], window: int, model_bytes: int,
                       channels: int = 3) -> JobEstimate:
    """Bytes a job holds at once: one window at working and at source resolution, plus its models."""
    working_bytes = working[0] * working[1] * channels * window * WORKING_FACTOR
    source_bytes = min(width * height * channels * window, SOURCE_WINDOW_CAP)
    # Beyond the cap the compositor streams, but still holds a frame or two.
    source_bytes = max(source_bytes, width * height * channels * 2)
    return JobEstimate(working_bytes, source_bytes, model_bytes)


class MemoryBudget:
    """The daemon's memory budget: the model cache's limit and the fit check for new jobs."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.cache = ModelCache(budget_bytes)

    def model_bytes(self, backends: list[tuple[str, type]]) -> int:
        """Sizes of the (stage, class) backends a job will use: measured if loaded, else declared."""
        total = 0
        for stage, cls in backends:
            key = (stage, getattr(cls, "name", cls.__name__))
            if key in self.cache:
                total += self.cache.size_of(key)
            else:
                total += int(getattr(cls, "estimated_memory_bytes", 0))
        return total

    def check_job(self, width: int, height: int, working: tuple[int, int], window: int,
                  backends: list[tuple[str, type]]) -> JobEstimate:
        estimate = estimate_job_bytes(width, height, working, window, self.model_bytes(backends))
        if estimate.total > self.budget_bytes:
            raise ResourceExhausted(
                f"this job needs about {estimate.total / MIB:.0f} MiB "
                f"(frames at working resolution {estimate.working_bytes / MIB:.0f} MiB, "
                f"at source resolution {estimate.source_bytes / MIB:.0f} MiB, "
                f"models {estimate.model_bytes / MIB:.0f} MiB) but the memory budget is "
                f"{self.budget_bytes / MIB:.0f} MiB; use a lower working_height or a shorter "
                f"subvideo_length, or start peanut-server with a larger --memory-budget-mb",
                code="OUT_OF_MEMORY_BUDGET",
            )
        return estimate
