"""End-to-end speed and memory of a removal job at editor resolutions.

    python -m benchmarks.pipeline_speed [--frames 100] [--sizes 1080p 4K] [--heights 432 540]

For each source size and working height: a clip made from running_car.mp4
(upscaled, H.264) with a moving elliptical mask, run through the pipeline
in a fresh process (so peak memory is that run's own); prints s/frame, the
share of each part (decode, erase, upscale, composite = compositing + PNG
writing) and the peak resident memory. Quality is not measured here.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SIZES = {"1080p": (1920, 1080), "4K": (3840, 2160)}
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_clip(folder: Path, size: tuple[int, int], frames: int) -> tuple[Path, Path]:
    width, height = size
    clip, masks = folder / f"clip_{height}.mp4", folder / f"masks_{height}"
    masks.mkdir(exist_ok=True)
    with av.open(str(DATA / "completion" / "running_car.mp4")) as src, av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "16", "preset": "ultrafast"}
        for t, frame in enumerate(src.decode(video=0)):
            if t == frames:
                break
            image = cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_CUBIC)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
            mask = np.zeros((height, width), np.uint8)
            cv2.ellipse(
                mask,
                (int(width * (0.3 + 0.4 * t / frames)), int(height * 0.6)),
                (width // 14, height // 9),
                0,
                0,
                360,
                255,
                -1,
            )
            cv2.imwrite(str(masks / f"m{t:04d}.png"), mask)
        for packet in stream.encode():
            out.mux(packet)
    return clip, masks


def run_one(clip: str, masks: str, output: str, working_height: int, upscaler: str) -> dict:
    """Runs in a child process: one job, its timings and peak memory."""
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request
    from peanut_server.progress import Reporter

    request = pb.SubmitRequest(
        source=pb.MediaRange(path=clip),
        mask=pb.MaskSpec(mask_path=masks),
        options=pb.Options(working_height=working_height, upscaler=upscaler),
        output=pb.OutputSpec(path=output, overwrite=True),
    )
    result = Pipeline().run(spec_from_request(request), Reporter())
    return {
        "frames": result.frame_count,
        "seconds": round(result.seconds, 2),
        "s_per_frame": round(result.seconds / result.frame_count, 3),
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        "backends": {r.stage: r.backend for r in result.backends},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sizes", nargs="+", default=["1080p", "4K"], choices=list(SIZES))
    parser.add_argument("--heights", nargs="+", type=int, default=[432, 540])
    parser.add_argument("--upscaler", default="auto")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        clip, masks, output, height, upscaler = args.child
        print(json.dumps(run_one(clip, masks, output, int(height), upscaler)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes:
            clip, masks = make_clip(Path(tmp), SIZES[name], args.frames)
            for height in args.heights:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.pipeline_speed",
                        "--child",
                        str(clip),
                        str(masks),
                        str(Path(tmp) / f"out_{name}_{height}"),
                        str(height),
                        args.upscaler,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row.update(source=name, working_height=height)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(
        f"{'source':7s} {'work':>5s} {'frames':>6s} {'s/frame':>8s} {'decode':>7s} {'erase':>7s} "
        f"{'upscale':>8s} {'compos.':>8s} {'peak MB':>8s}  backends"
    )
    for r in rows:
        t, total = r["timings"], max(r["seconds"], 1e-9)
        share = {k: f"{100 * t.get(k, 0) / total:.0f}%" for k in ("decode", "erase", "upscale", "composite")}
        print(
            f"{r['source']:7s} {r['working_height']:5d} {r['frames']:6d} {r['s_per_frame']:8.3f} "
            f"{share['decode']:>7s} {share['erase']:>7s} {share['upscale']:>8s} {share['composite']:>8s} "
            f"{r['peak_rss_mb']:8d}  {r['backends']}"
        )


if __name__ == "__main__":
    main()
