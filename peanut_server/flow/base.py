"""The flow estimator interface and the choice of backend by name."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import InvalidRequest
from ..progress import Reporter

if TYPE_CHECKING:
    from .dis import DISOptions  # dis.py imports this module

log = logging.getLogger(__name__)

FLOW_NAMES = ("auto", "dis", "raft_small", "raft_large")


class FlowEstimator(ABC):
    """Dense optical flow between two RGB frames, in pixels (dx, dy)."""

    name: ClassVar[str]

    @abstractmethod
    def pair(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) float32 that maps each pixel of `first` to `second`."""

    def window(self, frames: np.ndarray, reporter: Reporter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(forward, backward), each (T-1, H, W, 2) float32, for a window of frames.

        forward[t] maps frame t to t+1, backward[t] maps frame t+1 to t.
        Backends that batch (RAFT) override this.
        """
        count, height, width = frames.shape[:3]
        forward = np.zeros((max(count - 1, 0), height, width, 2), np.float32)
        backward = np.zeros_like(forward)
        for t in range(count - 1):
            if reporter is not None:
                reporter.check()
            forward[t] = self.pair(frames[t], frames[t + 1])
            backward[t] = self.pair(frames[t + 1], frames[t])
        return forward, backward


def get_estimator(
    name: str = "auto", *, device: str | None = None, dis_options: DISOptions | None = None
) -> FlowEstimator:
    """The estimator for `name`. "auto" is DIS: it needs no weights and is fast on a CPU
    (`dis_options`: its settings, OpenCV's preset by default).

    RAFT is only chosen when asked for by name; it needs its torchvision
    checkpoint on disk (ModelError otherwise).
    """
    name = (name or "auto").lower()
    if name in ("auto", "dis"):
        from .dis import DISFlow

        return DISFlow(dis_options)
    if name in ("raft_small", "raft_large"):
        from .raft import RaftFlow

        return RaftFlow.from_registry(name, device=device)
    raise InvalidRequest(f"unknown flow backend {name!r} (choose from {', '.join(FLOW_NAMES)})")


def estimate_window_flows(
    frames: np.ndarray, name: str = "auto", reporter: Reporter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flow of a window with the named backend."""
    return get_estimator(name).window(frames, reporter)
