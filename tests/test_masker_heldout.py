"""The no-weights tracker on real clips it was not tuned on, through `peanut mask --local`.

Clips (tests/data/annotated/SOURCE.md): five DAVIS 2016 validation clips whose backgrounds
move (a crowd, traffic, handheld pans) and two of our own with hand-checked masks (a walker
among pedestrians on locked-off street footage); plus look-alike balls composited over
four of them, so the truth is exact. The tracker was tuned on DAVIS tennis and bmx-trees and
on tests/test_masker_lookalikes.py only.

The floors were written into this file on 2026-11-30, before the tracker had been run on
any of these clips, and are the same rule for every clip:
- from the true frame-0 mask: J&F >= repeat-frame-0 + 0.10 and >= 0.50;
- from the frame-0 box a user would draw: J&F >= repeat-frame-0 + 0.05 and >= 0.40
  (the baseline gets the true mask, more than a box gives);
- look-alikes, from the prompt with --approximate: J&F >= 0.85 (the issue's bar) and
  >= repeat-frame-0 + 0.30, and the named ball is the one picked on frame 0.
"repeat-frame-0" repeats the true frame-0 mask on every frame: a tracker that does nothing.
A case the tracker of the day fails is marked xfail(strict=True) with its measured figure;
the bar is not lowered. benchmarks/masker_heldout.py prints the full table, per-frame J and
strips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from peanut_server.metrics.masks import evaluate
from tests.heldout import CLIPS, LOOKALIKES, repeat_first, run_lookalike, track_from_box, track_from_mask, truth

# (margin over repeat-frame-0, absolute J&F): set before the first run, see the docstring.
FROM_MASK = {clip: (0.10, 0.50) for clip in CLIPS}
FROM_BOX = {clip: (0.05, 0.40) for clip in CLIPS}
LOOKALIKE_FLOOR, LOOKALIKE_MARGIN = 0.85, 0.30

# Cases the tracker fails, {case: what was measured}. First run 2026-11-30 (2-core CPU under load;
# benchmarks/masker_heldout.py gives the same figures, the runs are deterministic): 10 of 18 failed.
# Marked xfail(strict=True): when the tracker gets past the bar, the mark must go. The tracker
# work of the same day was tuned on DAVIS tennis/bmx-trees, the old look-alikes and four other
# DAVIS sequences (drift-straight, car-shadow, parkour, motocross-jump), never on these clips;
# after it seven marks went: from the mask libby 0.245 -> 0.521, scooter-black 0.367 -> 0.613,
# soapbox 0.314 -> 0.618; from the box dance-twirl 0.249 -> 0.544, libby 0.359 -> 0.522,
# scooter-black 0.362 -> 0.614, soapbox 0.315 -> 0.610.
FAILING_FROM_MASK: dict[str, str] = {
    "breakdance": "J&F 0.108 vs repeat-frame-0 0.224 (0.092 before the local object flow): J falls "
    "0.79 -> 0.06 by frame 7 and is 0 from frame 10",
}
FAILING_FROM_BOX: dict[str, str] = {
    "breakdance": "J&F 0.142 vs repeat-frame-0 0.224 (0.091 before the local object flow): J 0.74-0.79 "
    "on frames 0-2, under 0.1 from frame 8",
}
# dance-twirl green bottom was marked until 2026-12-01 (J&F 0.922, frame 0 J 0.54: only the half of
# the ball that motion segmentation found); completing the named-colour part to its whole compact
# blob gives J&F 0.992, frame 0 J 0.99.
FAILING_LOOKALIKES: dict[str, str] = {}


def _cases(names, failing: dict[str, str]):
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=failing[n])) if n in failing else n
        for n in sorted(names)
    ]


def _report(what: str, scores, baseline: float) -> str:
    return f"{what}: J&F {scores.JF:.3f} (repeat-frame-0 {baseline:.3f}); J per frame " + " ".join(
        f"{j:.2f}" for j in scores.per_frame_J
    )


def _check_tracking(clip: str, run, floor: tuple[float, float], what: str) -> None:
    true = truth(clip)
    assert len(run.masks) == len(true) and run.masks[0].shape == true[0].shape
    scores = evaluate(run.masks, true)
    baseline = evaluate(repeat_first(true), true).JF
    print(_report(f"{clip} {what}", scores, baseline))
    # Never a mask over most of the picture: a lost tracker must not erase the shot.
    assert max(m.mean() for m in run.masks) < 0.6
    margin, absolute = floor
    assert scores.JF >= baseline + margin, f"J&F {scores.JF:.3f} < repeat-frame-0 {baseline:.3f} + {margin}"
    assert scores.JF >= absolute, f"J&F {scores.JF:.3f} < {absolute}"


@pytest.mark.parametrize("clip", _cases(CLIPS, FAILING_FROM_MASK))
def test_tracks_the_frame_0_mask_on_held_out_footage(clip: str, tmp_path: Path) -> None:
    _check_tracking(clip, track_from_mask(clip, tmp_path / "masks"), FROM_MASK[clip], "from the mask")


@pytest.mark.parametrize("clip", _cases(CLIPS, FAILING_FROM_BOX))
def test_tracks_from_the_frame_0_box_on_held_out_footage(clip: str, tmp_path: Path) -> None:
    _check_tracking(clip, track_from_box(clip, tmp_path / "masks"), FROM_BOX[clip], "from the box")


@pytest.mark.parametrize("name", _cases(LOOKALIKES, FAILING_LOOKALIKES))
def test_picks_and_keeps_the_named_look_alike_over_real_movers(name: str, tmp_path: Path) -> None:
    run, target = run_lookalike(LOOKALIKES[name], tmp_path)
    scores = evaluate(run.masks, target)
    baseline = evaluate(repeat_first(target), target).JF
    print(_report(name, scores, baseline))
    # The named ball is picked (not the other ball, the dancer, a scooter or a walker) ...
    assert scores.per_frame_J[0] > 0.7, f"frame 0 J {scores.per_frame_J[0]:.2f}: the named ball is not what was masked"
    # ... and kept.
    assert scores.JF >= LOOKALIKE_FLOOR, f"J&F {scores.JF:.3f} < {LOOKALIKE_FLOOR}"
    assert scores.JF >= baseline + LOOKALIKE_MARGIN
