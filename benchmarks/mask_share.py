"""How much of a job is the mask pass, with masks given and with a box prompt (issue 17, point 2).

    python -m benchmarks.mask_share [--frames 48] [--size 1080p] [--window N]

Streaming, the mask pass runs beside the erase pass, and each eraser window
starts once its own masks are made: the first window still waits for its
masks, so only the masking of later windows is hidden (with the preset's
80-frame window a clip of 70 frames is one window: nothing to hide; --window
sets a shorter one). "masking" is the mask pass's own wall time, overlapped
with the erase pass where it streams. This measures the masking share on real
footage: DAVIS tennis (a player, moving, with its own masks), scaled to the
size as H.264. Two jobs, each in a fresh process, preset balanced:

- masks given: the clip's own masks (the external masker reads them);
- box prompt: a box around the player on the first frame (the no-weights
  motion masker tracks it: flow warping plus GrabCut, at working resolution).

Prints, per job, the wall time and its parts (RemovalResult.timings: masking,
erase pass, matte, commit) per frame and as a share of the wall time, the
process's CPU seconds, and the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.floor import DATA, REPO, SIZES, _usage
from peanut_server.masker.candidates import bounding_box

PARTS = ("masking", "erase pass", "matte", "commit")


def make_clip(folder: Path, size: tuple[int, int], frames: int) -> tuple[Path, Path, tuple[int, int, int, int]]:
    """DAVIS tennis scaled to `size` (H.264), its masks at that size, and the box around the first mask."""
    clip, masks = folder / "tennis.mp4", folder / "masks"
    masks.mkdir()
    names = sorted((DATA / "davis" / "tennis").glob("*.png"))[:frames]
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "g": "25"}
        for t, name in enumerate(names):
            rgb = cv2.cvtColor(cv2.imread(str(name)), cv2.COLOR_BGR2RGB)
            image = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
            mask = cv2.imread(str(DATA / "davis" / "tennis_mask" / name.name), cv2.IMREAD_GRAYSCALE)
            mask = cv2.resize((mask > 127).astype(np.uint8) * 255, size, interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(masks / f"m{t:04d}.png"), mask)
        for packet in stream.encode():
            out.mux(packet)
    first = cv2.imread(str(masks / "m0000.png"), cv2.IMREAD_GRAYSCALE) > 127
    return clip, masks, bounding_box(first)


def run_job(clip: str, output: str, masks: str, box: str, window: str = "0") -> dict:
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request
    from peanut_server.progress import Reporter

    usage = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF)
    cpu0, started = usage.ru_utime + usage.ru_stime, time.monotonic()
    if masks:
        mask = pb.MaskSpec(mask_path=masks)
    else:
        x0, y0, x1, y1 = (float(v) for v in box.split(","))
        mask = pb.MaskSpec(frame_prompts=[pb.FramePrompt(frame=0, box=pb.Box(x0=x0, y0=y0, x1=x1, y1=y1))])
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=clip),
        mask=mask,
        options=pb.Options(preset=pb.PRESET_BALANCED, **({"subvideo_length": int(window)} if int(window) else {})),
        output=pb.OutputSpec(path=output, overwrite=True),
    )
    result = Pipeline().run(spec_from_request(request), Reporter())
    row = {"frames": result.frame_count, **_usage(started, cpu0), "timings_s": dict(result.timings)}
    row["backends"] = {r.stage: r.backend for r in result.backends}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="1080p", choices=list(SIZES))
    parser.add_argument("--window", type=int, default=0, help="eraser window in frames (0: the preset's)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_job(*args.child)))
        return
    load_before = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="peanut-maskshare-") as tmp:
        clip, masks, box = make_clip(Path(tmp), SIZES[args.size], args.frames)
        jobs = {"masks given": (str(masks), ""), "box prompt": ("", ",".join(map(str, box)))}
        for name, (mask_arg, box_arg) in jobs.items():
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.mask_share", "--child", str(clip), str(Path(tmp) / name)]
                + [mask_arg or "-", box_arg or "-", str(args.window)],
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    load_after = os.getloadavg()
    window = f", {args.window}-frame windows" if args.window else ""
    print(
        f"DAVIS tennis at {args.size}, {args.frames} frames{window}; load {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    print(f"{'job':>12s} {'wall s/f':>9s} " + " ".join(f"{p:>16s}" for p in PARTS) + f" {'CPU s/f':>8s}  masker")
    for name, row in rows.items():
        n, wall = row["frames"], row["wall_s"]
        parts = " ".join(
            f"{row['timings_s'].get(p, 0.0) / n:7.3f} ({100 * row['timings_s'].get(p, 0.0) / wall:4.0f} %)"
            for p in PARTS
        )
        print(f"{name:>12s} {wall / n:9.3f} {parts} {row['cpu_s'] / n:8.3f}  {row['backends']['masker']}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        # "-" stands for an empty argument on the command line.
        sys.argv = [a if a != "-" else "" for a in sys.argv]
    main()
