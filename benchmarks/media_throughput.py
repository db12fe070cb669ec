"""Decode and encode throughput of peanut_server.media for a 1080p clip.

    python benchmarks/media_throughput.py [--frames 120] [--size 1920x1080]

Generates an H.264 clip (B-frames, GOP 24) in a temporary folder, then measures:
decode of the whole clip and of a range starting mid-GOP (includes the seek and
the frames decoded before the range), and encode through FrameSink to a PNG
sequence, FFV1 .mkv, ProRes 4444 .mov and H.264 .mp4 (staging PNGs + commit,
i.e. what a job pays). Prints frames/s per row.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peanut_server.media import open_sink, open_source, probe  # noqa: E402


def _content(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Real footage (shared data's running_car.mp4, resized) when present, else a moving texture."""
    import cv2

    w, h = size
    data = Path(os.environ.get("PEANUT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    car = data / "completion" / "running_car.mp4"
    if car.exists():
        with open_source(str(car)) as src:
            count = min(n, src.info.frame_count)
            return [cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in src.frames(0, count)]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(np.kron(base, np.ones((8, 8, 1), np.uint8)), (0, 0), 3)
    return [np.roll(base, 4 * i, axis=1) for i in range(n)]


def make_clip(path: Path, n: int, size: tuple[int, int]) -> str:
    import av

    w, h = size
    content = _content(n, size)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(
            "libx264", rate=25, options={"crf": "20", "preset": "veryfast", "x264-params": "keyint=24:bframes=3"}
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            frame = content[i % len(content)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return "running_car.mp4 resized" if len(content) > 1 and content[0].std() > 0 else "synthetic"


def timed(label: str, n: int, fn) -> tuple[str, int, float, float]:  # noqa: ANN001
    # CPU time (all threads of this process) as well as wall time: the machine is shared,
    # and frames per CPU-second is what stays comparable when others load it.
    t, c = time.perf_counter(), time.process_time()
    fn()
    return label, n, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    n = args.frames
    rows = []
    with tempfile.TemporaryDirectory(prefix="peanut-bench-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        t = time.perf_counter()
        what = make_clip(clip, n, (w, h))
        print(f"generated {n} frames {w}x{h} H.264 ({what}) in {time.perf_counter() - t:.1f} s", flush=True)
        rows.append(timed("probe (demux index + first/last frame)", 1, lambda: probe(str(clip))))
        info = probe(str(clip))
        with open_source(str(clip)) as src:
            rows.append(timed("decode full clip", n, lambda: sum(1 for _ in src.frames(0, n))))
        a, b = n // 2 + 5, n // 2 + 5 + n // 4
        with open_source(str(clip)) as src:
            rows.append(timed(f"decode range {a}..{b} (mid-GOP seek)", b - a, lambda: sum(1 for _ in src.frames(a, b))))
        with open_source(str(clip)) as src:
            frames = list(src.frames(0, min(n, 48)))
        m = len(frames)
        for name in ("out_png", "out.mkv", "out.mov", "out.mp4"):

            def encode(name: str = name) -> None:
                with open_sink(os.path.join(tmp, name), info, 0, m) as sink:
                    for f in frames:
                        sink.write(f)
                    sink.commit()

            label = {
                "out_png": "encode PNG sequence",
                "out.mkv": "encode FFV1 .mkv",
                "out.mov": "encode ProRes 4444 .mov",
                "out.mp4": "encode H.264 .mp4",
            }[name]
            rows.append(timed(label, m, encode))
    print(f"\n{'step':44s} {'frames':>6s} {'wall s':>7s} {'frames/s':>9s} {'cpu s':>7s} {'frames/cpu-s':>12s}")
    for label, count, seconds, cpu in rows:
        print(f"{label:44s} {count:6d} {seconds:7.2f} {count / seconds:9.1f} {cpu:7.2f} {count / max(cpu, 1e-9):12.1f}")
    print(f"\ncores: {os.cpu_count()}  OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")


if __name__ == "__main__":
    main()
