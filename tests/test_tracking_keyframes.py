"""The tracking loop's keyframes: a box or points the editor adds on a later frame restart the
tracker there, and the buffered frames before it are re-tracked from the mark
(peanut_server/masker/tracking.py)."""

from __future__ import annotations

import numpy as np
import pytest

from peanut_server.masker.base import MaskerOptions, MaskReport
from peanut_server.masker.colour import colour_descriptor
from peanut_server.masker.frames import WorkFrame
from peanut_server.masker.tracking import ColourCheck, TrackingBackend, track
from peanut_server.progress import Reporter

SPEED = 3  # px per frame the square moves to the right
SLIP = (4, 5, 6)  # going forwards, the scripted tracker slides 12 px further right on these frames


def _frame(index: int) -> tuple[WorkFrame, np.ndarray]:
    """A grey-green textured frame with a red square moving right; the square's mask."""
    rng = np.random.default_rng(index)
    rgb = np.clip(rng.normal((90, 120, 80), 12, (120, 200, 3)), 0, 255).astype(np.uint8)
    x = 20 + SPEED * index
    rgb[40:70, x : x + 30] = (200, 30, 30)
    mask = np.zeros((120, 200), bool)
    mask[40:70, x : x + 30] = True
    return WorkFrame(index, rgb), mask


class _Carry(TrackingBackend):
    """A tracker that carries its mask at the square's speed, and slips off it on SLIP going
    forwards: a tracker that went wrong, for the editor to correct."""

    tau = 0.0  # every CME check passes: only the keyframe can restart the pass

    def __init__(self, slip: tuple[int, ...] = SLIP) -> None:
        self.slip = slip
        self.started: list[int] = []

    def track_start(self, frame: WorkFrame, anchor: np.ndarray) -> tuple[dict, np.ndarray]:
        self.started.append(frame.index)
        return {"mask": anchor, "index": frame.index}, anchor

    def track_step(self, run: dict, frame: WorkFrame, memory, forward: bool) -> np.ndarray:
        shift = SPEED * (frame.index - run["index"])
        if forward and frame.index in self.slip:
            shift += 12
        run["mask"], run["index"] = np.roll(run["mask"], shift, axis=1), frame.index
        return run["mask"]

    def track_feature(self, frame: WorkFrame, output: np.ndarray) -> np.ndarray:
        return colour_descriptor(frame.rgb, output)

    def track_probability(self, output: np.ndarray) -> np.ndarray:
        return output.astype(np.float32)


def _track(
    keyframes: dict, length: int = 10, slip: tuple[int, ...] = SLIP
) -> tuple[list[np.ndarray], MaskReport, _Carry]:
    frames = [_frame(i)[0] for i in range(length)]
    backend, report = _Carry(slip), MaskReport()
    out = list(
        track(
            backend,
            frames[:1],
            iter(frames[1:]),
            0,
            _frame(0)[1],
            (200, 120),
            MaskerOptions(temporal_smoothing=False),
            Reporter(),
            report,
            keyframes,
        )
    )
    return out, report, backend


def _on_object(masks: list[np.ndarray]) -> list[int]:
    return [i for i, m in enumerate(masks) if np.logical_and(m, _frame(i)[1]).sum() > 0.9 * _frame(i)[1].sum()]


def test_without_a_keyframe_the_slipped_frames_are_named() -> None:
    out, report, _ = _track({})
    assert _on_object(out) == [0, 1, 2, 3]
    assert report.extra["frames_to_check"] == "4-9"


def test_a_box_on_a_later_frame_restarts_the_tracker_and_repairs_the_frames_before_it() -> None:
    asked: list[tuple[int, int]] = []

    def mark(frame: WorkFrame, previous: WorkFrame, carried: np.ndarray) -> np.ndarray:
        asked.append((frame.index, previous.index))
        assert not np.logical_and(carried, _frame(frame.index)[1]).any()  # the pass had slipped off
        return _frame(frame.index)[1]  # the editor's box, cut to the object

    out, report, backend = _track({6: mark})
    assert asked == [(6, 5)]
    assert 6 in backend.started
    # Frames 6-9 are tracked from the mark; 4-5 (buffered, after the last good check) are
    # re-tracked backwards from it; nothing is left for the editor to check.
    assert _on_object(out) == list(range(10))
    assert report.extra["keyframes"] == "6"
    assert "frames_to_check" not in report.extra


def test_a_mark_corrects_the_whole_stretch_before_it_that_went_wrong() -> None:
    """The tracker slips on frame 4 and the editor marks frame 17, 13 frames later: longer than
    the clip_window (8) frames a restart re-tracks, and past a CME check that passed (frame 8).
    The frames held back for the pending mark, whose masks the colour check doubts, are
    re-tracked from it too; the good frames before the slip are left as they were."""

    def mark(frame: WorkFrame, previous: WorkFrame, carried: np.ndarray) -> np.ndarray:
        return _frame(frame.index)[1]

    without, report, _ = _track({}, length=24, slip=(4,))
    assert _on_object(without) == [0, 1, 2, 3] and report.extra["frames_to_check"] == "4-23"
    out, report, _ = _track({17: mark}, length=24, slip=(4,))
    assert _on_object(out) == list(range(24))
    assert "frames_to_check" not in report.extra
    assert all(np.array_equal(a, b) for a, b in zip(out[:4], without[:4]))


def test_a_mark_that_confirms_the_carried_mask_lets_the_pass_go_on() -> None:
    """A keyframe that returns None confirms what the pass carried to its frame: the pass is not
    restarted there (the one start on frame 6 is the backward repair's), and the masks are the
    unmarked run's."""
    seen: list[np.ndarray] = []

    def confirm(frame: WorkFrame, previous: WorkFrame, carried: np.ndarray) -> None:
        seen.append(carried.copy())

    without, _, _ = _track({}, slip=())
    out, report, backend = _track({6: confirm}, slip=())
    assert len(seen) == 1 and np.array_equal(seen[0], _frame(6)[1])
    assert backend.started.count(6) == 1
    assert all(np.array_equal(a, b) for a, b in zip(out, without))
    assert report.extra["keyframes"] == "6"


def test_frames_buffered_before_a_keyframe_are_checked_against_the_anchor_of_their_stretch() -> None:
    """The colour check runs as frames leave the buffer, after a later keyframe may have arrived:
    a frame before the keyframe is still compared with the anchor before it."""
    blue = (30, 40, 210)  # _frame's square is red
    anchor, anchor_mask = _frame(0)
    check = ColourCheck(anchor, anchor_mask)
    later, later_mask = _frame(6)
    later.rgb[later_mask] = blue  # the object, marked on frame 6, now looks blue
    check.re_anchor(later, later_mask)
    for index in (3, 7):
        frame, mask = _frame(index)
        if index == 7:
            frame.rgb[mask] = blue
        check.check(frame, mask)  # frame 3 is red like frame 0, frame 7 blue like frame 6
    assert check.doubtful == [] and check.anchors == [0, 6]


def test_a_keyframe_must_come_after_the_anchor() -> None:
    with pytest.raises(ValueError, match="after the anchor"):
        _track({0: lambda frame, previous, carried: _frame(0)[1]})
