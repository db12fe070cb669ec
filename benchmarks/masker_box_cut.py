"""The no-weights masker's first cut from a box: frame-0 J on the tuning clips.

A box prompt becomes a mask on its frame before any tracking (what the Blender and Resolve
previews show, and what the tracker starts from). This measures that cut alone: for each
clip, the box a user would draw around the true frame-0 mask goes to `MotionMasker.preview`,
and the cut is scored against the true mask (J), for several masker seeds (the seed starts
GrabCut's k-means). The tracking from the box is measured by benchmarks/masker_heldout.py.

    python benchmarks/masker_box_cut.py [--tuning tuning] [--seeds 0 1 2] [CLIP ...]

Clips: davis/tennis and davis/bmx-trees in the shared data folder, and the folders that
benchmarks/masker_tuning_clips.py writes (tuning/<clip>/*.jpg, tuning/<clip>_mask/*.png).
Never the held-out clips of tests/data/annotated. CPU only.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peanut_server.masker.base import FramePrompt, MaskerOptions, MaskPrompt  # noqa: E402
from peanut_server.masker.motion.masker import MotionMasker  # noqa: E402
from peanut_server.media import open_source  # noqa: E402
from peanut_server.metrics.masks import jaccard  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.clips import box_of  # noqa: E402


def clip_folders(tuning: Path, shared: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (frame folder, mask folder), the shared DAVIS clips first."""
    found = {name: (shared / "davis" / name, shared / "davis" / f"{name}_mask") for name in ("tennis", "bmx-trees")}
    for masks in sorted(tuning.glob("*_mask")):
        found[masks.name[: -len("_mask")]] = (masks.with_name(masks.name[: -len("_mask")]), masks)
    return {name: pair for name, pair in found.items() if pair[0].is_dir() and pair[1].is_dir()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", type=Path, default=REPO / "tuning")
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("PEANUT_SHARED_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("clips", nargs="*", help="clips to run (default: all found)")
    args = parser.parse_args()
    clips = clip_folders(args.tuning, args.shared)
    names = args.clips or list(clips)
    missing = [n for n in names if n not in clips]
    if missing:
        raise SystemExit(f"no frames and masks for {', '.join(missing)} (run benchmarks/masker_tuning_clips.py)")
    masker = MotionMasker()
    means = []
    print(f"{'clip':<18} " + " ".join(f"{'seed ' + str(s):>7}" for s in args.seeds) + "   true fill of box")
    for name in names:
        frames, masks = clips[name]
        truth = cv2.imread(str(sorted(masks.glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE) > 127
        x, y, w, h = box_of(truth)
        prompt = MaskPrompt(frame_prompts=[FramePrompt(frame=0, box=(x, y, x + w, y + h))])
        source = open_source(str(frames))
        js = []
        for seed in args.seeds:
            cut, _ = masker.preview(source, 0, prompt, MaskerOptions(seed=seed), Reporter())
            js.append(jaccard(cut, truth))  # preview gives a bool mask at source resolution
        means.append(float(np.mean(js)))
        fill = truth.sum() / (w * h)
        print(f"{name:<18} " + " ".join(f"{j:7.3f}" for j in js) + f"   {fill:.2f}")
    print(f"\nmean J over {len(means)} clips: {np.mean(means):.3f}")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
