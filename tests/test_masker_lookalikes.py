"""Word ranking among real movers: look-alike balls over real DAVIS footage.

The backgrounds are real clips (tennis: a player running, a panning camera; bmx-trees: a
rider, trees with parallax, a fast pan), so motion segmentation also finds the player, the
rider and pieces of background. Colour words must filter them out, size and position words
must pick among the look-alikes, and the tracker must keep to the one picked. The prompts
hold a noun ("ball") the no-weights masker cannot check, so they run with approximate=True.

These four cases were written after the ranking and tracking changes (clip segments,
colours, sizes and paths not used while tuning) and first run as they are: 0.947, 0.933,
0.931 and 0.495 J&F. Two fixes followed from looking at them, so they are no longer
untouched: the colour lock no longer trims a textured ball to its main shade (pink:
0.933 -> 0.997), and a region merged with others is split into all its blobs of the named
colour, not only the largest (purple, which a look-alike had taken over after it crossed
the player: 0.495 -> 0.833). Then a target held to its named colour was re-found on every
frame as the blob of its own shades and size next to where it should be (a small fast ball
outruns the flow): purple 0.833 -> 0.990, cyan 0.947 -> 0.976, pink 0.997, smallest blue
0.931 -> 0.966, so purple's floor went from 0.75 to the issue's 0.85 bar (not to just under
the new figure). Doing nothing (repeating the true frame-0 mask) scores 0.05-0.07 on each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from peanut_server.masker import MaskerOptions, MaskPrompt, MotionMasker
from peanut_server.metrics.masks import evaluate
from peanut_server.progress import Reporter
from tests.clips import read_davis
from tests.synthetic import ArraySource, MovingObject, composite_clip

PINK, BLUE, RED, PURPLE, CYAN = (230, 120, 170), (40, 70, 200), (215, 40, 40), (140, 60, 190), (40, 190, 200)
M = MovingObject

# name -> (clip, first frame, objects, prompt, target index, J&F floor)
CASES = {
    "tennis purple top": (
        "tennis",
        40,
        [M(PURPLE, (80, 40), (330, 70), radius=14, seed=4), M(PURPLE, (330, 190), (90, 160), radius=14, seed=5)],
        "the purple ball at the top",
        0,
        0.85,
    ),
    "tennis biggest cyan": (
        "tennis",
        40,
        [
            M(CYAN, (350, 60), (70, 190), radius=12, seed=6),
            M(CYAN, (60, 70), (370, 150), radius=21, seed=7),
            M(PINK, (200, 200), (210, 40), radius=18, seed=8),
        ],
        "the biggest cyan ball",
        1,
        0.85,
    ),
    "bmx pink bottom": (
        "bmx-trees",
        40,
        [M(PINK, (100, 50), (300, 70), radius=15, seed=9), M(PINK, (320, 200), (110, 190), radius=15, seed=10)],
        "the pink ball at the bottom",
        1,
        0.85,
    ),
    "bmx smallest blue": (
        "bmx-trees",
        50,
        [
            M(BLUE, (60, 120), (380, 110), radius=19, seed=11),
            M(BLUE, (380, 60), (80, 200), radius=10, seed=12),
            M(RED, (220, 30), (230, 210), radius=15, seed=13),
        ],
        "the smallest blue ball",
        1,
        0.85,
    ),
}
N = 24


@pytest.mark.parametrize("name", sorted(CASES))
def test_picks_and_keeps_the_named_look_alike(shared_data: Path, name: str) -> None:
    clip, first, objects, text, target, floor = CASES[name]
    background, _ = read_davis(shared_data / "davis" / clip, first + N)
    frames, truth = composite_clip(background[first:], objects, N, (432, 240))
    masker = MotionMasker()
    masks = list(
        masker.masks(ArraySource(frames), 0, N, MaskPrompt(text=text, approximate=True), MaskerOptions(), Reporter())
    )
    scores = evaluate(masks, truth[target])
    still = evaluate([truth[target][0]] * N, truth[target]).JF
    print(
        f"{name}: J&F {scores.JF:.3f} (repeat-frame-0 {still:.3f}); J per frame "
        + " ".join(f"{j:.2f}" for j in scores.per_frame_J)
    )
    assert masker.report.ignored_words == ["ball"]
    # The right look-alike is picked (not the player, the rider or the other ball) ...
    assert scores.per_frame_J[1] > 0.8, masker.report.chosen_object
    # ... and kept.
    assert scores.JF >= floor and scores.JF >= still + 0.3
