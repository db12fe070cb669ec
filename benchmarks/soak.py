"""Soak and fault run against a real daemon: concurrent clients, cancels, hostile requests.

    python -m benchmarks.soak --seconds 300 --clients 16 --watchers 40

Each client loops: submit a small job (sometimes a bad one), watch it (sometimes
joining late), cancel some, and measure GetInfo latency. Watchers, each its own
client (connection), keep a Watch stream open on a job that is not finished yet
and open the next one when it ends, as editors' panels do; GetInfo latency is
also reported for the moments when every watcher had its stream open. At the end every
accepted job must have reached a final state and be listed by the daemon (jobs
lost = 0), the daemon process must still be alive (crashes = 0), and events of
each watch must have strictly increasing sequence numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from peanut_server.api import peanut_pb2 as pb
from peanut_server.client import ClientError, PeanutClient

FINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED}


@dataclass
class SoakStats:
    requests: int = 0
    faults_injected: int = 0
    refused_as_expected: int = 0
    unexpected_errors: list[str] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    cancelled: int = 0
    order_violations: int = 0
    info_latencies: list[float] = field(default_factory=list)
    # GetInfo latencies measured while the heavy job (full eraser, bigger frames) was running.
    info_latencies_running: list[float] = field(default_factory=list)
    heavy_jobs: int = 0
    heavy_succeeded: int = 0
    heavy_running: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Watch streams open now, the number wanted, and GetInfo latencies measured while all were open.
    watchers_open: int = 0
    watchers_wanted: int = 0
    info_latencies_all_watching: list[float] = field(default_factory=list)
    watch_streams: int = 0
    newest: list[str] = field(default_factory=list)

    def summary(self, lost: int, crashed: int) -> dict:
        lat = np.array(self.info_latencies or [0.0]) * 1000
        running = np.array(self.info_latencies_running or [0.0]) * 1000
        watching = np.array(self.info_latencies_all_watching or [0.0]) * 1000
        return {
            "requests": self.requests,
            "faults_injected": self.faults_injected,
            "refused_as_expected": self.refused_as_expected,
            "jobs_accepted": len(self.accepted),
            "jobs_cancelled": self.cancelled,
            "jobs_lost": lost,
            "daemon_crashes": crashed,
            "event_order_violations": self.order_violations,
            "unexpected_errors": self.unexpected_errors[:10],
            "getinfo_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "getinfo_p99_ms": round(float(np.percentile(lat, 99)), 2),
            "heavy_jobs": self.heavy_jobs,
            "heavy_jobs_succeeded": self.heavy_succeeded,
            "getinfo_samples_while_heavy_job_ran": len(self.info_latencies_running),
            "getinfo_while_heavy_job_p50_ms": round(float(np.percentile(running, 50)), 2),
            "getinfo_while_heavy_job_p99_ms": round(float(np.percentile(running, 99)), 2),
            "watchers": self.watchers_wanted,
            "watch_streams_opened": self.watch_streams,
            "getinfo_samples_with_all_watchers_open": len(self.info_latencies_all_watching),
            "getinfo_with_all_watchers_open_p50_ms": round(float(np.percentile(watching, 50)), 2),
            "getinfo_with_all_watchers_open_p99_ms": round(float(np.percentile(watching, 99)), 2),
        }


def make_inputs(folder: Path, frames: int = 6, size: tuple[int, int] = (64, 48)) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    clip, masks = folder / "clip", folder / "masks"
    clip.mkdir(parents=True, exist_ok=True)
    masks.mkdir(exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(clip / f"f_{i:04d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        mask = np.zeros((size[1], size[0]), np.uint8)
        mask[10:20, 10 + i : 20 + i] = 255
        cv2.imwrite(str(masks / f"m_{i:04d}.png"), mask)
    return clip, masks


def hostile_request(rng: random.Random, clip: Path, masks: Path, out_root: Path) -> dict:
    """A request the daemon must refuse with a status (never crash, never hang)."""
    choice = rng.randrange(7)
    base = dict(
        source_path=str(clip),
        output_path=str(out_root / f"bad{rng.randrange(10**9)}"),
        mask_path=str(masks),
        options={"eraser": "telea"},
    )
    if choice == 0:
        base["source_path"] = "/proc/self/mem"
    elif choice == 1:
        base["source_path"] = str(clip) + "/../" * 40 + "etc/passwd"
    elif choice == 2:
        base.update(start=5, end=2)
    elif choice == 3:
        base["source_path"] = "x" * 100_000
    elif choice == 4:
        base["output_path"] = str(clip)
    elif choice == 5:
        base["mask_path"] = "/dev/zero"
    else:
        base["source_path"] = str(clip / "ünïcødé ✂.mov")
    return base


def client_loop(
    address: str,
    state_dir: Path,
    clip: Path,
    masks: Path,
    out_root: Path,
    stop: threading.Event,
    stats: SoakStats,
    seed: int,
) -> None:
    rng = random.Random(seed)
    with PeanutClient(address, state_dir=state_dir, timeout=30) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                heavy = stats.heavy_running.is_set()
                client.info()
                with stats.lock:
                    elapsed = time.perf_counter() - t0
                    stats.info_latencies.append(elapsed)
                    if heavy and stats.heavy_running.is_set():
                        stats.info_latencies_running.append(elapsed)
                    if stats.watchers_wanted and stats.watchers_open >= stats.watchers_wanted:
                        stats.info_latencies_all_watching.append(elapsed)
                    stats.requests += 1
                if rng.random() < 0.3:
                    with stats.lock:
                        stats.faults_injected += 1
                        stats.requests += 1
                    try:
                        client.submit(**hostile_request(rng, clip, masks, out_root))
                        with stats.lock:
                            stats.unexpected_errors.append("hostile request accepted")
                    except ClientError as exc:
                        if exc.code in ("INTERNAL", "UNKNOWN", "UNAVAILABLE"):
                            with stats.lock:
                                stats.unexpected_errors.append(f"{exc.code}: {exc.message}")
                        else:
                            with stats.lock:
                                stats.refused_as_expected += 1
                    continue
                out = out_root / f"job{seed}_{rng.randrange(10**9)}"
                try:
                    job = client.submit(
                        str(clip), output_path=str(out), mask_path=str(masks), options={"eraser": "telea"}
                    )
                except ClientError as exc:
                    if exc.code != "RESOURCE_EXHAUSTED":
                        with stats.lock:
                            stats.unexpected_errors.append(f"submit {exc.code}: {exc.message}")
                    time.sleep(0.2)
                    continue
                with stats.lock:
                    stats.accepted.add(job.id)
                    stats.newest = (stats.newest + [job.id])[-64:]
                    stats.requests += 1
                if rng.random() < 0.25:
                    client.cancel(job.id)
                    with stats.lock:
                        stats.cancelled += 1
                if rng.random() < 0.5:
                    last = -1
                    for event in client.watch(job.id):
                        if event.type != pb.EVENT_TYPE_SNAPSHOT and event.seq <= last:
                            with stats.lock:
                                stats.order_violations += 1
                        last = event.seq
                        if event.job.state in FINAL:
                            break
            except ClientError as exc:
                with stats.lock:
                    stats.unexpected_errors.append(f"{exc.code}: {exc.message}")


def watcher_loop(address: str, state_dir: Path, stop: threading.Event, stats: SoakStats, seed: int) -> None:
    """Keep one Watch stream open on a recent job; when it ends, open one on another."""
    rng = random.Random(1000 + seed)
    with PeanutClient(address, state_dir=state_dir, timeout=30) as client:
        while not stop.is_set():
            with stats.lock:
                candidates = list(stats.newest)
            if not candidates:
                time.sleep(0.1)
                continue
            job_id = rng.choice(candidates[-16:])
            counted = False
            try:
                last = -1
                for event in client.watch(job_id):
                    if not counted:
                        counted = True
                        with stats.lock:
                            stats.watchers_open += 1
                            stats.watch_streams += 1
                    if event.type != pb.EVENT_TYPE_SNAPSHOT and event.seq <= last:
                        with stats.lock:
                            stats.order_violations += 1
                    last = event.seq
                    if event.job.state in FINAL or stop.is_set():
                        break
            except ClientError as exc:
                with stats.lock:
                    stats.unexpected_errors.append(f"watch {exc.code}: {exc.message}")
            finally:
                if counted:
                    with stats.lock:
                        stats.watchers_open -= 1
            if not counted:
                time.sleep(0.05)


def heavy_loop(
    address: str, state_dir: Path, clip: Path, masks: Path, out_root: Path, stop: threading.Event, stats: SoakStats
) -> None:
    """Keep one realistic job going: the default (auto) eraser on bigger frames, so GetInfo competes with it."""
    with PeanutClient(address, state_dir=state_dir, timeout=30) as client:
        while not stop.is_set():
            try:
                job = client.submit(
                    str(clip),
                    output_path=str(out_root / f"heavy_{time.monotonic_ns()}"),
                    mask_path=str(masks),
                    options={"working_height": 0},
                )
            except ClientError:
                time.sleep(0.2)  # queue full: the light clients have it
                continue
            with stats.lock:
                stats.accepted.add(job.id)
                stats.heavy_jobs += 1
            for event in client.watch(job.id):
                if event.job.state == pb.JOB_STATE_RUNNING:
                    stats.heavy_running.set()
                if event.job.state in FINAL:
                    stats.heavy_running.clear()
                    if event.job.state == pb.JOB_STATE_SUCCEEDED:
                        with stats.lock:
                            stats.heavy_succeeded += 1
                    break


def run_soak(
    address: str,
    state_dir: Path,
    seconds: float,
    clients: int,
    work_dir: Path,
    is_alive=lambda: True,
    heavy: bool = True,
    watchers: int = 0,
) -> dict:
    clip, masks = make_inputs(work_dir / "inputs")
    heavy_clip, heavy_masks = make_inputs(work_dir / "heavy", frames=24, size=(320, 240))
    out_root = work_dir / "outputs"
    out_root.mkdir(parents=True, exist_ok=True)
    stats, stop = SoakStats(), threading.Event()
    stats.watchers_wanted = watchers
    threads = [
        threading.Thread(target=client_loop, args=(address, state_dir, clip, masks, out_root, stop, stats, i))
        for i in range(clients)
    ]
    threads += [
        threading.Thread(target=watcher_loop, args=(address, state_dir, stop, stats, i)) for i in range(watchers)
    ]
    if heavy:
        threads.append(
            threading.Thread(
                target=heavy_loop, args=(address, state_dir, heavy_clip, heavy_masks, out_root, stop, stats)
            )
        )
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    crashed = 0 if is_alive() else 1
    lost = 0
    if not crashed:
        with PeanutClient(address, state_dir=state_dir, timeout=30) as client:
            deadline = time.monotonic() + 300
            pending = set(stats.accepted)
            while pending and time.monotonic() < deadline:
                jobs = {j.id: j for j in client.list_jobs(limit=100_000)}
                lost = len([j for j in pending if j not in jobs])
                pending = {j for j in pending if j in jobs and jobs[j].state not in FINAL}
                if pending:
                    time.sleep(0.5)
            lost += len(pending)
    return stats.summary(lost=lost, crashed=crashed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--watchers", type=int, default=0, help="long-lived Watch streams, each its own client")
    args = parser.parse_args()
    from tests.daemon import DaemonProcess

    with tempfile.TemporaryDirectory() as tmp:
        proc = DaemonProcess(state_dir=Path(tmp) / "state", log_path=Path(tmp) / "daemon.log").start()
        try:
            result = run_soak(
                proc.address,
                proc.state_dir,
                args.seconds,
                args.clients,
                Path(tmp),
                is_alive=lambda: proc.process.poll() is None,
                watchers=args.watchers,
            )
        finally:
            proc.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
