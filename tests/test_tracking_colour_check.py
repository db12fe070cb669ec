"""The tracking loop's colour check: frames whose mask no longer looks like the anchor's are
named in a warning (peanut_server/masker/tracking.py, ColourCheck)."""

from __future__ import annotations

import numpy as np

from peanut_server.masker.base import MaskerOptions, MaskReport
from peanut_server.masker.colour import colour_descriptor
from peanut_server.masker.frames import WorkFrame
from peanut_server.masker.tracking import ColourCheck, TrackingBackend, track
from peanut_server.progress import Reporter


def _frame(index: int, colour: tuple[int, int, int], at: tuple[int, int]) -> tuple[WorkFrame, np.ndarray]:
    """A grey-green textured frame with a square of `colour` at `at`; the square's mask."""
    rng = np.random.default_rng(index)
    rgb = np.clip(rng.normal((90, 120, 80), 12, (120, 160, 3)), 0, 255).astype(np.uint8)
    y, x = at
    rgb[y : y + 30, x : x + 30] = colour
    mask = np.zeros((120, 160), bool)
    mask[y : y + 30, x : x + 30] = True
    return WorkFrame(index, rgb), mask


def test_names_the_frames_whose_mask_left_the_object() -> None:
    red = (200, 30, 30)
    anchor, anchor_mask = _frame(10, red, (20, 20))
    check = ColourCheck(anchor, anchor_mask)
    for index in range(11, 20):
        frame, on_object = _frame(index, red, (20 + index, 30))
        # Frames 14-16 and 18: the mask sits beside the object, on the background.
        mask = np.roll(on_object, 60, axis=1) if index in (14, 15, 16, 18) else on_object
        check.check(frame, mask)
    assert check.ranges() == [(14, 16), (18, 18)]
    report = MaskReport()
    check.report(report)
    assert report.extra["frames_to_check"] == "14-16, 18"
    assert len(report.warnings) == 1
    assert "check frames 14-16, 18" in report.warnings[0] and "frame 10" in report.warnings[0]


def test_silent_when_every_mask_is_on_the_object_or_empty() -> None:
    blue = (30, 40, 210)
    anchor, anchor_mask = _frame(0, blue, (50, 60))
    check = ColourCheck(anchor, anchor_mask)
    for index in range(1, 8):
        frame, mask = _frame(index, blue, (50, 60 + 5 * index))
        check.check(frame, mask if index != 4 else np.zeros_like(mask))  # frame 4: object hidden
    report = MaskReport()
    check.report(report)
    assert check.doubtful == [] and report.warnings == [] and "frames_to_check" not in report.extra


class _Scripted(TrackingBackend):
    """A backend whose tracker gives a set mask per frame: the loop's wiring, without a tracker."""

    tau = 0.75

    def __init__(self, masks: dict[int, np.ndarray]) -> None:
        self.masks = masks

    def track_start(self, frame: WorkFrame, anchor: np.ndarray) -> tuple[None, np.ndarray]:
        return None, anchor

    def track_step(self, run, frame: WorkFrame, memory, forward: bool) -> np.ndarray:
        return self.masks[frame.index]

    def track_feature(self, frame: WorkFrame, output: np.ndarray) -> np.ndarray:
        return colour_descriptor(frame.rgb, output)

    def track_probability(self, output: np.ndarray) -> np.ndarray:
        return output.astype(np.float32)


def test_the_loop_checks_frames_on_both_sides_of_a_mid_clip_anchor() -> None:
    red = (200, 30, 30)
    frames, masks = [], {}
    for index in range(9):
        frame, mask = _frame(index, red, (20 + 3 * index, 40))
        frames.append(frame)
        # Frame 1 (before the anchor, tracked backwards) and 6-7 (after it): beside the object.
        masks[index] = np.roll(mask, 60, axis=1) if index in (1, 6, 7) else mask
    report = MaskReport()
    out = list(
        track(
            _Scripted(masks),
            frames[:4],
            iter(frames[4:]),
            3,
            masks[3],
            (160, 120),
            MaskerOptions(),
            Reporter(),
            report,
        )
    )
    assert len(out) == 9
    assert report.extra["frames_to_check"] == "1, 6-7"
    assert any(w.startswith("check frames 1, 6-7:") and "frame 3" in w for w in report.warnings)
