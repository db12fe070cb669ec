"""One long clip through the Ray executor with 1 and 2 workers (a local runtime), and through the local executor.

    python -m benchmarks.ray_speed [--frames 96] [--size 432x240] [--workers 1 2] [--window 24]

The clip of benchmarks/pipeline_speed.py (running_car.mp4 resized, H.264, a
moving elliptical mask), masks given. Each Ray run starts its own local
runtime with `--workers` CPUs (one erase task per CPU) and stops it; the time
counted is the job's own (runtime start excluded, worker start-up included).
Prints wall s/frame per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.pipeline_speed import make_clip


def run(clip: Path, masks: Path, output: Path, window: int, executor) -> float:
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request
    from peanut_server.progress import Reporter

    request = pb.SubmitRequest(
        source=pb.MediaRange(path=str(clip)),
        mask=pb.MaskSpec(mask_path=str(masks)),
        options=pb.Options(subvideo_length=window),
        output=pb.OutputSpec(path=str(output)),
    )
    started = time.monotonic()
    result = Pipeline(executor=executor).run(spec_from_request(request), Reporter())
    return (time.monotonic() - started) / result.frame_count


def main() -> None:
    from peanut_server.pipeline.executor import RayExecutor, RayOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", default="432x240")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--window", type=int, default=24, help="subvideo_length (frames per window)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip, masks = make_clip(Path(tmp), size, args.frames)
        rows.append(
            {"executor": "local", "s_per_frame": round(run(clip, masks, Path(tmp) / "local", args.window, None), 4)}
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
        for workers in args.workers:
            executor = RayExecutor(RayOptions(address="local", local_cpus=workers))
            executor.start()
            try:
                seconds = run(clip, masks, Path(tmp) / f"ray{workers}", args.window, executor)
            finally:
                executor.shutdown()
            rows.append({"executor": f"ray, {workers} worker(s)", "s_per_frame": round(seconds, 4)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"{args.size}, {args.frames} frames, windows of {args.window}")
    for row in rows:
        print(f"{row['executor']:20s} {row['s_per_frame']:8.3f} s/frame")


if __name__ == "__main__":
    main()
