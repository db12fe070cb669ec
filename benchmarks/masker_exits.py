"""The no-weights tracker when the object leaves the picture: exit variants of the tuning clips.

DAVIS objects stay in the picture; real shots often end with the object walking or driving out
of them. Each variant is a real clip seen through a window 216 px wide that pans away from the
object (a moving crop: real frames, the clip's own background motion plus a pan), so the object
starts near the window's trailing edge and is out of it by frame 12-30 of the 40 (12 fps). The
truth is the true mask cropped the same way: empty once the object has left. A clip whose object
is too wide for the window, or that does not leave it for at least 4 frames, has no variant.

Prints per variant and prompt (from the true frame-0 mask, from its box) J&F, J over the frames
that show the object, and the share of the frames after the exit whose mask is empty (a mask
there is background the eraser would smear); then the means. `--strips DIR` writes a strip per
variant (truth green, mask red).

    python benchmarks/masker_exits.py [--data ../shared/data] [--tuning tuning] [--strips DIR] [clip ...]

Measured on 2026-12-02 (2-core CPU): 11 variants; from the mask J&F 0.541, after-exit frames
empty 0.73; from the box 0.515, 0.65. hike keeps a sliver of background at the edge after the
walker has left (0.00 of its 9 frames empty), goat and motorbike keep their masks on the
background. Clips: as benchmarks/masker_tuning.py, never the held-out ones. CPU only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.masker_keyframes import box_around  # noqa: E402
from benchmarks.masker_sweep import strip  # noqa: E402
from benchmarks.masker_tuning import load  # noqa: E402
from benchmarks.masker_tuning_clips import CLIPS, MORE_CLIPS  # noqa: E402
from peanut_server.masker import FramePrompt, MaskerOptions, MaskPrompt, MotionMasker  # noqa: E402
from peanut_server.metrics.masks import evaluate  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.clips import tracked_mask_prompt  # noqa: E402
from tests.synthetic import ArraySource  # noqa: E402

WINDOW = 216  # px: the panning window's width (the clips are 432 wide)
EXIT_BY = (20, 15, 25, 12, 30)  # frames by which the object should have left: the first that shows it is used


def _to_clear(columns: np.ndarray, x0: int, direction: int) -> int:
    """How far (px) a window at x0 moving in `direction` must go to leave the object's columns behind."""
    return columns.max() + 2 - x0 if direction > 0 else x0 + WINDOW - columns.min() + 2


def exit_variant(
    frames: list[np.ndarray], truth: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray], float] | None:
    """(frames, truth, pan speed in px/frame) seen through a window panning away from the object,
    or None. The slower of the two directions that works is taken."""
    count, width = len(frames), truth[0].shape[1]
    columns = [np.nonzero(t.any(0))[0] for t in truth]
    if not len(columns[0]) or columns[0].max() - columns[0].min() > 0.7 * WINDOW:
        return None
    best: tuple[float, list[int]] | None = None
    for direction in (+1, -1):
        # The object starts 12 px inside the trailing edge; the window moves away from it.
        lo, hi = columns[0].min(), columns[0].max()
        x0 = int(np.clip(lo - 12 if direction > 0 else hi + 12 - WINDOW, 0, width - WINDOW))
        # The first frame of EXIT_BY that shows the object on the side the window leaves.
        ends = (min(t, count - 1) for t in EXIT_BY)
        t = next((t for t in ends if len(columns[t]) and _to_clear(columns[t], x0, direction) > 0), None)
        if t is None:
            continue
        speed = _to_clear(columns[t], x0, direction) / t
        # The window stops at the picture's edge (the pan ends there).
        place = [int(np.clip(round(x0 + direction * speed * k), 0, width - WINDOW)) for k in range(count)]
        gone = sum(not m[:, x : x + WINDOW].any() for m, x in zip(truth, place))
        if gone >= 4 and (best is None or speed < abs(best[0])):
            best = (direction * speed, place)
    if best is None:
        return None
    speed, place = best
    crop = [f[:, x : x + WINDOW].copy() for f, x in zip(frames, place)]
    return crop, [m[:, x : x + WINDOW].copy() for m, x in zip(truth, place)], speed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("PEANUT_SHARED_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--tuning", type=Path, default=REPO / "tuning")
    parser.add_argument("--strips", type=Path, default=None)
    parser.add_argument("clips", nargs="*", default=["tennis", "bmx-trees", *CLIPS, *MORE_CLIPS])
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory()
    totals: dict[str, list[float]] = {"mask": [], "box": []}
    emptied: dict[str, list[float]] = {"mask": [], "box": []}
    for clip in args.clips:
        whole = clip in ("tennis", "bmx-trees")
        frames, truth = load(args.data / "davis" / clip if whole else args.tuning / clip)
        frames, truth = frames[:80:2], truth[:80:2]  # the 12-fps, 40-frame cut of masker_tuning.py
        variant = exit_variant(frames, truth)
        if variant is None:
            print(f"{clip:16s} no variant (object too wide for the window, or never out of it)")
            continue
        frames, truth, speed = variant
        out = [k for k, m in enumerate(truth) if not m.any()]
        shown = [k for k, m in enumerate(truth) if m.any()]
        prompts = {
            "mask": tracked_mask_prompt(truth[0], workdir.name),
            "box": MaskPrompt(frame_prompts=[FramePrompt(0, box=box_around(truth[0]))]),
        }
        for name, prompt in prompts.items():
            masks = list(MotionMasker().masks(ArraySource(frames), 0, len(frames), prompt, MaskerOptions(), Reporter()))
            scores = evaluate(masks, truth)
            empty = float(np.mean([not masks[k].any() for k in out]))
            totals[name].append(scores.JF)
            emptied[name].append(empty)
            print(
                f"{clip:16s} {name:4s} pan {speed:+5.1f} px/frame  J&F {scores.JF:.3f}  "
                f"J while shown {np.mean([scores.per_frame_J[k] for k in shown]):.3f}  "
                f"empty after the exit {empty:.2f} of {len(out)}",
                flush=True,
            )
            print("    J: " + " ".join(f"{j:.2f}" for j in scores.per_frame_J))
            if args.strips is not None:
                strip(frames, masks, truth, args.strips / f"{clip}_{name}.png", step=max(1, len(frames) // 12))
    for name in totals:
        if totals[name]:
            print(
                f"mean {name}: J&F {np.mean(totals[name]):.3f}, empty after the exit {np.mean(emptied[name]):.2f} "
                f"({len(totals[name])} variants)"
            )
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
