"""Sequential vs overlapped (streaming) erase pass, side by side, masks given.

    python -m benchmarks.streaming_speed [--frames 96] [--sizes 240p 1080p] [--modes sequential streaming]
        [--before-tree DIR] [--threads N] [--repeat K]

For each source size: the clip of benchmarks/pipeline_speed.py (running_car.mp4
resized, H.264, a moving elliptical mask), run once per mode in a fresh
process, modes interleaved so that load from other users of the machine falls
on all of them alike. Modes: "sequential" and "streaming" are
Pipeline(streaming=False/True) of this checkout; "before" runs the code in
--before-tree (e.g. `git archive <commit> | tar -x -C DIR`, then copy this file
into DIR/benchmarks), the code before the streaming pass existed. Prints wall s/frame, CPU s/frame, cores busy (CPU / wall), the time
each part spent (in streaming mode the parts overlap, so they add up to more
than the wall time) and peak RSS. The working height is the balanced preset's
432 lines (a 432x240 source is erased at its own size).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.pipeline_speed import make_clip

SIZES = {"240p": (432, 240), "720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}


def run_one(clip: str, masks: str, output: str, mode: str, threads: int) -> dict:
    """Runs in a child process: one job, its wall and CPU time and peak memory."""
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request
    from peanut_server.progress import Reporter

    request = pb.SubmitRequest(
        source=pb.MediaRange(path=clip),
        mask=pb.MaskSpec(mask_path=masks),
        options=pb.Options(working_height=432),
        output=pb.OutputSpec(path=output, overwrite=True),
    )
    # Before the streaming change Pipeline took no `streaming` argument: that code is "sequential".
    takes_mode = "streaming" in inspect.signature(Pipeline).parameters
    if takes_mode:
        pipeline = Pipeline(streaming=mode == "streaming", threads=threads or None)
    elif mode == "before":
        pipeline = Pipeline()
    else:
        raise SystemExit("this checkout has no streaming mode")
    cpu0, wall0 = time.process_time(), time.monotonic()
    result = pipeline.run(spec_from_request(request), Reporter())
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    n = result.frame_count
    return {
        "frames": n,
        "s_per_frame": round(wall / n, 4),
        "cpu_s_per_frame": round(cpu / n, 4),
        "cores_busy": round(cpu / wall, 2),
        "parts_s_per_frame": {k: round(v / n, 4) for k, v in result.timings.items()},
        "backends": {r.stage: r.backend for r in result.backends},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--sizes", nargs="+", default=["240p", "1080p"], choices=list(SIZES))
    parser.add_argument(
        "--modes", nargs="+", default=["sequential", "streaming"], choices=["before", "sequential", "streaming"]
    )
    parser.add_argument("--before-tree", help="checkout whose code the 'before' mode runs")
    parser.add_argument("--threads", type=int, default=0, help="OpenCV/torch threads (0: the pipeline's default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode (interleaved)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        *paths, mode, threads = args.child
        print(json.dumps(run_one(*paths, mode, int(threads))))
        return
    if "before" in args.modes and not args.before_tree:
        parser.error("--modes before needs --before-tree")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes:
            clip, masks = make_clip(Path(tmp), SIZES[name], args.frames)
            for k in range(args.repeat):
                for mode in args.modes:
                    tree = Path(args.before_tree).resolve() if mode == "before" else Path(__file__).parents[1]
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.streaming_speed",
                            "--child",
                            str(clip),
                            str(masks),
                            str(Path(tmp) / f"out_{name}_{mode}_{k}"),
                            mode,
                            str(args.threads),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=tree,
                        env={**os.environ, "PYTHONPATH": str(tree)},
                    )
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    row.update(source=name, mode=mode)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(
        f"{'source':7s} {'mode':10s} {'s/frame':>8s} {'cpu s/f':>8s} {'cores':>6s} {'decode':>7s} {'erase':>7s} "
        f"{'upscale':>8s} {'compos.':>8s} {'write':>7s} {'peak MB':>8s}"
    )
    for r in rows:
        p = r["parts_s_per_frame"]
        print(
            f"{r['source']:7s} {r['mode']:10s} {r['s_per_frame']:8.3f} {r['cpu_s_per_frame']:8.3f} "
            f"{r['cores_busy']:6.2f} {p.get('decode', 0):7.3f} {p.get('erase', 0):7.3f} {p.get('upscale', 0):8.3f} "
            f"{p.get('composite', 0):8.3f} {p.get('write', 0):7.3f} {r['peak_rss_mb']:8d}"
        )


if __name__ == "__main__":
    main()
