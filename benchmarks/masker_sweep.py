"""Masker sweep: mask threshold 0.3/0.5/0.7 x CME clip window 4/8/16 (the method's first table).

Cases:
  synthetic   generated clips over a real DAVIS background (known masks): pick by colour,
              by position among look-alikes, by size, and two look-alikes crossing (CME)
  davis       bmx-trees and tennis, tracking the DAVIS mask of frame 0 with the no-weights
              masker's masks() with the mask as a one-frame prompt: the given-mask tracker (PriorTracker, the default) and the
              grounded path's tracker with and without GrabCut refinement, for comparison

    python benchmarks/masker_sweep.py [--data ../shared/data] [--json out.json]
    python benchmarks/masker_sweep.py --davis [--strips out/]   # the DAVIS table only (default settings;
                                   # "+ effects": the masks grown to their shadows, as --include-effects does)
    python benchmarks/masker_sweep.py --lookalikes   # look-alike balls over real DAVIS footage

Prints J&F per case and setting, plus seconds per frame. CPU only; 2 cores are enough.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peanut_server.masker import MaskerOptions, MaskPrompt, MotionMasker  # noqa: E402
from peanut_server.masker.candidates import bounding_box  # noqa: E402
from peanut_server.media import open_source  # noqa: E402
from peanut_server.media.source import list_images  # noqa: E402
from peanut_server.metrics.masks import evaluate  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.clips import tracked_mask_prompt  # noqa: E402
from tests.synthetic import ArraySource, MovingObject, composite_clip  # noqa: E402

RED, ORANGE_RED, BLUE = (215, 40, 40), (225, 95, 35), (40, 70, 200)


def synthetic_cases() -> dict[str, tuple[list[MovingObject], str, int, int]]:
    def pair(a, b, r1=20.0, r2=20.0):
        return [
            MovingObject(a, (80, 80), (200, 120), radius=r1, seed=1),
            MovingObject(b, (300, 150), (190, 50), radius=r2, seed=2),
        ]

    return {
        "colour": (pair(RED, BLUE), "the blue ball", 1, 24),
        "left/right": (pair(RED, ORANGE_RED), "the red one on the right", 1, 24),
        "biggest": (pair(RED, RED, 13, 24), "the biggest red ball", 1, 24),
        "crossing (CME)": (
            [MovingObject(RED, (60, 110), (340, 110), seed=1), MovingObject(ORANGE_RED, (340, 120), (60, 100), seed=2)],
            "the left red ball",
            0,
            32,
        ),
    }


def run_synthetic(background: np.ndarray, options: MaskerOptions) -> dict[str, tuple[float, float]]:
    out = {}
    for name, (objects, text, target, n) in synthetic_cases().items():
        frames, truth = composite_clip(background, objects, n, (400, 224), pan=(0.7, 0.2))
        t = time.perf_counter()
        masks = list(MotionMasker().masks(ArraySource(frames), 0, n, MaskPrompt(text=text), options, Reporter()))
        out[name] = (evaluate(masks, truth[target]).JF, (time.perf_counter() - t) / n)
    return out


def run_davis(data: Path, clip: str, options: MaskerOptions, tracker: str) -> tuple[float, float]:
    source = open_source(str(data / "davis" / clip))
    gt_dir = data / "davis" / f"{clip}_mask"
    gts = [cv2.imread(str(gt_dir / n), cv2.IMREAD_GRAYSCALE) > 127 for n in list_images(gt_dir)]
    n = min(len(gts), source.info.frame_count)
    masker = MotionMasker()
    masker.prior_tracking = tracker == "prior"
    masker.refine_tracking = tracker == "reseg+grabcut"
    with tempfile.TemporaryDirectory() as tmp:
        prompt = tracked_mask_prompt(gts[0], tmp)
        t = time.perf_counter()
        masks = list(masker.masks(source, 0, n, prompt, options, Reporter()))
    return evaluate(masks, gts[:n]).JF, (time.perf_counter() - t) / n


def strip(
    frames: list[np.ndarray],
    masks: list[np.ndarray],
    truth: list[np.ndarray],
    path: Path,
    step: int = 6,
    columns: int = 5,
) -> None:
    """Every step-th frame: the mask in red over the frame, the true outline in green, the frame index."""
    tiles = []
    for i in range(0, len(frames), step):
        tile = frames[i].copy()
        tile[masks[i]] = (0.45 * tile[masks[i]] + 0.55 * np.array([255, 0, 0])).astype(np.uint8)
        contours, _ = cv2.findContours(truth[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
        cv2.putText(tile, str(i), (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[k : k + columns], 1) for k in range(0, len(tiles), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


def davis_table(data: Path, strips: Path | None) -> list[dict]:
    """Full DAVIS clips: repeat-frame-0 (doing nothing), from the frame-0 mask, from its box."""
    from peanut_server.eraser.effects import grow_to_effects
    from peanut_server.masker import FramePrompt
    from tests.synthetic import ArraySource

    workdir = tempfile.TemporaryDirectory()  # the frame-0 masks, as the one-image prompt files
    tmp = workdir.name
    rows = []
    for clip in ("tennis", "bmx-trees"):
        folder = data / "davis" / clip
        names = list_images(folder)
        frames = [cv2.cvtColor(cv2.imread(str(folder / n)), cv2.COLOR_BGR2RGB) for n in names]
        gt_dir = data / "davis" / f"{clip}_mask"
        truth = [cv2.imread(str(gt_dir / n), cv2.IMREAD_GRAYSCALE) > 127 for n in list_images(gt_dir)]
        box = bounding_box(truth[0])
        runs = {
            "repeat frame 0": lambda truth=truth, frames=frames: [truth[0]] * len(frames),
            "from mask": lambda truth=truth, frames=frames: list(
                MotionMasker().masks(
                    ArraySource(frames),
                    0,
                    len(frames),
                    tracked_mask_prompt(truth[0], tmp),
                    MaskerOptions(),
                    Reporter(),
                )
            ),
            "from box": lambda frames=frames, box=box: list(
                MotionMasker().masks(
                    ArraySource(frames),
                    0,
                    len(frames),
                    MaskPrompt(frame_prompts=[FramePrompt(0, box=box)]),
                    MaskerOptions(),
                    Reporter(),
                )
            ),
        }
        # DAVIS's tennis object includes the player's long shadow; the masker masks the object
        # and the pipeline's --include-effects grows it to its shadow: measured together here
        # (tracking again, so its s/frame is tracking plus effects).
        runs["from mask + effects"] = lambda frames=frames, runs=runs: list(
            grow_to_effects(np.stack(frames), np.stack(runs["from mask"]()))
        )
        for name, run in runs.items():
            t = time.perf_counter()
            masks = run()
            spf = (time.perf_counter() - t) / len(frames)
            scores = evaluate(masks, truth)
            rows.append(
                {
                    "clip": clip,
                    "case": name,
                    "JF": scores.JF,
                    "J": scores.J,
                    "F": scores.F,
                    "s/frame": spf,
                    "frames": len(frames),
                    "per_frame_J": scores.per_frame_J,
                }
            )
            print(
                f"{clip:10s} {name:15s} J&F {scores.JF:.3f}  J {scores.J:.3f}  F {scores.F:.3f}  {spf:.3f} s/frame",
                flush=True,
            )
            print("    J per frame: " + " ".join(f"{j:.2f}" for j in scores.per_frame_J), flush=True)
            if strips is not None and name != "repeat frame 0":
                strip(frames, masks, truth, strips / f"masker_{clip}_{name.replace(' ', '_')}.png")
    workdir.cleanup()
    return rows


def lookalike_table(data: Path) -> list[dict]:
    """Look-alike balls over real DAVIS clips: the six cases the ranking was tuned on (frames
    0-23) and the four of tests/test_masker_lookalikes.py (later frames)."""
    from tests.clips import read_davis
    from tests.synthetic import ArraySource
    from tests.test_masker_lookalikes import CASES, N

    green, red, blue, yellow = (40, 170, 60), (215, 40, 40), (40, 70, 200), (230, 210, 40)
    m = MovingObject
    tuned = {
        "tennis biggest green": (
            "tennis",
            0,
            [
                m(green, (60, 60), (380, 90), radius=22, seed=1),
                m(green, (380, 200), (80, 170), radius=11, seed=2),
                m(red, (300, 40), (120, 60), radius=16, seed=3),
            ],
            "the biggest green ball",
            0,
        ),
        "tennis smallest red": (
            "tennis",
            0,
            [m(red, (40, 200), (390, 180), radius=20, seed=1), m(red, (390, 50), (60, 80), radius=11, seed=2)],
            "the smallest red ball",
            1,
        ),
        "tennis blue left": (
            "tennis",
            0,
            [m(blue, (40, 60), (150, 200), radius=15, seed=1), m(blue, (390, 60), (280, 200), radius=15, seed=2)],
            "the blue ball on the left",
            0,
        ),
        "bmx blue right": (
            "bmx-trees",
            0,
            [m(blue, (60, 200), (160, 60), radius=16, seed=1), m(blue, (300, 200), (390, 60), radius=16, seed=2)],
            "the blue ball on the right",
            1,
        ),
        "bmx biggest yellow": (
            "bmx-trees",
            0,
            [m(yellow, (60, 200), (380, 180), radius=20, seed=1), m(yellow, (390, 190), (60, 200), radius=11, seed=2)],
            "the biggest yellow ball",
            0,
        ),
        "bmx green left": (
            "bmx-trees",
            0,
            [m(green, (80, 60), (140, 180), radius=16, seed=1), m(green, (330, 180), (380, 60), radius=16, seed=2)],
            "the green ball on the left",
            0,
        ),
    }
    cases = {f"tuned: {k}": v for k, v in tuned.items()}
    cases.update({f"test: {k}": v[:5] for k, v in CASES.items()})
    rows = []
    for name, (clip, first, objects, text, target) in cases.items():
        background, _ = read_davis(data / "davis" / clip, first + N)
        frames, truth = composite_clip(background[first:], objects, N, (432, 240))
        t = time.perf_counter()
        try:
            masks = list(
                MotionMasker().masks(
                    ArraySource(frames), 0, N, MaskPrompt(text=text, approximate=True), MaskerOptions(), Reporter()
                )
            )
            jf = evaluate(masks, truth[target]).JF
        except Exception as exc:  # a refusal (ambiguous, nothing found) is a result here
            jf, name = 0.0, f"{name} ({type(exc).__name__}: {exc})"
        spf = (time.perf_counter() - t) / N
        rows.append({"case": name, "JF": jf, "s/frame": spf})
        print(f"{name:40s} J&F {jf:.3f}  {spf:.3f} s/frame", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--davis", action="store_true", help="only the DAVIS table, default settings")
    parser.add_argument("--strips", type=Path, help="with --davis: write mask strips (PNG) here")
    parser.add_argument("--lookalikes", action="store_true", help="only the look-alike table")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    if args.lookalikes:
        rows = lookalike_table(args.data)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 0
    if args.davis:
        rows = davis_table(args.data, args.strips)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 0
    background = cv2.cvtColor(cv2.imread(str(args.data / "davis" / "tennis" / "00000.png")), cv2.COLOR_BGR2RGB)
    rows = []
    for threshold in (0.3, 0.5, 0.7):
        for window in (4, 8, 16):
            options = MaskerOptions(threshold=threshold, clip_window=window)
            row = {"threshold": threshold, "clip_window": window}
            for name, (jf, spf) in run_synthetic(background, options).items():
                row[f"syn {name}"] = jf
                row.setdefault("s/frame synthetic", []).append(spf)
            for clip in ("bmx-trees", "tennis"):
                for tracker in ("prior", "reseg+grabcut", "reseg"):
                    jf, spf = run_davis(args.data, clip, options, tracker)
                    row[f"{clip} ({tracker})"] = jf
                    row[f"s/frame {clip} ({tracker})"] = spf
            row["s/frame synthetic"] = float(np.mean(row["s/frame synthetic"]))
            rows.append(row)
            print(
                " | ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
