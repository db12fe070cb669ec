"""The no-weights tracker on held-out real clips: the table for issue 11's "after".

For each clip of tests/data/annotated (five DAVIS 2016 clips with moving backgrounds, two
of our own with hand-checked masks) it runs `peanut mask CLIP --local` twice, from the
frame-0 box a user would draw (--box) and from the true frame-0 mask (--mask --mask-frame 0),
and for the look-alike cases of tests/heldout.py it runs the prompt with --approximate.
Prints J&F, the do-nothing baseline (the true frame-0 mask repeated), seconds per frame
(wall time of the whole command: decode, masking, PNG writing) and J per frame, and writes
a strip per clip (true outline green, the tracker's red) and a JSON file.

    python benchmarks/masker_heldout.py [--out out/masker_heldout] [--only CLIP ...] [--box-seeds 1 2 3 4]

--box-seeds reruns the box runs with other masker seeds (the seed starts GrabCut's k-means in
the box's first cut; the mask runs do not use it) and prints each clip's box J&F per seed: a
clip whose figure moves much with the seed is on a knife edge, whatever its seed-0 figure.

CPU only. The tracker was not tuned on these clips, except breakdance since 2026-12-01
(tests/data/annotated/SOURCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peanut_server.metrics.masks import evaluate  # noqa: E402
from tests.heldout import (  # noqa: E402
    CLIPS,
    LOOKALIKES,
    composite_lookalikes,
    read_video,
    repeat_first,
    run_lookalike,
    strip,
    track_from_box,
    track_from_mask,
    truth,
)


def per_frame(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def measure_clip(clip: str, work: Path, out: Path) -> dict:
    true = truth(clip)
    baseline = evaluate(repeat_first(true), true)
    runs = {"box": track_from_box(clip, work / clip / "box"), "mask": track_from_mask(clip, work / clip / "mask")}
    row: dict = {"clip": clip, "frames": len(true), "repeat_frame0": baseline.as_dict()}
    for how, run in runs.items():
        scores = evaluate(run.masks, true)
        row[f"from_{how}"] = {
            **scores.as_dict(),
            "per_frame_J": scores.per_frame_J,
            "seconds_per_frame": run.seconds_per_frame,
            "warnings": run.warnings,
        }
    frames = read_video(CLIPS[clip])
    picture = strip(frames, true, {"box": runs["box"].masks, "mask": runs["mask"].masks})
    cv2.imwrite(str(out / f"{clip}.png"), picture)
    return row


def measure_lookalike(name: str, work: Path, out: Path) -> dict:
    case = LOOKALIKES[name]
    run, target = run_lookalike(case, work / name.replace(" ", "_"))
    scores = evaluate(run.masks, target)
    baseline = evaluate(repeat_first(target), target)
    frames, _ = composite_lookalikes(case)
    cv2.imwrite(str(out / f"lookalike_{name.replace(' ', '_')}.png"), strip(frames, target, {"prompt": run.masks}))
    return {
        "case": name,
        "prompt": case.prompt,
        "background": case.clip,
        "repeat_frame0": baseline.as_dict(),
        "from_prompt": {
            **scores.as_dict(),
            "per_frame_J": scores.per_frame_J,
            "seconds_per_frame": run.seconds_per_frame,
            "warnings": run.warnings,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "masker_heldout")
    parser.add_argument("--only", nargs="*", help="clips or look-alike cases to run (default: all)")
    parser.add_argument("--box-seeds", nargs="*", type=int, default=[], help="other masker seeds for the box runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only or [])
    clips = [c for c in CLIPS if not wanted or c in wanted]
    lookalikes = [n for n in LOOKALIKES if not wanted or n in wanted]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at start",
        "clips": [],
        "lookalikes": [],
    }
    with tempfile.TemporaryDirectory(prefix="masker_heldout_") as tmp:
        work = Path(tmp)
        print(f"{'clip':<15} {'frames':>6} {'repeat0':>8} {'box J&F':>8} {'mask J&F':>8} {'s/frame':>8}")
        for clip in clips:
            row = measure_clip(clip, work, args.out)
            result["clips"].append(row)
            box, mask = row["from_box"], row["from_mask"]
            print(
                f"{clip:<15} {row['frames']:>6} {row['repeat_frame0']['J&F']:>8.3f} {box['J&F']:>8.3f} "
                f"{mask['J&F']:>8.3f} {(box['seconds_per_frame'] + mask['seconds_per_frame']) / 2:>8.3f}"
            )
            print(f"    J from box : {per_frame(box['per_frame_J'])}")
            print(f"    J from mask: {per_frame(mask['per_frame_J'])}")
            for warning in box["warnings"] + mask["warnings"]:
                print(f"    {warning}")
            if args.box_seeds:
                true = truth(clip)
                row["box_by_seed"] = {"0": box["J&F"]}
                for seed in args.box_seeds:
                    run = track_from_box(clip, work / clip / f"box_seed{seed}", seed)
                    row["box_by_seed"][str(seed)] = evaluate(run.masks, true).JF
                print("    box J&F by seed: " + " ".join(f"{k}:{v:.3f}" for k, v in row["box_by_seed"].items()))
        if lookalikes:
            print(f"\n{'look-alike':<26} {'repeat0':>8} {'J&F':>8} {'s/frame':>8}  prompt")
        for name in lookalikes:
            row = measure_lookalike(name, work, args.out)
            result["lookalikes"].append(row)
            got = row["from_prompt"]
            print(
                f"{name:<26} {row['repeat_frame0']['J&F']:>8.3f} {got['J&F']:>8.3f} "
                f"{got['seconds_per_frame']:>8.3f}  {row['prompt']!r}"
            )
            print(f"    J: {per_frame(got['per_frame_J'])}")
            for warning in got["warnings"]:
                print(f"    {warning}")
    (args.out / "masker_heldout.json").write_text(json.dumps(result, indent=1))
    print(f"\n{result['machine']}; strips and JSON in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
