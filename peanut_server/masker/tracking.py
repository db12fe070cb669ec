"""The tracking loop every tracking backend shares (motion, grounded, sam2).

From the anchor (the frame where the object was found or pointed at) the
backend's tracker runs backwards to the start of the range, then forwards to
its end, as SAM 2's propagate_in_video(reverse=...) does. Forwards, every
clip_window frames, the CME check scores the tracked region against the memory
of the target (memory.py): a region that agrees is written to the memory; one
that does not lets the backend look for a look-alike that matches better, and
the tracker restarts there. When the tracker loses the object, the backend
looks for it again on every frame. After a restart the frames since the last
good check are re-tracked backwards from the new anchor (repair), so yielding
lags clip_window frames behind reading: those frames can still be rewritten.
Every frame's final mask is also compared with the anchor's colours
(ColourCheck): the frames where it no longer looks like the object are named in
a warning, for the editor to check. The editor's answer is a box or points on
such a frame, in the same job: every later frame the editor marked is a
keyframe, where the tracker restarts from the editor's mark, and re-tracks
backwards the frames before it that went wrong (up to KEYFRAME_REACH frames are
held back from the output for that), as SAM 2 propagates from every prompted frame.

A backend supplies only its per-frame part (TrackingBackend): how to start its
tracker from an anchor, one step, the appearance feature, and where to look
when the target drifted or was lost.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..progress import Reporter
from .base import MaskerOptions, MaskReport
from .colour import colour_descriptor, colour_similarity
from .frames import WorkFrame
from .memory import AppearanceMemory
from .postprocess import MaskFinisher

# A mask whose colour descriptor (the one the CME memory keeps) has a cosine below this with the
# anchor's has most likely left the object. Measured before it was used (benchmarks/
# masker_tuning.py --lost-signal, 34 tuning clips at 12 fps, no-weights tracker from the frame-0
# mask / from its box): frames on the background (J < 0.1) have a median of 0.70 / 0.80,
# frames on the object (J > 0.5) 0.975; below 0.85 fall 96 % / 65 % of the first and
# 1.5 % / 0.4 % of the second (a loose first cut from a box holds background colours too).
DOUBT_SIMILARITY = 0.85

# How far back a mark on a later frame can correct: frames this close before a pending mark are
# held (not yet written out), and at the mark the ones whose masks the colour check doubts are
# re-tracked backwards from it, as SAM 2 propagates from every prompted frame both ways. Two
# seconds at 24 fps; memory: one working-resolution frame and its output each, about 30 MB in all
# for the no-weights masker (480 px), 230 MB for SAM 2 (1024 px).
KEYFRAME_REACH = 48

# What turns the editor's mark on a later frame into an anchor for the backend's track_start:
# called with that frame, the one before it (a box cut may use the motion between them) and
# the running pass's output on that frame. None: the mark confirms what the pass carried,
# and the pass goes on (see track).
Keyframe = Callable[[WorkFrame, WorkFrame, np.ndarray], Any | None]


class ColourCheck:
    """Names the frames whose mask no longer looks like the anchor's (colour only: a tracker
    that slid onto the background, or an object that changed its lighting)."""

    def __init__(self, anchor_frame: WorkFrame, anchor_mask: np.ndarray) -> None:
        self.anchors: list[int] = []  # the frames the others are compared with, in order
        self.descriptors: dict[int, np.ndarray] = {}  # anchor frame -> its mask's colour descriptor
        self.doubtful: list[int] = []
        self.re_anchor(anchor_frame, anchor_mask)

    def re_anchor(self, frame: WorkFrame, mask: np.ndarray) -> None:
        """Compare the frames from this one on with it (a keyframe the editor marked)."""
        if mask.any():
            if frame.index not in self.descriptors:
                bisect.insort(self.anchors, frame.index)
            self.descriptors[frame.index] = colour_descriptor(frame.rgb, mask)

    def doubts(self, frame: WorkFrame, mask: np.ndarray) -> bool:
        """The mask does not look like the latest anchor at or before the frame (the first one
        before it): frames still buffered when a keyframe arrives are compared with the anchor
        of their stretch. An empty mask is not doubted (the object may have left)."""
        if not self.anchors or not mask.any():
            return False
        stretch = max(bisect.bisect_right(self.anchors, frame.index) - 1, 0)
        return colour_similarity(frame.rgb, mask, self.descriptors[self.anchors[stretch]]) < DOUBT_SIMILARITY

    def check(self, frame: WorkFrame, mask: np.ndarray) -> None:
        """Name the frame in the warning if its final mask is doubted."""
        if self.doubts(frame, mask):
            self.doubtful.append(frame.index)

    def ranges(self) -> list[tuple[int, int]]:
        """The doubtful frames as (first, last) runs of consecutive frames."""
        runs: list[tuple[int, int]] = []
        for index in sorted(self.doubtful):
            if runs and index == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], index)
            else:
                runs.append((index, index))
        return runs

    def report(self, report: MaskReport) -> None:
        runs = self.ranges()
        if not runs:
            return
        listed = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
        marked = ("frame " if len(self.anchors) == 1 else "frames ") + ", ".join(str(i) for i in self.anchors)
        report.extra["frames_to_check"] = listed
        report.warnings.append(
            f"check frames {listed}: the mask there does not look like the object on {marked} "
            f"(it may have slipped onto the background); to correct them, add a box around the object "
            f"on frame {runs[0][0]} to the job's boxes and run it again"
        )


@dataclass
class Reanchor:
    """Where the tracker restarts after a drift or a loss."""

    anchor: Any  # what the backend's track_start takes (a mask, a box...)
    feature: np.ndarray | None = None  # written to the memory on the restart (None: memory unchanged)


class TrackingBackend(ABC):
    """A backend's part of tracking: its tracker's per-frame step and its checks.

    An output is what one step gives for one frame at working resolution (a mask or
    a probability map); `run` is one pass of the backend's tracker over a stream of
    frames, in either direction, as track_start made it.
    """

    tau: float  # CME: the consistency a region needs to be written to the memory

    @abstractmethod
    def track_start(self, frame: WorkFrame, anchor: Any) -> tuple[Any, np.ndarray]:
        """A new pass of the tracker from `anchor` on `frame`: (the pass, its output on `frame`)."""

    @abstractmethod
    def track_step(self, run: Any, frame: WorkFrame, memory: AppearanceMemory, forward: bool) -> np.ndarray:
        """The pass's output on the next frame (backwards before the anchor, forwards after it)."""

    @abstractmethod
    def track_feature(self, frame: WorkFrame, output: np.ndarray) -> np.ndarray | None:
        """The appearance feature of the tracked region (None: nothing is tracked on this frame)."""

    @abstractmethod
    def track_probability(self, output: np.ndarray) -> np.ndarray:
        """The output as the probability map the finisher thresholds at source resolution."""

    def track_lost(self, run: Any) -> bool:
        """Whether the pass lost the object (then the backend looks for it on every frame)."""
        return False

    def track_reacquire(self, frame: WorkFrame, run: Any, memory: AppearanceMemory) -> Reanchor | None:
        """After a loss: the object found again on this frame, or None."""
        return None

    def track_lookalike(
        self, frame: WorkFrame, output: np.ndarray, run: Any, memory: AppearanceMemory, score: float
    ) -> Reanchor | None:
        """After a failed CME check (consistency `score`): a region that matches the memory better, or None."""
        return None

    def track_repair_step(self, run: Any, frame: WorkFrame, memory: AppearanceMemory) -> np.ndarray | None:
        """One step of a repair pass (backwards from a new anchor); None stops the repair."""
        return self.track_step(run, frame, memory, forward=False)

    def track_prefer_repaired(
        self, frame: WorkFrame, repaired: np.ndarray, old: np.ndarray, memory: AppearanceMemory
    ) -> bool:
        """Whether a frame takes the repair pass's output over the one it has."""
        return True

    def track_settled(self, frame: WorkFrame, output: np.ndarray) -> None:  # noqa: B027 (optional hook)
        """The output a frame ends with, going forwards (after any restart on it); nothing by default."""
        return None


def track(
    backend: TrackingBackend,
    read: list[WorkFrame],
    unread: Iterator[WorkFrame],
    anchor_k: int,
    anchor: Any,
    size: tuple[int, int],
    options: MaskerOptions,
    reporter: Reporter,
    report: MaskReport,
    keyframes: Mapping[int, Keyframe] | None = None,
) -> Iterator[np.ndarray]:
    """Source-resolution masks for every frame of `read` and `unread`, in order.

    `read` holds the frames read so far (read[anchor_k] shows the object as `anchor`
    says); `unread` yields the rest of the range. `keyframes` maps the later frames the
    editor marked (source frame numbers after the anchor's) to what makes their anchors.
    Writes the CME statistics and any re-anchoring to `report`.
    """
    keyframes = dict(keyframes or {})
    if any(index <= read[anchor_k].index for index in keyframes):
        # The anchor is the earliest mark (pipeline.run checked that every mark is inside the range).
        raise ValueError(f"keyframes {sorted(keyframes)} must come after the anchor's frame {read[anchor_k].index}")
    finisher = MaskFinisher(size, options.threshold, options.fill_holes, options.temporal_smoothing)
    window = max(1, options.clip_window)
    memory = AppearanceMemory(tau=backend.tau)
    anchor_frame = read[anchor_k]
    colour_check: ColourCheck | None = None

    def emit(frame: WorkFrame, output: np.ndarray) -> Iterator[np.ndarray]:
        probability = backend.track_probability(output)
        if colour_check is not None:
            colour_check.check(frame, probability > 0.5)
        for out in finisher.push(probability):
            reporter.advance()
            yield out

    def remember_anchor(output: np.ndarray) -> None:
        feature = backend.track_feature(anchor_frame, output)
        if feature is not None:
            memory.write(feature, force=True)

    # Backwards from the anchor to the start of the range (object found or pointed at mid-clip).
    remembered = False
    if anchor_k > 0:
        run, output = backend.track_start(anchor_frame, anchor)
        remember_anchor(output)
        remembered = True
        colour_check = ColourCheck(anchor_frame, backend.track_probability(output) > 0.5)
        before = []
        for frame in reversed(read[:anchor_k]):
            reporter.check()
            before.append((frame, backend.track_step(run, frame, memory, forward=False)))
        for frame, output in reversed(before):
            yield from emit(frame, output)
        del before, run

    # Forwards, with a buffer of clip_window frames that a restart may rewrite.
    run, output = backend.track_start(anchor_frame, anchor)
    if not remembered:
        remember_anchor(output)
    if colour_check is None:
        colour_check = ColourCheck(anchor_frame, backend.track_probability(output) > 0.5)
    backend.track_settled(anchor_frame, output)
    buffer: deque[tuple[WorkFrame, np.ndarray]] = deque([(anchor_frame, output)])
    last_good = last_mark = anchor_frame.index
    scores: list[float] = []
    reanchors = 0
    lost_since: int | None = None

    def restart(frame: WorkFrame, found: Reanchor) -> tuple[Any, np.ndarray, int]:
        """Start a new pass on `frame`; re-track the buffered frames after the last good check."""
        new_run, new_output = backend.track_start(frame, found.anchor)
        if found.feature is not None:
            memory.write(found.feature)
        return new_run, new_output, _repair(backend, buffer, frame, found.anchor, last_good, memory)

    def doubted(frame: WorkFrame, output: np.ndarray) -> bool:
        """A repair from a mark goes on back through this frame: it comes after the previous mark
        (or the anchor) and its mask is doubted by the colour check."""
        return frame.index > last_mark and colour_check.doubts(frame, backend.track_probability(output) > 0.5)

    def held(frame: WorkFrame) -> bool:
        """Kept in the buffer: a pending mark may still correct it."""
        return any(0 < index - frame.index <= KEYFRAME_REACH for index in keyframes)

    def after_anchor() -> Iterator[WorkFrame]:
        yield from read[anchor_k + 1 :]
        read.clear()  # the frames read before are no longer needed
        yield from unread

    previous = anchor_frame
    for step, frame in enumerate(after_anchor(), start=1):
        reporter.check()
        keyframe = keyframes.pop(frame.index, None)
        if keyframe is not None:
            # The editor marked the object here: the pass restarts from the mark, unless the
            # mark confirms what the pass carried. Either way the buffered frames since the last
            # good check, and before them the run of frames the colour check doubts, are
            # re-tracked backwards from the frame's new output.
            output = backend.track_step(run, frame, memory, forward=True)
            marked = keyframe(frame, previous, output)
            if marked is not None:
                run, output = backend.track_start(frame, marked)
            # else the pass goes on: a new one started from its output would lose what it has
            # that the output does not (the no-weights tracker's motion and its anchor's colours),
            # and on the tuning clips such restarts lost the object the running pass kept (bmx-trees).
            anchor_here = output if marked is None else marked
            feature = backend.track_feature(frame, output)
            if feature is not None:
                memory.write(feature, force=True)
            _repair(backend, buffer, frame, anchor_here, last_good, memory, doubtful=doubted)
            if lost_since is not None:
                report.warnings.append(
                    f"object lost at frame {lost_since}, taken up again at the mark on frame {frame.index}"
                )
                lost_since = None
            report.extra["keyframes"] = ", ".join(filter(None, [report.extra.get("keyframes"), str(frame.index)]))
            colour_check.re_anchor(frame, backend.track_probability(output) > 0.5)
            last_good = last_mark = frame.index
        else:
            output = backend.track_step(run, frame, memory, forward=True)
            if backend.track_lost(run):
                if lost_since is None:
                    lost_since = frame.index
                found = backend.track_reacquire(frame, run, memory)
                if found is not None:
                    run, output, repaired = restart(frame, found)
                    report.warnings.append(
                        f"object lost at frame {lost_since}, found again at frame "
                        f"{frame.index}; {repaired} earlier frame(s) re-tracked"
                    )
                    lost_since = None
            elif step % window == 0:
                feature = backend.track_feature(frame, output)
                score = memory.score(feature) if feature is not None else 0.0
                scores.append(score)
                if score > memory.tau:
                    memory.write(feature)
                    last_good = frame.index
                else:
                    found = backend.track_lookalike(frame, output, run, memory, score)
                    if found is not None:
                        reanchors += 1
                        run, output, repaired = restart(frame, found)
                        report.warnings.append(
                            f"the tracked mask drifted to a look-alike (consistency {score:.2f}); re-anchored on frame "
                            f"{frame.index} and repaired {repaired} frame(s) since frame {last_good}"
                        )
                        last_good = frame.index
        backend.track_settled(frame, output)
        buffer.append((frame, output))
        while len(buffer) > window and not held(buffer[0][0]):
            yield from emit(*buffer.popleft())
        previous = frame
    while buffer:
        yield from emit(*buffer.popleft())
    for out in finisher.flush():
        reporter.advance()
        yield out
    colour_check.report(report)
    report.extra.update(
        {
            "cme_checks": str(len(scores)),
            "cme_mean_consistency": f"{np.mean(scores):.3f}" if scores else "n/a",
            "reanchors": str(reanchors),
        }
    )


def _repair(
    backend: TrackingBackend,
    buffer: deque[tuple[WorkFrame, np.ndarray]],
    frame: WorkFrame,
    anchor: Any,
    after: int,
    memory: AppearanceMemory,
    doubtful: Callable[[WorkFrame, np.ndarray], bool] | None = None,
) -> int:
    """Re-track backwards from a new anchor on `frame` over the buffered frames after `after`,
    and on over earlier ones as long as `doubtful` says their masks left the object (an editor's
    mark corrects the whole bad stretch before it, not only the frames since the last check).

    A frame takes the new output where the backend prefers it to the one it has (which
    may sit on the look-alike). Returns the number of frames changed.
    """
    run, _ = backend.track_start(frame, anchor)
    changed = 0
    for i in range(len(buffer) - 1, -1, -1):
        old_frame, old_output = buffer[i]
        if old_frame.index <= after and not (doubtful is not None and doubtful(old_frame, old_output)):
            break
        output = backend.track_repair_step(run, old_frame, memory)
        if output is None:
            break
        if backend.track_prefer_repaired(old_frame, output, old_output, memory):
            buffer[i] = (old_frame, output)
            changed += 1
    return changed
