"""The daemon's one model cache: loaded networks and backend instances, least recently used dropped past a budget.

Every learned backend gets its network from `model_cache().get_or_load(...)`
instead of a cache of its own, so the daemon sees every byte it holds and can
unload what was used least recently. The daemon installs its budgeted cache
(daemon/budget.py) with `install_model_cache`; without a daemon (--local,
tests) an unbounded cache keeps models for the process's life.

Sizes are counted per memory pool ("cpu" = RAM, "cuda:N" = that GPU's
memory), from the tensors' own devices: parameters + buffers, tied weights
once. A model on the GPU is measured against the GPU's budget, not the RAM's.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .device import device_pool

log = logging.getLogger(__name__)

MIB = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class ModelNeed:
    """What one model of a job will hold: weights (kept in the cache) and activations (during a call).

    `key` is the cache key the backend loads it under, so a need whose model is
    already loaded is counted once, by its measured size.
    """

    key: tuple
    pool: str  # "cpu" or "cuda:N"
    weight_bytes: int  # parameters + buffers, declared before loading
    activation_bytes: int  # peak working memory of one call at the job's size


def model_key(model_id: str, device: str, path: str | os.PathLike | None = None) -> tuple:
    """The cache key of a model's network on a device: a weights file replaced on disk
    (`peanut models import --overwrite`) gets a new key, so the next job loads the new one."""
    if path is None:
        return ("model", model_id, device)
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = 0
    return ("model", model_id, device, str(path), stamp)


def _tensor_pool(tensor: Any) -> str:
    device = tensor.device
    return device_pool(f"{device.type}:{device.index or 0}" if device.type == "cuda" else device.type)


def _module_pools(module: Any, seen: set[int], out: dict[str, int]) -> None:
    for tensor in list(module.parameters()) + list(module.buffers()):
        key = tensor.data_ptr()
        if key in seen:
            continue  # tied weights are counted once
        seen.add(key)
        pool = _tensor_pool(tensor)
        out[pool] = out.get(pool, 0) + tensor.numel() * tensor.element_size()


def estimate_pools(instance: Any) -> dict[str, int]:
    """Bytes `instance` holds per memory pool: its own `memory_bytes()`, else its torch modules.

    A backend with no learned model (Telea, Lanczos) comes out empty, which is
    right: it holds no weights. Modules are looked for on the instance and one
    level down (backends hold their networks as fields, or in a descriptor).
    """
    method = getattr(instance, "memory_bytes", None)
    if callable(method):
        return {getattr(instance, "memory_pool", "cpu"): max(0, int(method()))}
    torch = sys.modules.get("torch")  # never import torch just to measure nothing
    if torch is None:
        return {}
    out: dict[str, int] = {}
    seen: set[int] = set()
    if isinstance(instance, torch.nn.Module):
        _module_pools(instance, seen, out)
        return out
    for value in vars(instance).values() if hasattr(instance, "__dict__") else ():
        if isinstance(value, torch.nn.Module):
            _module_pools(value, seen, out)
        elif isinstance(getattr(value, "model", None), torch.nn.Module):
            _module_pools(value.model, seen, out)  # e.g. a spandrel ModelDescriptor
    return out


def estimate_bytes(instance: Any) -> int:
    """All the bytes `instance` holds, over every pool."""
    return sum(estimate_pools(instance).values())


class ModelCache(MutableMapping):
    """Backend instances and loaded models by key, least recently used dropped past the pool's limit.

    `budget_bytes` limits the "cpu" pool (RAM); `limit_of(pool)` gives the other
    pools' limits (None: not limited). Sizes are measured when an item is
    stored and again on every access (a backend may load its network lazily).
    """

    def __init__(self, budget_bytes: int | None = None, limit_of: Callable[[str], int | None] | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._limit_of = limit_of
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._sizes: dict[Any, dict[str, int]] = {}
        self._lock = threading.RLock()
        self._loading: dict[Any, threading.Lock] = {}
        self.evicted: list[Any] = []  # keys dropped, oldest first (for logs and tests)
        self.loads: list[Any] = []  # keys loaded by get_or_load, in order (for logs and tests)

    # -- the mapping ---------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            value = self._items[key]
            self._touch(key, value)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._touch(key, value)

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

    # -- sizes ---------------------------------------------------------------

    def limit(self, pool: str) -> int | None:
        if pool == "cpu":
            return self.budget_bytes
        return self._limit_of(pool) if self._limit_of is not None else None

    def size_of(self, key: Any) -> int:
        return sum(self._sizes.get(key, {}).values())

    def pools_of(self, key: Any) -> dict[str, int]:
        return dict(self._sizes.get(key, {}))

    def total_bytes(self, pool: str | None = None) -> int:
        with self._lock:
            if pool is None:
                return sum(sum(s.values()) for s in self._sizes.values())
            return sum(s.get(pool, 0) for s in self._sizes.values())

    def held(self) -> list[tuple[Any, dict[str, int]]]:
        """(key, bytes per pool) of every item, least recently used first."""
        with self._lock:
            return [(key, dict(self._sizes.get(key, {}))) for key in self._items]

    # -- models ----------------------------------------------------------------

    def get_or_load(self, key: tuple, load: Callable[[], T], reserve: dict[str, int] | None = None) -> T:
        """The item under `key`, loading it with `load()` if absent.

        Before a load, least recently used items are dropped until `reserve`
        (bytes per pool: the model's declared weights and the activations of
        the call about to run) fits beside what stays. Loading runs outside
        the cache's lock (it takes seconds), one load per key at a time.
        """
        with self._lock:
            if key in self._items:
                return self[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:  # another thread loaded it meanwhile
                    return self[key]
                for pool, extra in (reserve or {}).items():
                    self._evict(pool, keep=None, extra=extra)
            try:
                value = load()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._items[key] = value
                self.loads.append(key)
                self._touch(key, value)
            log.info("model cache: loaded %s (%s)", key, _fmt_pools(self._sizes.get(key, {})))
            return value

    def drop(self, key: Any) -> bool:
        """Unload one item (True if it was there)."""
        with self._lock:
            if key not in self._items:
                return False
            del self[key]
        _release_accelerator_memory()
        return True

    # -- eviction --------------------------------------------------------------

    def _touch(self, key: Any, value: Any) -> None:
        self._items.move_to_end(key)
        self._sizes[key] = estimate_pools(value)
        for pool in list(self._sizes[key]):
            self._evict(pool, keep=key)

    def _evict(self, pool: str, keep: Any, extra: int = 0) -> None:
        # The item just used stays even if it alone is over the limit: the job
        # that asked for it is running (the up-front check let it in).
        limit = self.limit(pool)
        if limit is None:
            return
        dropped = False
        while self.total_bytes(pool) + extra > limit:
            victim = next((k for k in self._items if k != keep and self._sizes.get(k, {}).get(pool, 0) > 0), None)
            if victim is None:
                break
            size = self._sizes[victim].get(pool, 0)
            del self[victim]
            self.evicted.append(victim)
            dropped = True
            log.info(
                "model cache: unloaded %s (%.1f MiB of %s) to stay within %.0f MiB",
                victim,
                size / MIB,
                pool,
                limit / MIB,
            )
        if dropped:
            _release_accelerator_memory()


def _fmt_pools(pools: dict[str, int]) -> str:
    return ", ".join(f"{pool} {size / MIB:.1f} MiB" for pool, size in pools.items()) or "0 bytes"


def _release_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


_installed_lock = threading.Lock()
_installed: ModelCache | None = None


def install_model_cache(cache: ModelCache | None) -> None:
    """The daemon hands its budgeted cache here at start; None goes back to a fresh unbounded one."""
    global _installed
    with _installed_lock:
        _installed = cache


def model_cache() -> ModelCache:
    """The process's model cache (the daemon's, once installed)."""
    global _installed
    with _installed_lock:
        if _installed is None:
            _installed = ModelCache(budget_bytes=None)
        return _installed
