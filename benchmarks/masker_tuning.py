"""No-weights tracker on the tuning clips: J&F from the frame-0 mask and from its box.

Clips: davis/tennis and davis/bmx-trees in ../shared/data, plus the DAVIS 2016 clips that
benchmarks/masker_tuning_clips.py extracts into tuning/ (run it first). The held-out clips
(benchmarks/masker_heldout.py) are not used here: tune on this, check on those once.

    python benchmarks/masker_tuning.py [--data ../shared/data] [--tuning tuning] [--strips out/]
        [--step 2 --max-frames 40] [--lost-signal] [clip ...]

Prints per clip and prompt J&F, J, F, s/frame and the per-frame J, then the mean. `--step 2
--max-frames 40` is the 12-fps, 40-frame cut of each tuning clip that the 2026-12 notes quote
(tennis and bmx-trees are always run whole, as the issue measures them).

`--lost-signal` asks how well the output mask's colour says whether it is on the object: on
every frame it takes the cosine of the mask's colour descriptor (the one the CME memory keeps)
with the prompt frame's, and reports how that separates frames on the background (J < 0.1)
from frames on the object (J > 0.5): the ROC area, and what thresholds would catch. The
tracker's own lost check (CMESettings.lost_tau) reads the same descriptor. CPU only.
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
from benchmarks.masker_tuning_clips import CLIPS, MORE_CLIPS  # noqa: E402
from peanut_server.masker import FramePrompt, MaskerOptions, MaskPrompt, MotionMasker  # noqa: E402
from peanut_server.masker.candidates import bounding_box  # noqa: E402
from peanut_server.masker.colour import colour_descriptor, colour_similarity  # noqa: E402
from peanut_server.masker.tracking import DOUBT_SIMILARITY  # noqa: E402
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


def anchor_similarity(frames: list[np.ndarray], masks: list[np.ndarray]) -> list[float | None]:
    """Per frame: cosine of the mask's colour descriptor with frame 0's (None where empty)."""
    anchor = colour_descriptor(frames[0], masks[0])
    return [colour_similarity(f, m, anchor) if m.any() else None for f, m in zip(frames, masks)]


def report_lost_signal(pairs: list[tuple[float, float]]) -> None:
    """pairs: (true J, similarity) of every non-empty output frame, pooled over clips."""
    j, s = np.array(pairs).T
    off, on = s[j < 0.1], s[j > 0.5]
    print(f"lost signal: {len(off)} frames on the background (J < 0.1), {len(on)} on the object (J > 0.5)")
    if not len(off) or not len(on):
        return
    # ROC area: the chance that a frame on the object scores above one on the background.
    area = float(np.mean([(on > x).mean() + 0.5 * (on == x).mean() for x in off]))
    print(f"  ROC area {area:.3f}; similarity median {np.median(off):.3f} off, {np.median(on):.3f} on")
    t = DOUBT_SIMILARITY  # where the tracking loop's "check frames" warning starts
    print(
        f"  below {t:.3f}: {np.mean(off < t):.2f} of the off-object frames, {np.mean(on < t):.1%} of the on-object ones"
    )
    for share in (0.005, 0.01, 0.02):
        t = float(np.quantile(on, share))
        print(f"  below {t:.3f}: {np.mean(off < t):.2f} of the off-object frames, {share:.1%} of the on-object ones")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--tuning", type=Path, default=REPO / "tuning")
    parser.add_argument("--strips", type=Path, default=None)
    parser.add_argument("--step", type=int, default=1, help="take every step-th frame of the tuning clips")
    parser.add_argument("--max-frames", type=int, default=0, help="at most this many frames per tuning clip")
    parser.add_argument("--lost-signal", action="store_true")
    parser.add_argument("clips", nargs="*", default=["tennis", "bmx-trees", *CLIPS, *MORE_CLIPS])
    args = parser.parse_args()
    lost_pairs: dict[str, list[tuple[float, float]]] = {"mask": [], "box": []}
    workdir = tempfile.TemporaryDirectory()
    totals: dict[str, list[float]] = {"mask": [], "box": []}
    for clip in args.clips:
        folder = args.data / "davis" / clip if clip in ("tennis", "bmx-trees") else args.tuning / clip
        frames, truth = load(folder)
        if clip not in ("tennis", "bmx-trees"):
            stop = args.max_frames * args.step or None
            frames, truth = frames[: stop : args.step], truth[: stop : args.step]
        box = bounding_box(truth[0])
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
            if args.lost_signal:
                similarity = anchor_similarity(frames, masks)
                lost_pairs[name] += [(j, s) for j, s in zip(scores.per_frame_J, similarity) if s is not None]
            if args.strips is not None:
                strip(frames, masks, truth, args.strips / f"{clip}_{name}.png", step=max(1, len(frames) // 15))
    for name, values in totals.items():
        print(f"mean {name}: J&F {np.mean(values):.3f}")
        if args.lost_signal:
            print(f"from the {name}:", end=" ")
            report_lost_signal(lost_pairs[name])
    workdir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
