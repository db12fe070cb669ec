"""UR-Net benchmark: speed, peak memory and PSNR inside the mask, Lanczos vs BasicVSR++.

Speed/memory: the masked crop region (a `--crop-frac` share of each side of
the frame, plus nothing else: the pipeline crops before the upscaler) of a
16:9 clip at working heights 432 and 540, brought to its size in a 1080p and a
2160p (4K) source. BasicVSR++ is the official size (64 channels, 7 blocks)
with random weights, run with the automatic tiles and chunks; on a CPU it is
too slow for 100 frames, so it runs `--bvsr-frames` frames and the 100-frame
time is extrapolated from the per-frame cost, including the chunk overlap the
auto settings add. Each measurement runs in a child process so that its peak
RSS (ru_maxrss) is its own.

Quality: /work/shared/data completion/running_car.mp4 (972x540) is the
"source"; it is shrunk to 432x240 (the size of mask_square.png), the mask's
bounding box plus a margin is cropped, brought back to the source crop size,
and PSNR is taken inside the mask against the original. BasicVSR++ has random
weights here, so it is expected to lose to Lanczos.

    OMP_NUM_THREADS=2 /work/venv-dev/bin/python benchmarks/upscaler_speed.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peanut_server.progress import Reporter  # noqa: E402
from peanut_server.upscaler import LanczosUpscaler, UpscalerOptions  # noqa: E402
from peanut_server.upscaler.basicvsrpp.backend import fit_to_size  # noqa: E402

DATA = Path(os.environ.get("PEANUT_SHARED_DATA", REPO.parent / "shared" / "data"))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_crop(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Fine detail that pans: a stripe/noise pattern shifted 1.5 px per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h + 2 * t + 8, w + 2 * t + 8, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(base, (0, 0), 0.8)
    frames = []
    for i in range(t):
        m = np.float32([[1, 0, -1.5 * i], [0, 1, -0.5 * i]])
        frames.append(cv2.warpAffine(base, m, (base.shape[1], base.shape[0]))[:h, :w])
    return np.stack(frames)


def crop_sizes(work_h: int, out_h: int, frac: float) -> tuple[tuple[int, int], tuple[int, int]]:
    work_w = round(work_h * 16 / 9)
    out_w = round(out_h * 16 / 9)
    h, w = round(work_h * frac), round(work_w * frac)
    return (h, w), (round(h * out_h / work_h), round(w * out_w / work_w))


def child_speed(backend: str, work_h: int, frames: int, frac: float, auto_chunk: bool = False) -> dict:
    """Run in a child: time the upscaler on one working height, both targets."""
    import torch

    (h, w), _ = crop_sizes(work_h, 1080, frac)
    lr = synthetic_crop(frames, h, w)
    base_rss = rss_mb()
    result: dict = {"backend": backend, "work_h": work_h, "crop": [h, w], "frames": frames}
    if backend == "lanczos":
        for out_h in (1080, 2160):
            size = crop_sizes(work_h, out_h, frac)[1]
            start = time.perf_counter()
            LanczosUpscaler().upscale(lr, size, None, UpscalerOptions(), Reporter())
            result[f"s_per_frame_{out_h}"] = (time.perf_counter() - start) / frames
            result[f"out_{out_h}"] = list(size)
    else:
        from peanut_server.upscaler.basicvsrpp.network import BasicVSRPlusPlus
        from peanut_server.upscaler.basicvsrpp.runner import choose_settings, iter_upscaled

        torch.manual_seed(0)
        net = BasicVSRPlusPlus().eval()
        auto = choose_settings(h, w, 64, torch.device("cpu"))
        # One chunk of exactly `frames` frames with the auto tiles: the steady
        # per-frame cost; chunk overlap is added in the extrapolation below.
        settings = type(auto)(auto.device, auto.tile, auto.tile_pad, frames, 0, False)
        if auto_chunk:  # the real settings, overlap included: for the peak memory of long runs
            settings = auto
        start = time.perf_counter()
        x4 = np.concatenate([c for _, c in iter_upscaled(net, lr, None, settings)])
        net_s = (time.perf_counter() - start) / frames
        result.update(tile=auto.tile, tile_pad=auto.tile_pad, chunk=auto.chunk, chunk_overlap=auto.chunk_overlap)
        result["net_s_per_frame"] = net_s
        chunks = math.ceil(100 / auto.chunk)
        processed = 100 + 2 * auto.chunk_overlap * max(0, chunks - 1)  # no context outside the clip
        for out_h in (1080, 2160):
            size = crop_sizes(work_h, out_h, frac)[1]
            start = time.perf_counter()
            for f in x4:
                fit_to_size(f, size)
            resize_s = (time.perf_counter() - start) / frames
            result[f"out_{out_h}"] = list(size)
            result[f"s_per_frame_{out_h}"] = net_s + resize_s
            result[f"s_100_frames_{out_h}"] = net_s * processed + resize_s * 100
    result["peak_rss_mb"] = rss_mb()
    result["peak_over_start_mb"] = rss_mb() - base_rss
    return result


def read_clip(n: int) -> np.ndarray:
    import av

    frames = []
    with av.open(str(DATA / "completion" / "running_car.mp4")) as box:
        for frame in box.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    return np.stack(frames)


def child_psnr(frames: int, margin: int) -> dict:
    import torch

    from peanut_server.upscaler.basicvsrpp.network import BasicVSRPlusPlus
    from peanut_server.upscaler.basicvsrpp.runner import choose_settings, iter_upscaled

    src = read_clip(frames)
    sh, sw = src.shape[1:3]
    mask_lr = cv2.imread(str(DATA / "completion" / "mask_square.png"), cv2.IMREAD_GRAYSCALE) > 127
    wh, ww = mask_lr.shape
    ys, xs = np.nonzero(mask_lr)
    y0, y1 = max(0, ys.min() - margin), min(wh, ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(ww, xs.max() + 1 + margin)
    # The same region at source resolution (rounded outwards).
    sy0, sy1 = math.floor(y0 * sh / wh), math.ceil(y1 * sh / wh)
    sx0, sx1 = math.floor(x0 * sw / ww), math.ceil(x1 * sw / ww)
    mask_src = cv2.resize(mask_lr.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST)[sy0:sy1, sx0:sx1] > 0
    # Crop the working frame exactly on the pixels that cover the source crop.
    work = np.stack([cv2.resize(f, (ww, wh), interpolation=cv2.INTER_AREA) for f in src])
    lr = work[:, y0:y1, x0:x1]
    size = (sy1 - sy0, sx1 - sx0)
    truth = src[:, sy0:sy1, sx0:sx1]

    def psnr_in_mask(out: np.ndarray) -> float:
        diff = (out.astype(np.float64) - truth.astype(np.float64))[:, mask_src]
        return float(10 * np.log10(255.0**2 / np.mean(diff**2)))

    lanczos = LanczosUpscaler().upscale(lr, size, None, UpscalerOptions(), Reporter())
    torch.manual_seed(0)
    net = BasicVSRPlusPlus().eval()
    settings = choose_settings(lr.shape[1], lr.shape[2], 64, torch.device("cpu"))
    x4 = np.concatenate([c for _, c in iter_upscaled(net, lr, None, settings)])
    bvsr = np.stack([fit_to_size(f, size) for f in x4])
    bicubic = np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_CUBIC) for f in lr])
    return {
        "clip": "running_car.mp4",
        "source": [sh, sw],
        "working": [wh, ww],
        "frames": frames,
        "lr_crop": list(lr.shape[1:3]),
        "hr_crop": list(size),
        "mask_px_per_frame": int(mask_src.sum()),
        "psnr_lanczos": psnr_in_mask(lanczos),
        "psnr_bicubic": psnr_in_mask(bicubic),
        "psnr_basicvsrpp_random": psnr_in_mask(bvsr),
    }


def spawn(args: list[str]) -> dict:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", choices=["speed", "psnr"])
    p.add_argument("--backend", default="lanczos")
    p.add_argument("--work-h", type=int, default=432)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--crop-frac", type=float, default=1 / 3)
    p.add_argument("--bvsr-frames", type=int, default=6, help="BasicVSR++ frames measured (CPU is slow)")
    p.add_argument("--psnr-frames", type=int, default=6)
    p.add_argument("--margin", type=int, default=8)
    p.add_argument("--auto-chunk", action="store_true", help="child: use the auto chunk (memory check)")
    p.add_argument("--json", type=Path, help="also write all results here")
    a = p.parse_args()
    if a.child == "speed":
        print(json.dumps(child_speed(a.backend, a.work_h, a.frames, a.crop_frac, a.auto_chunk)))
        return
    if a.child == "psnr":
        print(json.dumps(child_psnr(a.frames, a.margin)))
        return

    import torch

    print(f"threads: torch {torch.get_num_threads()}, cpus {os.cpu_count()}", flush=True)
    results = []
    for backend, frames in (("lanczos", 100), ("basicvsrpp", a.bvsr_frames)):
        for work_h in (432, 540):
            r = spawn(
                [
                    "--child",
                    "speed",
                    "--backend",
                    backend,
                    "--work-h",
                    str(work_h),
                    "--frames",
                    str(frames),
                    "--crop-frac",
                    str(a.crop_frac),
                ]
            )
            results.append(r)
            print(json.dumps(r), flush=True)
    print("\n| backend | work h | LR crop | target | out crop | s/frame | 100 frames (s) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for out_h in (1080, 2160):
            total = r.get(f"s_100_frames_{out_h}", r[f"s_per_frame_{out_h}"] * 100)
            est = " (extrapolated)" if r["backend"] == "basicvsrpp" else ""
            print(
                f"| {r['backend']} | {r['work_h']} | {r['crop'][1]}x{r['crop'][0]} | {out_h}p "
                f"| {r[f'out_{out_h}'][1]}x{r[f'out_{out_h}'][0]} | {r[f's_per_frame_{out_h}']:.3f} "
                f"| {total:.1f}{est} | {r['peak_rss_mb']:.0f} |"
            )
    q = spawn(["--child", "psnr", "--frames", str(a.psnr_frames), "--margin", str(a.margin)])
    print("\n" + json.dumps(q))
    if a.json:
        a.json.write_text(json.dumps({"speed": results, "psnr": q}, indent=2))


if __name__ == "__main__":
    main()
