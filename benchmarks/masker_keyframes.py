"""The editor's correction, simulated on the tuning clips: a second box where the tracker warns.

For each clip the no-weights masker tracks from the box around the true frame-0 mask (or, with
`--from mask`, from the true frame-0 mask itself, as `--mask M --mask-frame 0`). Where
its "check frames" warning names frames, a simulated editor adds the box around the true mask
of the first named frame that shows the object (F) to the same job, and it runs again: the
second box is a keyframe the tracker restarts from (peanut_server/masker/tracking.py). Prints,
per warned clip, J&F over the whole clip and over the frames from F on, before and after, and
how many frames the warning names after the correction; then the means.

With `--mark last` the editor marks the last frame of the first named run that shows the object
instead (where the error has grown), and J&F is still measured from the run's first frame on:
what the mark corrects backwards.

With `--rounds N` the editor goes on as the warning asks: after each corrected run, a box on
the first named frame not yet marked, up to N boxes; J&F from the first mark on is printed
after each round.

    python benchmarks/masker_keyframes.py [--from box|mask] [--mark first|last] [--rounds 1] [--step 2]
        [--data ../shared/data] [--tuning tuning] [clip ...]

Clips: as benchmarks/masker_tuning.py, at its 12-fps, 40-frame cut (tennis and bmx-trees
whole; `--step 1`: the same 80 frames at 24 fps). The held-out clips are checked once by
tests/test_masker_heldout.py. CPU only.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.masker_tuning import load  # noqa: E402
from benchmarks.masker_tuning_clips import CLIPS, MORE_CLIPS  # noqa: E402
from peanut_server.masker import FramePrompt, MaskerOptions, MaskPrompt, MotionMasker  # noqa: E402
from peanut_server.metrics.masks import MaskScores, evaluate  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.clips import box_of, tracked_mask_prompt  # noqa: E402
from tests.heldout import frames_to_check  # noqa: E402
from tests.synthetic import ArraySource  # noqa: E402


def box_around(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The box a user would draw around the mask, as a FramePrompt takes it (x0, y0, x1, y1)."""
    x, y, w, h = box_of(mask)
    return float(x), float(y), float(x + w), float(y + h)


def track(frames: list[np.ndarray], prompt: MaskPrompt) -> tuple[list[np.ndarray], list[str]]:
    masker = MotionMasker()
    masks = list(masker.masks(ArraySource(frames), 0, len(frames), prompt, MaskerOptions(), Reporter()))
    return masks, masker.report.warnings


def from_frame(scores: MaskScores, first: int) -> float:
    return float(np.mean(scores.per_frame_J[first:]) + np.mean(scores.per_frame_F[first:])) / 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("PEANUT_SHARED_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--tuning", type=Path, default=REPO / "tuning")
    parser.add_argument("--from", dest="start", choices=("box", "mask"), default="box")
    parser.add_argument("--mark", choices=("first", "last"), default="first", help="which named frame is marked")
    parser.add_argument("--rounds", type=int, default=1, help="how many times the editor adds a box and runs again")
    parser.add_argument("--step", type=int, default=2, help="every step-th frame of the first 80 (1: 24 fps)")
    parser.add_argument("clips", nargs="*", default=["tennis", "bmx-trees", *CLIPS, *MORE_CLIPS])
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    rows = []
    start = time.perf_counter()
    workdir = tempfile.TemporaryDirectory()
    for clip in args.clips:
        whole = clip in ("tennis", "bmx-trees")
        frames, truth = load(args.data / "davis" / clip if whole else args.tuning / clip)
        if not whole:
            frames, truth = frames[: 80 : args.step], truth[: 80 : args.step]
        first = (
            tracked_mask_prompt(truth[0], workdir.name)
            if args.start == "mask"
            else MaskPrompt(frame_prompts=[FramePrompt(0, box=box_around(truth[0]))])
        )
        masks, warnings = track(frames, first)
        named = sorted(f for f in frames_to_check(warnings) if truth[f].any())
        if not named:
            print(f"{clip:16s} no frame named")
            continue
        named_first = named[0]  # J&F is measured from the first named frame of the first round on
        marked: list[int] = []
        prompt, fixed, fixed_warnings, after_rounds = first, masks, warnings, []
        while len(marked) < args.rounds and named:
            run = [named[0]]  # the first run of consecutive named frames
            while run[-1] + 1 in named:
                run.append(run[-1] + 1)
            marked.append(run[0] if args.mark == "first" else run[-1])
            prompt = MaskPrompt(
                mask_path=first.mask_path,
                frame_prompts=[*prompt.frame_prompts, FramePrompt(marked[-1], box=box_around(truth[marked[-1]]))],
            )
            fixed, fixed_warnings = track(frames, prompt)
            after_rounds.append(from_frame(evaluate(fixed, truth), named_first))
            named = sorted(f for f in frames_to_check(fixed_warnings) if truth[f].any() and f not in marked)
        before, after = evaluate(masks, truth), evaluate(fixed, truth)
        rows.append((before.JF, after.JF, from_frame(before, named_first), after_rounds[-1]))
        rounds = " -> ".join(f"{v:.3f}" for v in after_rounds)
        print(
            f"{clip:16s} boxes on frames {', '.join(map(str, marked))}: J&F {before.JF:.3f} -> {after.JF:.3f}, "
            f"from frame {named_first} on {rows[-1][2]:.3f} -> {rounds}; frames named "
            f"{len(frames_to_check(warnings))} -> {len(frames_to_check(fixed_warnings))}",
            flush=True,
        )
    if rows:
        table = np.array(rows)
        up = int((table[:, 3] > table[:, 2]).sum())
        print(
            f"\n{len(rows)} of {len(args.clips)} clips warned; J&F {table[:, 0].mean():.3f} -> {table[:, 1].mean():.3f}; "
            f"from the first named frame on {table[:, 2].mean():.3f} -> {table[:, 3].mean():.3f} ({up} up)"
        )
    print(f"{time.perf_counter() - start:.0f} s on {platform.machine()}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
