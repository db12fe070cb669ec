"""Rebuild the no-weights tracker's tuning clips from the local DAVIS 2016 git mirror.

The tracker is tuned on these (plus davis/tennis and davis/bmx-trees in ../shared/data) and
checked at the end on held-out clips it never saw (benchmarks/masker_heldout.py). Only the
sequences in ALLOWED may be used here; the held-out ones must stay out.

Frames are resized to 432x240 with INTER_AREA; masks are area-resized and thresholded at 127.

    python benchmarks/masker_tuning_clips.py [--mirror /work/.mirror/MathLee+EOR-VOS/repo] [--out tuning]
    python benchmarks/masker_tuning_clips.py --mirror /work/.mirror/xmican10+KNN-project/repo --rev custom bear ...

The second mirror (xmican10/KNN-project, branch custom) holds all 50 DAVIS 2016 sequences
(854x480 JPEG frames, 0/255 PNG masks); its training-set sequences in MORE_CLIPS widen the
tuning set (2026-12-01).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import cv2
import numpy as np

# Approaching / scale-changing cars, fast and deformable motion: the failure modes measured
# on the held-out clips, seen here on clips that are not held out. goat is held-out
# breakdance's failure on a clip that may be tuned on: the camera follows the goat, and the
# mask slides onto look-alike rocks whose parallax is the only motion "unlike the camera".
CLIPS = (
    "drift-straight", "car-shadow", "parkour", "motocross-jump", "dog", "horsejump-high", "goat", "kite-surf", "camel",
)  # fmt: skip
# car-roundabout, drift-chicane, cows, blackswan and paragliding-launch were allowed here but
# never built; since 2026-12-01 they are the second held-out batch (tests/data/annotated).
# DAVIS 2016 training sequences first used on 2026-12-01, for the box's first cut. Split by
# name before any was looked at: these may be tuned on; lucia, mallard-fly, motocross-bumps,
# rhino, soccerball and stroller are the third held-out batch and must stay out.
MORE_CLIPS = (
    "bear", "bmx-bumps", "boat", "breakdance-flare", "bus", "car-turn", "dance-jump", "dog-agility", "drift-turn",
    "elephant", "flamingo", "hike", "hockey", "horsejump-low", "kite-walk", "mallard-water", "motorbike",
    "paragliding", "rollerblade", "scooter-gray", "surf", "swing", "train",
)  # fmt: skip
ALLOWED = {
    "car-shadow", "drift-straight", "motocross-jump", "horsejump-high", "parkour", "kite-surf", "dog", "goat", "camel",
    *MORE_CLIPS,
}  # fmt: skip
SIZE = (432, 240)


def _git_show(mirror: Path, path: str, rev: str = "HEAD") -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={mirror}", "show", f"{rev}:{path}"], check=True, capture_output=True
    ).stdout


def _git_ls(mirror: Path, path: str, rev: str = "HEAD") -> list[str]:
    out = subprocess.run(
        ["git", f"--git-dir={mirror}", "ls-tree", "--name-only", f"{rev}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(out.split())


def extract(mirror: Path, out: Path, clip: str, rev: str = "HEAD") -> int:
    if clip not in ALLOWED:
        raise SystemExit(f"{clip} is not an allowed tuning sequence")
    return extract_sequence(mirror, out, clip, rev)


def extract_sequence(mirror: Path, out: Path, clip: str, rev: str = "HEAD") -> int:
    """Any DAVIS 2016 sequence of the mirror as 432x240 frames and masks (no tuning check: for
    benchmarks/masker_davis2016.py, which measures and is not tuned on)."""
    frames_dir, masks_dir = out / clip, out / f"{clip}_mask"
    frames_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in _git_ls(mirror, f"DAVIS/JPEGImages/480p/{clip}", rev) if n.endswith(".jpg")]
    for name in names:
        stem = Path(name).stem
        jpg = np.frombuffer(_git_show(mirror, f"DAVIS/JPEGImages/480p/{clip}/{name}", rev), np.uint8)
        frame = cv2.resize(cv2.imdecode(jpg, cv2.IMREAD_COLOR), SIZE, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(frames_dir / f"{stem}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        png = np.frombuffer(_git_show(mirror, f"DAVIS/Annotations/480p/{clip}/{stem}.png", rev), np.uint8)
        mask = cv2.imdecode(png, cv2.IMREAD_GRAYSCALE)
        small = cv2.resize(mask, SIZE, interpolation=cv2.INTER_AREA) > 127
        cv2.imwrite(str(masks_dir / f"{stem}.png"), small.astype(np.uint8) * 255)
    return len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror/MathLee+EOR-VOS/repo"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tuning")
    parser.add_argument("--rev", default="HEAD", help="the mirror's branch or commit to read")
    parser.add_argument("clips", nargs="*", default=list(CLIPS))
    args = parser.parse_args()
    for clip in args.clips:
        print(f"{clip}: {extract(args.mirror, args.out, clip, args.rev)} frames", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
