"""The method's eraser table: neighbor_stride 3/5/10 at step 10, step 5/10/20 at neighbor_stride 5.

    python benchmarks/eraser_sweep.py [--frames 40] [--start 100]

Runs the flowguided eraser on a running_car segment (432x240, mask_square:
ground truth known), prints PSNR/SSIM/TC/Ewarp/s-per-frame per setting and
saves a plot of quality and TC against time cost to
benchmarks/results/eraser_sweep.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _eraser_common import DATA, RESULTS, read_clip, read_mask  # noqa: E402

from peanut_server.eraser.base import EraserOptions  # noqa: E402
from peanut_server.eraser.flowguided import FlowGuidedEraser  # noqa: E402
from peanut_server.metrics.completion import evaluate, format_table, ground_truth_row, video_flows  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402

SETTINGS = [(3, 10), (5, 10), (10, 10), (5, 5), (5, 20)]  # (neighbor_stride, step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--start", type=int, default=100, help="first frame of the running_car segment")
    args = parser.parse_args()
    gt = read_clip(DATA / "completion" / "running_car.mp4", args.frames, (432, 240), start=args.start)
    mask = read_mask(DATA / "completion" / "mask_square.png", (432, 240))
    masks = np.repeat(mask[None], len(gt), axis=0)
    damaged = gt.copy()
    damaged[masks] = 0
    flows = video_flows(gt)
    eraser = FlowGuidedEraser()
    eraser.erase(damaged[:6], masks[:6], EraserOptions(), Reporter())  # warm-up
    rows = []
    for stride, step in SETTINGS:
        options = EraserOptions(neighbor_stride=stride, step=step)
        started = time.perf_counter()
        out = eraser.erase(damaged, masks, options, Reporter()).frames
        seconds = time.perf_counter() - started
        rows.append((f"stride {stride:2d} step {step:2d}", evaluate(out, gt, masks, seconds=seconds, flows=flows)))
        print(rows[-1][0], f"{rows[-1][1].psnr:.2f} dB", flush=True)
    rows.append(("ground truth", ground_truth_row(rows[0][1])))
    print(format_table(rows))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, s in rows[:-1]:
        ax1.scatter(s.seconds_per_frame, s.psnr)
        ax1.annotate(name.replace("stride", "ns").replace("step", "st"), (s.seconds_per_frame, s.psnr), fontsize=8)
        ax2.scatter(s.seconds_per_frame, s.tc)
        ax2.annotate(name.replace("stride", "ns").replace("step", "st"), (s.seconds_per_frame, s.tc), fontsize=8)
    ax2.axhline(rows[-1][1].tc, color="grey", linestyle="--", label="ground truth TC")
    ax1.set(xlabel="seconds per frame (2-core CPU)", ylabel="PSNR (dB)", title="quality vs time")
    ax2.set(xlabel="seconds per frame (2-core CPU)", ylabel="TC (mean SSIM of consecutive frames)", title="TC vs time")
    ax2.legend()
    fig.tight_layout()
    path = RESULTS / "eraser_sweep.png"
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
