"""What synthesis of never-seen pixels costs (a benchmark, not a test).

    python -m benchmarks.eraser_synthesis [--frames 60]

1. Moving holes (seeded ellipses, 5-12 % of the frame, as the quality test)
   on DAVIS bmx-trees and tennis at 432x240: the flow-guided eraser's frames
   per second with the default inpainter (auto: synthesis without LaMa) and
   with Telea for never-seen pixels, and how many pixels were invented.
2. One keyframe: SynthesisInpainter.fill on a 64x40 logo hole and on a
   person-sized hole (80x150) of a 432x240 frame, against cv2.inpaint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peanut_server.eraser.base import EraserOptions  # noqa: E402
from peanut_server.eraser.flowguided import FlowGuidedEraser  # noqa: E402
from peanut_server.eraser.synthesis import SynthesisInpainter  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402

DATA = Path(os.environ.get("PEANUT_SHARED_DATA", REPO.parent / "shared" / "data"))


def read_davis(clip: str, count: int) -> np.ndarray:
    files = sorted((DATA / "davis" / clip).iterdir())[:count]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def moving_masks(count: int, seed: int, shape: tuple[int, int]) -> np.ndarray:
    sys.path.insert(0, str(REPO / "tests"))
    from test_eraser_quality import moving_masks as masks  # the quality test's own holes

    return masks(count, seed=seed, shape=shape)


def bench_moving(frames_per_clip: int) -> None:
    print(f"moving holes, 432x240, {frames_per_clip} frames per clip")
    for inpainter in ("auto", "opencv"):
        total_frames, total_wall, total_cpu = 0, 0.0, 0.0
        for clip in ("bmx-trees", "tennis"):
            frames = read_davis(clip, frames_per_clip)
            masks = moving_masks(len(frames), seed=0, shape=frames.shape[1:3])
            damaged = frames.copy()
            damaged[masks] = 0
            eraser = FlowGuidedEraser()
            eraser.erase(damaged[:6], masks[:6], EraserOptions(inpainter=inpainter), Reporter())  # warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            eraser.erase(damaged, masks, EraserOptions(inpainter=inpainter), Reporter())
            total_wall += time.perf_counter() - wall
            total_cpu += time.process_time() - cpu
            total_frames += len(frames)
        print(
            f"  inpainter={inpainter:7s} {total_frames / total_wall:5.2f} frames/s "
            f"(wall {total_wall:.1f} s, CPU {total_cpu:.1f} s)"
        )


def bench_keyframe() -> None:
    frame = read_davis("tennis", 1)[0]
    synthesis = SynthesisInpainter()
    print("one keyframe, 432x240")
    for name, (x, y, w, h) in (("logo 64x40", (300, 150, 64, 40)), ("person 80x150", (170, 60, 80, 150))):
        hole = np.zeros(frame.shape[:2], bool)
        hole[y : y + h, x : x + w] = True
        start = time.perf_counter()
        synthesis.fill(frame, hole)
        synth = time.perf_counter() - start
        start = time.perf_counter()
        cv2.inpaint(frame, hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
        telea = time.perf_counter() - start
        print(f"  {name:14s} synthesis {synth:.2f} s, telea {telea:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores")
    bench_keyframe()
    bench_moving(args.frames)


if __name__ == "__main__":
    main()
