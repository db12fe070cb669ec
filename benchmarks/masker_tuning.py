"""No-weights tracker on the tuning clips: J&F from the frame-0 mask and from its box.

Clips: davis/tennis and davis/bmx-trees in ../shared/data, plus the DAVIS 2016 clips that
benchmarks/masker_tuning_clips.py extracts into tuning/ (run it first). The held-out clips
(benchmarks/masker_heldout.py) are not used here: tune on this, check on those once.

    python benchmarks/masker_tuning.py [--data ../shared/data] [--tuning tuning] [--strips out/] [clip ...]

Prints per clip and prompt J&F, J, F, s/frame and the per-frame J, then the mean. CPU only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.masker_sweep import strip  # noqa: E402
from benchmarks.masker_tuning_clips import CLIPS  # noqa: E402
from peanut_server.masker import FramePrompt, MaskerOptions, MaskPrompt, MotionMasker  # noqa: E402
from peanut_server.media.source import list_images  # noqa: E402
from peanut_server.metrics.masks import evaluate  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.clips import tracked_mask_prompt  # noqa: E402
from tests.synthetic import ArraySource  # noqa: E402


def load(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = [cv2.cvtColor(cv2.imread(str(folder / n)), cv2.COLOR_BGR2RGB) for n in list_images(folder)]
    gt_dir = folder.parent / f"{folder.name}_mask"
    truth = [cv2.imread(str(gt_dir / n), cv2.IMREAD_GRAYSCALE) > 127 for n in list_images(gt_dir)]
    return frames, truth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--tuning", type=Path, default=REPO / "tuning")
    parser.add_argument("--strips", type=Path, default=None)
    parser.add_argument("clips", nargs="*", default=["tennis", "bmx-trees", *CLIPS])
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory()
    totals: dict[str, list[float]] = {"mask": [], "box": []}
    for clip in args.clips:
        folder = args.data / "davis" / clip if clip in ("tennis", "bmx-trees") else args.tuning / clip
        frames, truth = load(folder)
        ys, xs = np.nonzero(truth[0])
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        prompts = {
            "mask": tracked_mask_prompt(truth[0], workdir.name),
            "box": MaskPrompt(frame_prompts=[FramePrompt(0, box=box)]),
        }
        for name, prompt in prompts.items():
            t = time.perf_counter()
            masks = list(MotionMasker().masks(ArraySource(frames), 0, len(frames), prompt, MaskerOptions(), Reporter()))
            spf = (time.perf_counter() - t) / len(frames)
            scores = evaluate(masks, truth)
            totals[name].append(scores.JF)
            print(f"{clip:15s} {name:4s} J&F {scores.JF:.3f}  J {scores.J:.3f}  F {scores.F:.3f}  {spf:.3f} s/frame")
            print("    J: " + " ".join(f"{j:.2f}" for j in scores.per_frame_J), flush=True)
            if args.strips is not None:
                strip(frames, masks, truth, args.strips / f"{clip}_{name}.png", step=max(1, len(frames) // 15))
    for name, values in totals.items():
        print(f"mean {name}: J&F {np.mean(values):.3f}")
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
