"""The held-out DAVIS clips at the source's 24 fps, under the held-out test's floors.

tests/data/annotated keeps most DAVIS clips at 12 fps (every 2nd frame) to stay small. An
editor's footage runs at 24-30 fps, and the no-weights tracker does not simply do better with
smaller steps: some clips pass only at one rate. This rebuilds each DAVIS clip of
tests/data/annotated/make_davis_clips.py over the same time span at every frame (in a
temporary folder; nothing is written to the repository), tracks it from the frame-0 box and
from the frame-0 mask as tests/test_masker_heldout.py does, and prints J&F against the
do-nothing baseline and the floors (box: repeat-frame-0 + 0.05 and 0.40; mask: + 0.10 and 0.50).

    python benchmarks/masker_heldout_full_rate.py DAVIS_DIR [--strips OUT] [CLIP ...]

DAVIS_DIR holds JPEGImages/480p/<seq>/ and Annotations/480p/<seq>/ (a DAVIS 2016 480p tree;
tests/data/annotated/make_davis_clips.py says how to export one from the git mirrors). CPU only.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "data" / "annotated"))

import make_davis_clips  # noqa: E402

from peanut_server.metrics.masks import evaluate  # noqa: E402
from tests.heldout import (  # noqa: E402
    FLOOR_FROM_BOX,
    FLOOR_FROM_MASK,
    read_masks,
    read_video,
    repeat_first,
    strip,
    track_video_from_box,
    track_video_from_mask,
)

FLOORS = {"box": FLOOR_FROM_BOX, "mask": FLOOR_FROM_MASK}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("davis", type=Path, help="a DAVIS 2016 480p tree")
    parser.add_argument("--strips", type=Path, help="write a strip per clip here (truth green, tracker red)")
    parser.add_argument("clips", nargs="*", help="clips to run (default: every DAVIS clip of the held-out set)")
    args = parser.parse_args()
    names = args.clips or list(make_davis_clips.CLIPS)
    unknown = [n for n in names if n not in make_davis_clips.CLIPS]
    if unknown:
        raise SystemExit(f"not a held-out DAVIS clip: {', '.join(unknown)}")
    if args.strips:
        args.strips.mkdir(parents=True, exist_ok=True)
    print(f"{'clip':<20} {'frames':>6} {'repeat0':>8} {'box J&F':>8} {'':4} {'mask J&F':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in names:
            sequence, step, count = make_davis_clips.CLIPS[name]
            make_davis_clips.write_clip(args.davis, work, name, sequence, 1, count * step)
            video, true = work / f"{name}.mp4", read_masks(work / f"{name}_mask")
            baseline = evaluate(repeat_first(true), true).JF
            runs = {
                "box": track_video_from_box(video, true[0], work / name / "box"),
                "mask": track_video_from_mask(video, work / f"{name}_mask" / "00000.png", work / name / "mask"),
            }
            cells = []
            for how, run in runs.items():
                score = evaluate(run.masks, true).JF
                margin, absolute = FLOORS[how]
                cells.append(f"{score:8.3f} {'ok' if score >= max(baseline + margin, absolute) else 'FAIL':4}")
            print(f"{name:<20} {len(true):>6} {baseline:8.3f} " + " ".join(cells), flush=True)
            if args.strips:
                picture = strip(read_video(video), true, {how: run.masks for how, run in runs.items()})
                cv2.imwrite(str(args.strips / f"{name}.png"), picture)
    print(f"\n{platform.machine()}, 24 fps (every DAVIS frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
