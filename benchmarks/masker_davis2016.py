"""The no-weights tracker on all 50 DAVIS 2016 sequences, beside the classical methods.

Runs the no-weights tracker (MotionMasker, as `peanut mask --local` runs it) from the true frame-0
mask on every frame of each DAVIS 2016 sequence, and compares its region similarity J, per
sequence and on average, with the classical (pre-deep-learning) semi-supervised methods of the
DAVIS 2016 benchmark: BVS, ObjectFlow, FCP, JumpCut, HVS, SeamSeg and TSP
(benchmarks/davis2016_classical_J.csv, from the DAVIS group's evaluation files).

J is computed as DAVIS does (the mean over frames 1..n-2: the given first frame and the last are
not scored), on the masks at 432x240 where the published figures are at 854x480, so the
comparison is close, not exact. The sequences are grouped as this project uses them: tuning
(benchmarks/masker_tuning_clips.py and the two in ../shared/data), held out
(tests/data/annotated) and neither.

This benchmark measures; it must not be tuned on, because it holds the held-out sequences (as
whole clips at 24 fps; the tests use their first 1-3 seconds at 12 fps). Tune on
benchmarks/masker_tuning.py.

    python benchmarks/masker_davis2016.py [--mirror /work/.mirror/xmican10+KNN-project/repo]
        [--cache davis2016] [--csv out.csv] [sequence ...]

The mirror (github.com/xmican10/KNN-project, branch custom) holds the 50 sequences at 854x480;
`fetch` brings it. Extracted clips are cached in --cache (default davis2016/, git-ignored).
CPU only: about 9 minutes on the 2-core developer machine (0.14 s/frame).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.masker_tuning import load  # noqa: E402
from benchmarks.masker_tuning_clips import ALLOWED, extract_sequence  # noqa: E402
from peanut_server.masker import MaskerOptions, MotionMasker  # noqa: E402
from peanut_server.metrics.masks import jaccard  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.clips import tracked_mask_prompt  # noqa: E402
from tests.heldout import CLIPS as HELD_OUT  # noqa: E402
from tests.synthetic import ArraySource  # noqa: E402

CLASSICAL = Path(__file__).with_name("davis2016_classical_J.csv")
TUNING = ALLOWED | {"tennis", "bmx-trees"}


def read_classical() -> tuple[list[str], dict[str, dict[str, float]]]:
    """(method names, {sequence: {method: J}})."""
    with CLASSICAL.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    methods = [k for k in rows[0] if k != "seq"]
    return methods, {r["seq"]: {m: float(r[m]) for m in methods} for r in rows}


def group(sequence: str) -> str:
    if sequence in HELD_OUT:
        return "held out"
    return "tuning" if sequence in TUNING else "neither"


def davis_j(masks: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """DAVIS 2016's sequence J: the mean over every frame but the first (given) and the last."""
    return float(np.mean([jaccard(m, t) for m, t in zip(masks[1:-1], truth[1:-1], strict=True)]))


def precision_recall(masks: list[np.ndarray], truth: list[np.ndarray]) -> tuple[float, float]:
    """Pixel precision and recall over the scored frames: low precision is a mask that took in
    background (a leak, a creep), low recall one that lost parts of the object."""
    inter = sum(int((m & t).sum()) for m, t in zip(masks[1:-1], truth[1:-1]))
    taken = sum(int(m.sum()) for m in masks[1:-1])
    true = sum(int(t.sum()) for t in truth[1:-1])
    return inter / max(taken, 1), inter / max(true, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror/xmican10+KNN-project/repo"))
    parser.add_argument("--rev", default="custom", help="the mirror's branch or commit to read")
    parser.add_argument("--cache", type=Path, default=REPO / "davis2016")
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-sequence table here")
    parser.add_argument("sequences", nargs="*")
    args = parser.parse_args()
    methods, classical = read_classical()
    sequences = args.sequences or sorted(classical)
    unknown = [s for s in sequences if s not in classical]
    if unknown:
        parser.error(f"not DAVIS 2016 sequences: {', '.join(unknown)}")

    rows = []
    work = tempfile.TemporaryDirectory()  # the frame-0 mask files the prompts point at
    print(
        f"{'sequence':20s} {'group':9s} {'frames':>6s} {'prec':>5s} {'rec':>5s} {'ours':>6s} "
        + " ".join(f"{m:>5s}" for m in methods)
    )
    for sequence in sequences:
        folder = args.cache / sequence
        if not folder.is_dir():
            if not args.mirror.is_dir():
                parser.error(f"{folder} is not extracted and there is no mirror at {args.mirror} (--mirror)")
            extract_sequence(args.mirror, args.cache, sequence, args.rev)
        frames, truth = load(folder)
        prompt = tracked_mask_prompt(truth[0], work.name)
        start = time.perf_counter()
        masks = list(MotionMasker().masks(ArraySource(frames), 0, len(frames), prompt, MaskerOptions(), Reporter()))
        seconds = time.perf_counter() - start
        ours = davis_j(masks, truth)
        precision, recall = precision_recall(masks, truth)
        rows.append({"seq": sequence, "group": group(sequence), "frames": len(frames), "ours": ours,
                     "precision": precision, "recall": recall, "s_per_frame": seconds / len(frames),
                     **classical[sequence]})  # fmt: skip
        print(
            f"{sequence:20s} {group(sequence):9s} {len(frames):6d} {precision:5.2f} {recall:5.2f} {ours:6.3f} "
            + " ".join(f"{classical[sequence][m]:5.3f}" for m in methods),
            flush=True,
        )
    work.cleanup()

    print("\nmean J (sequences: n)   ours  " + " ".join(f"{m:>5s}" for m in methods))
    for name in ("tuning", "held out", "neither", "all"):
        chosen = [r for r in rows if name == "all" or r["group"] == name]
        if not chosen:
            continue
        means = [np.mean([r[m] for r in chosen]) for m in ["ours", *methods]]
        print(f"{name:14s} ({len(chosen):2d})      " + " ".join(f"{v:5.3f}" for v in means))
    print("\nsequences where ours beats the method's J (of all run):")
    print("  " + "  ".join(f"{m} {sum(r['ours'] > r[m] for r in rows)}" for m in methods))
    seconds = sum(r["s_per_frame"] * r["frames"] for r in rows) / sum(r["frames"] for r in rows)
    print(f"{sum(r['frames'] for r in rows)} frames, {seconds:.3f} s/frame (masking only, 432x240)")
    if args.csv is not None:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
