"""How far a removal job is from the floor: decoding the clip and writing its frames.

    python -m benchmarks.floor [--sizes 240p 720p 1080p 4K] [--frames N] [--preset balanced] [--video .mov]

For each source size, a clip made from real footage (shared data's
running_car.mp4, scaled to the size, H.264 as a camera or an editor's proxy
gives it) with moving elliptical masks covering 6 % of the frame at the first
frame and 12 % at the last. Two runs, each in a fresh process (so its peak
memory is its own):

- floor: the pipeline's own decoder (PyAV, peanut_server.media.open_source)
  and its own writer (FrameSink, a PNG sequence, committed), nothing between;
- pipeline: the in-process Pipeline that `peanut remove --local --mask` runs,
  with the masks given, the preset's defaults, the default (alpha) matte.

Outputs are PNG folders, or with --video a video of that kind (the floor's
too, and the pipeline's matte).

Prints and saves per-stage s/frame (the pipeline's own RemovalResult.timings),
the ratio to the floor, peak RSS and CPU utilisation (process CPU time / wall /
cores). Writes benchmarks/results/floor-<time>.json and .png. Default frame
counts keep the whole run under ten minutes on a 2-core machine; --frames sets
one count for every size (96 matches the issue's 1080p measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PEANUT_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
SIZES = {"240p": (432, 240), "720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
# Frames per size by default: enough for several eraser steps, small enough for < 10 min in all.
DEFAULT_FRAMES = {"240p": 48, "720p": 32, "1080p": 24, "4K": 10}
PRESETS = ("draft", "balanced", "quality")
# The pipeline's parts in the order they run, one after another (RemovalResult.timings keys):
# they add up to the wall time, "other" being the rest (opening the job, checks, imports).
STAGES = ("masking", "erase pass", "matte", "commit", "other")
# Inside the erase pass, each stage's busy time: they run in threads at once (streaming), so
# they overlap and may add up to more than the pass's wall time; the slowest sets the pace.
PASS_STAGES = ("decode", "erase", "upscale", "composite", "write")


def mask_for(t: int, frames: int, size: tuple[int, int]) -> np.ndarray:
    """An ellipse moving left to right whose area grows from 6 % to 12 % of the frame."""
    width, height = size
    share = 0.06 + 0.06 * t / max(frames - 1, 1)
    r = float(np.sqrt(share / np.pi))  # pi * (r w) * (r h) = share * w * h
    mask = np.zeros((height, width), np.uint8)
    centre = (int(width * (0.3 + 0.4 * t / max(frames - 1, 1))), int(height * 0.55))
    cv2.ellipse(mask, centre, (int(r * width), int(r * height)), 0, 0, 360, 255, -1)
    return mask


def make_clip(folder: Path, name: str, size: tuple[int, int], frames: int) -> tuple[Path, Path]:
    """running_car.mp4 scaled to `size` as H.264 (looped if the clip is short), plus a mask folder."""
    width, height = size
    clip, masks = folder / f"clip_{name}.mp4", folder / f"masks_{name}"
    masks.mkdir(exist_ok=True)
    with av.open(str(DATA / "completion" / "running_car.mp4")) as src:
        real = []
        for frame in src.decode(video=0):
            real.append(frame.to_ndarray(format="rgb24"))
            if len(real) == frames:
                break
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "g": "25"}
        for t in range(frames):
            image = cv2.resize(real[t % len(real)], size, interpolation=cv2.INTER_CUBIC)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
            cv2.imwrite(str(masks / f"m{t:04d}.png"), mask_for(t, frames, size))
        for packet in stream.encode():
            out.mux(packet)
    return clip, masks


# -- the two runs, each in its own process -----------------------------------------


def _usage(started: float, cpu0: float) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - started
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}


def run_floor(clip: str, output: str) -> dict:
    """Decode every frame and write it with the pipeline's own sink: what any job must pay."""
    from peanut_server.media import open_sink, open_source, probe

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, started = usage.ru_utime + usage.ru_stime, time.monotonic()
    info = probe(clip)
    with open_source(clip) as source, open_sink(output, info, 0, info.frame_count, overwrite=True) as sink:
        for frame in source.frames(0, info.frame_count):
            sink.write(frame)
        sink.commit()
    return {"frames": info.frame_count, **_usage(started, cpu0)}


def run_pipeline(clip: str, masks: str, output: str, preset: str) -> dict:
    """One job as `peanut remove CLIP --mask MASKS --local` runs it."""
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request
    from peanut_server.progress import Reporter

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, started = usage.ru_utime + usage.ru_stime, time.monotonic()
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=clip),
        mask=pb.MaskSpec(mask_path=masks),
        options=pb.Options(preset=getattr(pb, f"PRESET_{preset.upper()}")),
        output=pb.OutputSpec(path=output, overwrite=True),
    )
    stem, ext = os.path.splitext(output)
    if ext:  # a video output: the matte as the same kind of video
        request.output.matte_path = f"{stem}_matte{ext}"
    result = Pipeline().run(spec_from_request(request), Reporter())
    row = {"frames": result.frame_count, **_usage(started, cpu0)}
    timings = dict(result.timings)
    timings["other"] = max(0.0, row["wall_s"] - sum(timings.get(k, 0.0) for k in STAGES if k != "other"))
    row["timings_s"] = timings
    row["backends"] = {r.stage: r.backend for r in result.backends}
    return row


def child(kind: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", "--child", kind, *args], capture_output=True, text=True, cwd=REPO
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the table -------------------------------------------------------------------


def summarise(name: str, size: tuple[int, int], floor: dict, pipe: dict, cores: int) -> dict:
    n = pipe["frames"]
    per_frame = {k: pipe["timings_s"].get(k, 0.0) / n for k in STAGES}
    busy = {k: pipe["timings_s"].get(k, 0.0) / n for k in PASS_STAGES}
    return {
        "source": name,
        "width": size[0],
        "height": size[1],
        "frames": n,
        "floor_s_per_frame": floor["wall_s"] / floor["frames"],
        "pipeline_s_per_frame": pipe["wall_s"] / n,
        "ratio_to_floor": pipe["wall_s"] / n / (floor["wall_s"] / floor["frames"]),
        "stages_s_per_frame": per_frame,
        "erase_pass_busy_s_per_frame": busy,
        "floor_peak_rss_mb": floor["peak_rss_mb"],
        "pipeline_peak_rss_mb": pipe["peak_rss_mb"],
        "floor_cpu_util": floor["cpu_s"] / floor["wall_s"] / cores,
        "pipeline_cpu_util": pipe["cpu_s"] / pipe["wall_s"] / cores,
        # CPU seconds per frame move much less with the machine's load than wall time does.
        "floor_cpu_s_per_frame": floor["cpu_s"] / floor["frames"],
        "pipeline_cpu_s_per_frame": pipe["cpu_s"] / n,
        "backends": pipe["backends"],
    }


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'source':>7s} {'frames':>6s} {'floor':>7s} {'pipe':>7s} {'ratio':>6s} "
        + " ".join(f"{k[:7]:>7s}" for k in STAGES)
        + " | "
        + " ".join(f"{k[:7]:>7s}" for k in PASS_STAGES)
        + f" | {'RSS fl':>7s} {'RSS pipe':>8s} {'CPU fl':>6s} {'CPU pipe':>8s} {'CPUs/f fl':>9s} {'CPUs/f pipe':>11s}"
    )
    print(
        "s/frame (wall), parts one after another | the erase pass's stages, busy time (they overlap); "
        "CPU = process CPU time / wall / cores; CPUs/f = CPU seconds per frame; RSS in MB"
    )
    print(head)
    for r in rows:
        stages = " ".join(f"{r['stages_s_per_frame'][k]:7.3f}" for k in STAGES)
        busy = " ".join(f"{r['erase_pass_busy_s_per_frame'][k]:7.3f}" for k in PASS_STAGES)
        print(
            f"{r['source']:>7s} {r['frames']:6d} {r['floor_s_per_frame']:7.3f} {r['pipeline_s_per_frame']:7.3f} "
            f"{r['ratio_to_floor']:5.1f}x {stages} | {busy} | {r['floor_peak_rss_mb']:7.0f} "
            f"{r['pipeline_peak_rss_mb']:8.0f} {100 * r['floor_cpu_util']:5.0f}% {100 * r['pipeline_cpu_util']:7.0f}% "
            f"{r['floor_cpu_s_per_frame']:9.3f} {r['pipeline_cpu_s_per_frame']:11.3f}"
        )


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Left: where a frame's time goes (share per stage). Right: pipeline vs floor, s/frame, log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    x = np.arange(len(rows))
    labels = [f"{r['source']}\n{r['width']}x{r['height']}" for r in rows]
    bottom = np.zeros(len(rows))
    for stage in STAGES:
        share = np.array([100 * r["stages_s_per_frame"][stage] / r["pipeline_s_per_frame"] for r in rows])
        left.bar(x, share, 0.6, bottom=bottom, label=stage)
        bottom += share
    left.set_xticks(x, labels)
    left.set_ylabel("% of the pipeline's wall time")
    left.set_title("where a frame's time goes", fontsize=9)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4)
    pipe = [r["pipeline_s_per_frame"] for r in rows]
    floor = [r["floor_s_per_frame"] for r in rows]
    right.plot(x, pipe, "o-", label="pipeline (masks given)")
    right.plot(x, floor, "s--", color="black", label="floor (decode + write)")
    for i, r in enumerate(rows):
        right.annotate(
            f"{r['ratio_to_floor']:.1f}x",
            (x[i], pipe[i]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    right.set_xticks(x, labels)
    right.set_yscale("log")
    right.set_ylabel("seconds per frame (wall, log)")
    right.set_title("ratio to the floor", fontsize=9)
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        "--frames",
        type=int,
        help="frames per clip at every size (default: per size, "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_FRAMES.items())
        + ")",
    )
    parser.add_argument("--preset", default="balanced", choices=PRESETS)
    parser.add_argument(
        "--video",
        default="",
        choices=("", ".mov", ".mkv", ".mp4"),
        help="write a video (and the pipeline's matte) of this kind instead of PNG folders, floor included",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        row = run_floor(*rest) if kind == "floor" else run_pipeline(*rest)
        print(json.dumps(row))
        return

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="peanut-floor-") as tmp:
        for name in args.sizes:
            frames = args.frames or DEFAULT_FRAMES[name]
            clip, masks = make_clip(Path(tmp), name, SIZES[name], frames)
            floor = child("floor", str(clip), str(Path(tmp) / f"floor_{name}{args.video}"))
            pipe = child("pipeline", str(clip), str(masks), str(Path(tmp) / f"cleaned_{name}{args.video}"), args.preset)
            rows.append(summarise(name, SIZES[name], floor, pipe, cores))
            print(
                f"{name}: floor {rows[-1]['floor_s_per_frame']:.3f} s/frame, pipeline "
                f"{rows[-1]['pipeline_s_per_frame']:.3f} s/frame",
                file=sys.stderr,
            )
    load_after = os.getloadavg()
    print_table(rows)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "total_s": round(time.time() - started, 1),
        "machine": {
            "cores": cores,
            "platform": platform.platform(),
            # Other work shares this machine: the load says how much.
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "commit": _commit(),
        "preset": args.preset,
        "outputs": args.video or "PNG folders",
        "source_clip": "running_car.mp4 scaled, H.264 crf 18",
        "masks": "moving ellipse, 6 % -> 12 % of the frame",
        "rows": rows,
    }
    json_path = RESULTS / f"floor-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2))
    title = (
        f"PEANUT vs floor, preset {args.preset}, {cores} cores, load {load_before[0]:.1f}->{load_after[0]:.1f}"
        f" ({report['when_utc']})"
    )
    png_path = RESULTS / f"floor-{stamp}.png"
    plot(rows, png_path, title)
    print(f"wrote {json_path} and {png_path} ({report['total_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
