"""Progress reporting and cancellation, shared by the pipeline and its stages.

Stages never know about jobs or gRPC: they get a Reporter, call `advance`
as frames finish and `check` between units of work so that a cancel takes
effect within one frame (or one window for whole-window backends).

The pipeline declares its stages as outer ones (`outer=True`: masking,
erasing, writing, each counted in frames of the range). While an outer stage
runs, the stages and advances that the backends report by themselves (a
masker's own "mask" count, an upscaler's frames) are not counted again: the
bar a user sees counts each frame once and ends at the total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import JobCancelled, JobInterrupted


@dataclass
class ProgressState:
    stage: str = ""
    done: int = 0
    total: int = 0
    eta_seconds: float = -1.0


ProgressCallback = Callable[[ProgressState], None]


@dataclass
class Reporter:
    """Carries progress out of a stage and cancellation into it."""

    callback: ProgressCallback | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    interrupt_event: threading.Event = field(default_factory=threading.Event)
    warn_callback: Callable[[str], None] | None = None
    _state: ProgressState = field(default_factory=ProgressState)
    _stage_started: float = 0.0
    _stage_done_at_start: int = 0
    _last_emit: float = 0.0
    _outer: bool = False  # the current stage is the pipeline's: backends' counts are not added

    def check(self) -> None:
        """Raise JobCancelled when the job was asked to stop, JobInterrupted on shutdown."""
        if self.interrupt_event.is_set():
            raise JobInterrupted("the daemon is shutting down; resume the job later")
        if self.cancel_event.is_set():
            raise JobCancelled("cancelled by the user")

    def stage(self, name: str, total: int, done: int = 0, *, outer: bool = False) -> None:
        if not outer and self._outer and self._state.done < self._state.total:
            return  # a backend's own stage inside the pipeline's: the pipeline counts the frames
        self._outer = outer
        self._state = ProgressState(stage=name, done=done, total=total)
        self._stage_started = time.monotonic()
        self._stage_done_at_start = done
        self._emit(force=True)

    def advance(self, n: int = 1, *, outer: bool = False) -> None:
        if self._outer and not outer:
            self.check()  # a backend's count inside the pipeline's stage: only the cancel matters
            return
        self._state.done += n
        elapsed = time.monotonic() - self._stage_started
        made = self._state.done - self._stage_done_at_start
        if made > 0 and self._state.total > 0:
            rate = made / max(elapsed, 1e-6)
            self._state.eta_seconds = (self._state.total - self._state.done) / rate
        self._emit(force=self._state.done >= self._state.total)
        self.check()

    def warn(self, message: str) -> None:
        if self.warn_callback is not None:
            self.warn_callback(message)

    @property
    def state(self) -> ProgressState:
        return self._state

    def _emit(self, force: bool) -> None:
        # At most ~10 events a second: watchers want a live bar, not a flood.
        now = time.monotonic()
        if self.callback is None or (not force and now - self._last_emit < 0.1):
            return
        self._last_emit = now
        self.callback(ProgressState(**vars(self._state)))
