"""Eraser speed and memory (a benchmark, not a test).

    python benchmarks/eraser_speed.py [--frames 80] [--memory]

1. 432x240 frames in memory -> filled frames with the flowguided eraser, DIS
   flow, through windows of 80 frames (overlap 10) as the pipeline runs it:
   frames per second, wall and CPU.
2. 720p and 1080p sources (running_car resized up) processed at 432 and 540
   working lines: resize down, erase, resize the fill up and composite it into
   the source inside the feathered mask: frames per second end to end.
3. --memory: peak traced memory (tracemalloc: numpy buffers included) of a
   200-frame and a 2,000-frame 432x240 clip streamed through the windows.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _eraser_common import DATA, erase_windows, read_clip, read_mask  # noqa: E402

from peanut_server.eraser.base import EraserOptions  # noqa: E402
from peanut_server.eraser.flowguided import FlowGuidedEraser  # noqa: E402
from peanut_server.pipeline.composite import composite, feather_alpha, working_size  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402

CLIP = DATA / "completion" / "running_car.mp4"
MASK = DATA / "completion" / "mask_square.png"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_working(frames: np.ndarray, mask: np.ndarray) -> None:
    masks = np.repeat(mask[None], len(frames), axis=0)
    eraser = FlowGuidedEraser()
    eraser.erase(frames[:6], masks[:6], EraserOptions(), Reporter())  # warm-up (imports, first allocations)
    _, wall, cpu = timed(lambda: list(erase_windows(frames, masks, eraser, EraserOptions())))
    print(
        f"432x240, {len(frames)} frames, DIS: {len(frames) / wall:.1f} frames/s wall "
        f"({wall / len(frames) * 1000:.0f} ms/frame, CPU {cpu / len(frames) * 1000:.0f} ms/frame)"
    )


def bench_source(frames_540: np.ndarray, mask_240: np.ndarray, source_h: int, working_h: int) -> None:
    src_w = int(round(frames_540.shape[2] * source_h / frames_540.shape[1]))
    src_w -= src_w % 2
    sources = np.stack([cv2.resize(f, (src_w, source_h), interpolation=cv2.INTER_CUBIC) for f in frames_540])
    mask_src = cv2.resize(mask_240.astype(np.uint8), (src_w, source_h), interpolation=cv2.INTER_NEAREST) > 0
    work = working_size(src_w, source_h, working_h)
    eraser = FlowGuidedEraser()

    def run():
        small = np.stack([cv2.resize(f, work, interpolation=cv2.INTER_AREA) for f in sources])
        mask_small = cv2.resize(mask_src.astype(np.float32), work, interpolation=cv2.INTER_AREA) > 0
        masks = np.repeat(mask_small[None], len(small), axis=0)
        filled = list(erase_windows(small, masks, eraser, EraserOptions()))
        alpha = feather_alpha(mask_src, 3)
        return [
            composite(s, cv2.resize(f, (src_w, source_h), interpolation=cv2.INTER_LANCZOS4), alpha)
            for s, f in zip(sources, filled)
        ]

    _, wall, cpu = timed(run)
    n = len(sources)
    print(
        f"{src_w}x{source_h} source at {work[0]}x{work[1]}: {n / wall:.1f} frames/s wall "
        f"({wall / n * 1000:.0f} ms/frame, CPU {cpu / n * 1000:.0f} ms/frame)"
    )


def bench_memory(frames: np.ndarray, mask: np.ndarray, count: int) -> float:
    eraser = FlowGuidedEraser()
    source = itertools.islice(itertools.cycle(frames), count)
    masks = itertools.repeat(mask, count)
    tracemalloc.start()
    done = 0
    started = time.perf_counter()
    for _ in erase_windows(source, masks, eraser, EraserOptions()):
        done += 1  # output frames are dropped, as a sink writes and forgets them
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{count} frames streamed ({done} out) in {time.perf_counter() - started:.0f}s: "
        f"peak traced memory {peak / 2**20:.0f} MiB, max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--memory", action="store_true", help="also the 200 vs 2,000 frame memory test (minutes)")
    parser.add_argument("--skip-sources", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    frames = read_clip(CLIP, args.frames, (432, 240))
    mask = read_mask(MASK, (432, 240))
    bench_working(frames, mask)
    if not args.skip_sources:
        frames_540 = read_clip(CLIP, min(args.frames, 40))
        for source_h in (720, 1080):
            for working_h in (432, 540):
                bench_source(frames_540, mask, source_h, working_h)
    if args.memory:
        small = bench_memory(frames, mask, 200)
        large = bench_memory(frames, mask, 2000)
        print(f"peak 2000 / peak 200 = {large / small:.2f} (must stay within 1.5)")


if __name__ == "__main__":
    main()
