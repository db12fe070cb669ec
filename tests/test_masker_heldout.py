"""The no-weights tracker on real clips it was not tuned on, through `peanut mask --local`.

Clips (tests/data/annotated/SOURCE.md): ten DAVIS 2016 validation and six training clips whose backgrounds
move (a crowd, traffic, handheld pans, water, a herd) and two of our own with hand-checked
masks (a walker among pedestrians on locked-off street footage); plus look-alike balls
composited over four of them, so the truth is exact. The tracker was tuned on DAVIS tennis
and bmx-trees, tests/test_masker_lookalikes.py and the DAVIS clips of
benchmarks/masker_tuning_clips.py. On 2026-12-01 its regrowth of lost moving parts was
chosen while looking at breakdance's failure, so breakdance no longer counts as unseen; the
second batch (blackswan, car-roundabout, cows, drift-chicane, paragliding-launch) was added
that day as the unseen clips, under the same floors, and run twice: with a first version of the
change (always on; it lost blackswan from the box 0.549 -> 0.453 and car-roundabout from the
mask 0.758 -> 0.672), then with the size gate chosen on DAVIS car-shadow, as committed. The third batch (lucia,
mallard-fly, motocross-bumps, rhino, soccerball, stroller: DAVIS 2016 training sequences from a
second mirror) was set aside by name on 2026-12-01, before 23 other training sequences became
tuning clips, and run once, with the tracker as committed that day. On 2026-12-02 the search
after a loss was put back on grounding's flow after soccerball and mallard-fly collapsed with
the tracker's new full-resolution flow, so those two no longer count as unseen.

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

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from peanut_server.metrics.masks import MaskScores, evaluate
from tests.heldout import (
    CLIPS,
    FLOOR_FROM_BOX,
    FLOOR_FROM_MASK,
    LOOKALIKES,
    box_option,
    frames_to_check,
    peanut_mask,
    repeat_first,
    run_lookalike,
    track_from_box,
    track_from_mask,
    truth,
)

# (margin over repeat-frame-0, absolute J&F): set before the first run, see the docstring.
FROM_MASK = {clip: FLOOR_FROM_MASK for clip in CLIPS}
FROM_BOX = {clip: FLOOR_FROM_BOX for clip in CLIPS}
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
    # Third batch, first run (2026-12-01). The rider comes at the camera and grows from a few
    # pixels to most of the picture; the mask keeps parts of him and the bike and falls behind
    # the growth (J 0.94, 0.50 by frame 3, 0.09 at the end). Scale change is the tracker's known
    # weak point (tuning motocross-jump: 0.106 from the mask).
    "motocross-bumps": "J&F 0.467 vs the absolute 0.50: J 0.94 on frame 0, 0.51-0.55 on frames 3-13, 0.03 at the end",
    # Since the tracker's flow went to full resolution (2026-12-02; 0.696 before): the flying duck is
    # held to frame 6, then the mask stays behind on the water (J 0.47 on frame 7, 0.00 at the end) and
    # the search after the loss does not find the duck again (before, it did on frame 8).
    "mallard-fly": "J&F 0.406 vs the absolute 0.50: J 0.99-0.71 on frames 0-6, 0.47 on frame 7, 0.00 at the end",
}
FAILING_FROM_BOX: dict[str, str] = {
    # Unseen until 2026-12-01; both fail with the tracker before that day too (0.674, 0.270).
    # The box's first cut is the trouble: the cow's thin legs and head are left out (frame 0
    # J 0.72, and the tracker keeps that shape); only the lower edge of the small, far car in
    # the tyre smoke is taken (frame 0 J 0.21).
    "cows": "J&F 0.692 vs repeat-frame-0 0.646 + 0.05: J 0.72 on frame 0, 0.73-0.83 after",
    "drift-chicane": "J&F 0.300 vs the absolute 0.40: J 0.21 on frame 0 (the box's cut), 0.41 at most after",
    # Third batch, first run (2026-12-01). motocross-bumps: as from the mask (above).
    "motocross-bumps": "J&F 0.373 vs the absolute 0.40: J 0.68 on frame 0, 0.36-0.54 on frames 2-12, 0.02 at the end",
}
# rhino from the box was marked until 2026-12-02 (J&F 0.632, the outline inside the truth's at the
# legs and horn); with the tracker's full-resolution flow 0.653 (J 0.72-0.78 on every frame).
# breakdance was marked until 2026-12-01: from the mask 0.108, from the box 0.142 (the tracker
# dropped the dancer's swinging legs and coasted off him). Regrowing lost moving parts and not
# coasting over a body that still moves give 0.535 and 0.497; chosen while looking at this clip.
# From the box the pass hangs on the masker's seed (GrabCut's start in the box's first cut): seeds
# 0-4 give 0.497 / 0.507 / 0.119 / 0.529 / 0.085 (before: 0.086-0.142 for every seed); see
# benchmarks/masker_heldout.py --box-seeds. The other clips move by 0.05 at most (libby), cows by 0.30
# (0.452-0.747: it passes its floor at seed 4 only).
# dance-twirl green bottom was marked until 2026-12-01 (J&F 0.922, frame 0 J 0.54: only the half of
# the ball that motion segmentation found); completing the named-colour part to its whole compact
# blob gives J&F 0.992, frame 0 J 0.99.
# The same DAVIS clips at their source's 24 fps (benchmarks/masker_heldout_full_rate.py, same time
# span, 2026-12-01) fail a different set: cows from the box (0.729), drift-chicane
# (box / mask 0.579 / 0.635) and motocross-bumps (0.552 / 0.692) pass, but rhino fails (0.474 / 0.568: from
# the first frames on the mask creeps onto the look-alike rocks behind it, J 1.00 -> 0.41 by frame 49),
# and so do soccerball (0.324 / 0.326), cows from the mask (0.693) and car-roundabout from the mask (0.742,
# the floor is 0.742 too). Frame rate alone moves single clips by 0.2-0.3: the tracker is on a
# knife edge, and the 12-fps marks above are one face of it.
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


@dataclass
class Tracked:
    """What one held-out run is judged on (kept, not its masks, so later tests reuse it)."""

    scores: MaskScores
    frames: int
    shape: tuple[int, ...]
    largest: float  # the largest share of the picture any mask covers
    empty: list[bool]  # per frame: the mask is empty
    to_check: set[int]  # the frames the "check frames" warning names


_TRACKED: dict[tuple[str, str], Tracked] = {}


def tracked(clip: str, prompt: str) -> Tracked:
    """`clip` tracked from the frame-0 "mask" or "box"; each run is made once per session."""
    if (clip, prompt) not in _TRACKED:
        with tempfile.TemporaryDirectory() as work:
            out = Path(work) / "masks"
            run = track_from_mask(clip, out) if prompt == "mask" else track_from_box(clip, out)
        _TRACKED[clip, prompt] = Tracked(
            scores=evaluate(run.masks, truth(clip)),
            frames=len(run.masks),
            shape=run.masks[0].shape,
            largest=max(float(m.mean()) for m in run.masks),
            empty=[not m.any() for m in run.masks],
            to_check=frames_to_check(run.warnings),
        )
    return _TRACKED[clip, prompt]


def _check_tracking(clip: str, prompt: str, floor: tuple[float, float]) -> None:
    true = truth(clip)
    run = tracked(clip, prompt)
    assert run.frames == len(true) and run.shape == true[0].shape
    scores = run.scores
    baseline = evaluate(repeat_first(true), true).JF
    print(_report(f"{clip} from the {prompt}", scores, baseline))
    # Never a mask over most of the picture: a lost tracker must not erase the shot.
    assert run.largest < 0.6
    margin, absolute = floor
    assert scores.JF >= baseline + margin, f"J&F {scores.JF:.3f} < repeat-frame-0 {baseline:.3f} + {margin}"
    assert scores.JF >= absolute, f"J&F {scores.JF:.3f} < {absolute}"


@pytest.mark.parametrize("clip", _cases(CLIPS, FAILING_FROM_MASK))
def test_tracks_the_frame_0_mask_on_held_out_footage(clip: str) -> None:
    _check_tracking(clip, "mask", FROM_MASK[clip])


@pytest.mark.parametrize("clip", _cases(CLIPS, FAILING_FROM_BOX))
def test_tracks_from_the_frame_0_box_on_held_out_footage(clip: str) -> None:
    _check_tracking(clip, "box", FROM_BOX[clip])


def test_the_check_frames_warning_names_the_frames_where_the_mask_left_the_object() -> None:
    """The tracking loop names the frames whose mask no longer looks like the prompt frame's
    (masker/tracking.py, ColourCheck). Over every held-out run, from the mask and from the box:
    - most named frames are poorly tracked (J < 0.5): >= 0.70 of them;
    - most frames where the mask sits off the object (not empty, J < 0.1) are named: >= 0.60;
    - few well-tracked frames (J > 0.5) are named: <= 0.03.
    Its threshold was chosen on the tuning clips (benchmarks/masker_tuning.py --lost-signal),
    these three bars written before it ran on any held-out clip; the first run (2026-12-01)
    measured 0.86 (102 of 119), 0.78 (21 of 27) and 0.017 (17 of 993)."""
    named = named_poor = off = off_named = on = on_named = 0
    for clip in sorted(CLIPS):
        for prompt in ("mask", "box"):
            run = tracked(clip, prompt)
            for index, (j, empty) in enumerate(zip(run.scores.per_frame_J, run.empty)):
                is_named = index in run.to_check
                named += is_named
                named_poor += is_named and j < 0.5
                if not empty and j < 0.1:
                    off, off_named = off + 1, off_named + is_named
                if j > 0.5:
                    on, on_named = on + 1, on_named + is_named
    print(
        f"named {named} frames, {named_poor} of them J < 0.5; off the object {off_named}/{off}; on it {on_named}/{on}"
    )
    assert named and named_poor / named >= 0.70
    assert off and off_named / off >= 0.60
    assert on_named / on <= 0.03


def _from(scores: MaskScores, first: int) -> float:
    """J&F over the frames from `first` on."""
    return float(np.mean(scores.per_frame_J[first:]) + np.mean(scores.per_frame_F[first:])) / 2


@pytest.mark.xfail(
    strict=True,
    reason="mean gain -0.02 over 6 corrected runs, 4 up: hk_crossing 0.855 -> 0.085 (the walker leaves the "
    "picture after the mark and the restarted tracker holds a mask at the edge)",
)
def test_a_box_on_the_first_named_frame_corrects_the_frames_from_there_on() -> None:
    """The editor's answer to the "check frames" warning: a box on a named frame, added to the
    job, is a keyframe the tracker restarts from (masker/tracking.py). For every held-out run
    from the frame-0 box that the warning named frames on, the job runs again with a second
    --box around the true mask of the first named frame that shows the object (F). Bars written
    before this ran on any held-out clip, from the tuning clips (12 fps, 34 clips: 10 warned,
    J&F from F on 0.228 -> 0.396, 8 of 10 up): pooled over the corrected runs, J&F from F on
    rises by >= 0.10 on average, and at least 0.6 of the runs improve.

    First run (2026-12-01), fresh cut at every mark: mean -0.137, 3 of 6 up (drift-chicane
    0.276 -> 0.537, motocross-bumps 0.320 -> 0.634, mallard-fly 0.084 -> 0.200; libby 0.414 ->
    0.236). Second (the mark confirms the carried mask when their boxes overlap, IoU >= 0.7,
    chosen on the tuning clips' car-shadow, where the named frame was a false alarm): mean -0.119,
    libby 0.344, the rest unchanged. The no-weights box cut is what fails (tuning mean frame J
    0.65, benchmarks/masker_box_cut.py); with SAM 2 a box is what the model is trained on.
    Run once with the mark on the last frame of the named run instead (J&F from its first frame),
    before and after marks re-tracked the doubted frames before them (tracking.KEYFRAME_REACH):
    mean -0.128 -> -0.119, drift-chicane 0.511 -> 0.549, libby 0.443 -> 0.457, none down.
    With the tracker's full-resolution flow (2026-12-02): mean -0.041, 4 of 6 up (soccerball's mark
    now lands on frame 1: 0.517 -> 0.536; hk_crossing 0.855 -> 0.085 and libby 0.412 -> 0.298 down).
    A confirming mark no longer restarts the pass (2026-12-02, stop 30): mean -0.023, libby 0.412 ->
    0.411 (its mark confirms the carried mask), the rest unchanged."""
    gains = []
    for clip in sorted(CLIPS):
        run, true = tracked(clip, "box"), truth(clip)
        first = next((index for index in sorted(run.to_check) if true[index].any()), None)
        if first is None:
            continue
        with tempfile.TemporaryDirectory() as work:
            fixed = peanut_mask(
                CLIPS[clip], Path(work) / "masks", "--box", box_option(true[0]), "--box", box_option(true[first], first)
            )
        before, after = _from(run.scores, first), _from(evaluate(fixed.masks, true), first)
        print(f"{clip}: box on frame {first}, J&F from there {before:.3f} -> {after:.3f}")
        gains.append(after - before)
    assert len(gains) >= 3, "too few warned runs to judge the correction"
    assert float(np.mean(gains)) >= 0.10
    assert np.mean(np.array(gains) > 0) >= 0.6


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
