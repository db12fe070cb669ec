"""The no-weights tracker on real DAVIS footage (full clips), from the frame-0 mask and from its box.

Each case must beat doing nothing: repeating the true frame-0 mask on every frame (which
scores 0.250 J&F on tennis and 0.169 on bmx-trees) by a margin. A tracker that only repeats
its first mask, or loses the object and outputs nothing, fails here.

Honest note on tuning: the tracker's occlusion handling (coasting, holding the last shape)
was designed after looking at bmx-trees, and the box-to-mask step after looking at tennis;
there is no third annotated clip here, so these floors are not from untuned footage. The
margins are kept well below the measured gains (benchmarks/masker_sweep.py --davis prints
the full table and per-frame J).

The tennis masks in ../shared/data are the ProPainter examples' object-removal masks (the player
dilated by about 4 px, plus his long shadow), not DAVIS's annotation of the player alone (IoU 0.36
on frame 0). Against the official annotation the same tracker scores J&F 0.669 / 0.612 on tennis
from the mask / the box (docs/tracker_experiments.md says how). These tests keep the shared masks:
an editor removing the player wants his shadow gone too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from peanut_server.masker import FramePrompt, MaskerOptions, MaskPrompt, MotionMasker
from peanut_server.metrics.masks import evaluate
from peanut_server.progress import Reporter
from tests.clips import box_of, read_davis, tracked_mask_prompt
from tests.synthetic import ArraySource

# clip -> (margin over repeat-frame-0 from the mask, margin from the box). Measured (2-core CPU,
# 2026-12-01, with the regrowth of lost moving parts): tennis 0.466 / 0.426 and bmx-trees
# 0.489 / 0.504 (from the mask / the box) against 0.250 / 0.169 for doing nothing (the day
# before: 0.429 / 0.403 and 0.479 / 0.476; before the texture, signed-distance prior and
# forward-backward changes: 0.419 / 0.404 and 0.337 / 0.255; 2026-12-02, with the tracker's
# full-resolution flow and the box cut's rules for disagreement: 0.473 / 0.445 and 0.536 / 0.565).
# The margins were not raised with them: these are the clips it was tuned on.
MARGINS = {"tennis": (0.1, 0.1), "bmx-trees": (0.1, 0.05)}


def _clip(shared_data: Path, name: str):
    frames, truth = read_davis(shared_data / "davis" / name)
    repeat = evaluate([truth[0]] * len(truth), truth).JF
    return frames, truth, repeat


@pytest.mark.parametrize("clip", sorted(MARGINS))
def test_tracks_the_first_frame_mask_better_than_repeating_it(shared_data: Path, tmp_path: Path, clip: str) -> None:
    frames, truth, repeat = _clip(shared_data, clip)
    prompt = tracked_mask_prompt(truth[0], tmp_path)
    masks = list(MotionMasker().masks(ArraySource(frames), 0, len(frames), prompt, MaskerOptions(), Reporter()))
    assert len(masks) == len(frames) and masks[0].shape == truth[0].shape
    scores = evaluate(masks, truth)
    print(
        f"{clip} from mask: J&F {scores.JF:.3f} (repeat-frame-0 {repeat:.3f}); J per frame "
        + " ".join(f"{j:.2f}" for j in scores.per_frame_J)
    )
    assert scores.JF >= repeat + MARGINS[clip][0]
    # Never a full-frame mask: a tracker that fails must not cover the picture.
    assert max(m.mean() for m in masks) < 0.6


@pytest.mark.parametrize("clip", sorted(MARGINS))
def test_tracks_from_the_first_frame_box(shared_data: Path, clip: str) -> None:
    frames, truth, repeat = _clip(shared_data, clip)
    x, y, w, h = box_of(truth[0])
    prompt = MaskPrompt(frame_prompts=[FramePrompt(frame=0, box=(x, y, x + w, y + h))])
    masks = list(MotionMasker().masks(ArraySource(frames), 0, len(frames), prompt, MaskerOptions(), Reporter()))
    scores = evaluate(masks, truth)
    print(
        f"{clip} from box: J&F {scores.JF:.3f} (repeat-frame-0 {repeat:.3f}); J per frame "
        + " ".join(f"{j:.2f}" for j in scores.per_frame_J)
    )
    # The baseline is the true frame-0 mask repeated, more than a box gives: the box's own cut
    # must be good and then tracked.
    assert scores.JF >= repeat + MARGINS[clip][1]
    assert np.mean([m.any() for m in masks]) > 0.7  # the object is not dropped for most of the clip
