"""Moving holes, as the quality test scores them, for any EraserOptions: PSNR gain over
per-frame Telea (whole frame, dB) and Ewarp as a multiple of the ground truth's own.

    python benchmarks/eraser_moving_holes.py tuning [--set temporal_smoothing=2 ...]
    python benchmarks/eraser_moving_holes.py held-out [--set consistency_relative=0.05 ...]
    python benchmarks/eraser_moving_holes.py tuning --table   (also SSIM, sharpness, TC per case)

"tuning" is the 14 cases of tests/test_eraser_quality.py's
test_completion_beats_per_frame_baseline (the eraser's settings were chosen on
these); "held-out" is its 12 held-out cases (seeds 6-8 on bmx-trees, tennis,
town_centre, hk_crossing): run them once, after choosing, never to choose.
Needs ../shared/data (or PEANUT_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.test_eraser_quality as quality  # noqa: E402
from peanut_server.eraser.base import EraserOptions  # noqa: E402
from peanut_server.eraser.flowguided import FlowGuidedEraser  # noqa: E402
from peanut_server.metrics.completion import evaluate, format_table, ground_truth_row, video_flows  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402


def parse_options(pairs: list[str]) -> EraserOptions:
    defaults = EraserOptions()
    fields = {field.name: field for field in dataclasses.fields(EraserOptions)}
    values = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in fields:
            raise SystemExit(f"unknown eraser option {name!r}; known: {', '.join(fields)}")
        kind = type(getattr(defaults, name))
        values[name] = text.lower() in ("1", "true", "yes") if kind is bool else kind(text)
    return EraserOptions(**values)


def cases(which: str, shared: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return quality._cases(shared) if which == "tuning" else quality.held_out_cases(shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("tuning", "held-out"))
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="EraserOptions fields")
    parser.add_argument("--table", action="store_true", help="print every completion metric of every case")
    args = parser.parse_args()
    options = parse_options(args.set)
    shared = Path(os.environ.get("PEANUT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    gains, ratios, seconds = [], [], 0.0
    for name, (truth, masks) in cases(args.which, shared).items():
        damaged = quality._damaged(truth, masks)
        started = time.perf_counter()
        ours = FlowGuidedEraser().erase(damaged, masks, options, Reporter()).frames
        seconds += time.perf_counter() - started
        theirs = quality.baseline(damaged, masks)
        gain, ratio = quality.gain_and_ewarp(ours, theirs, truth)
        if args.table:
            flows = video_flows(truth)
            ours_scores = evaluate(ours, truth, masks, flows=flows)
            rows = [(f"{name} flowguided", ours_scores), (f"{name} telea", evaluate(theirs, truth, masks, flows=flows))]
            print(format_table([*rows, (f"{name} ground truth", ground_truth_row(ours_scores))]))
        gains.append(gain)
        ratios.append(float(ratio))
        print(f"{name:24s} gain {gain:+6.2f} dB   Ewarp {ratio:.3f}x the truth's", flush=True)
    print(f"options: {options}")
    print(
        f"{args.which}: mean gain {np.mean(gains):+.2f} dB, worst case {min(gains):+.2f} dB, "
        f"worst Ewarp {max(ratios):.3f}x; eraser {seconds:.1f} s for {len(gains)} cases"
    )


if __name__ == "__main__":
    main()
