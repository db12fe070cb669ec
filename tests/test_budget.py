"""The memory safety net: LRU model cache by estimated size, and jobs refused up front past the budget."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from peanut_server.api import peanut_pb2 as pb
from peanut_server.client import ClientError
from peanut_server.daemon.budget import (
    MIB,
    MemoryBudget,
    ModelCache,
    default_budget_bytes,
    estimate_bytes,
    estimate_job_bytes,
    physical_memory_bytes,
)
from peanut_server.errors import ResourceExhausted
from peanut_server.pipeline import Pipeline
from tests.daemon import DaemonProcess


class TorchBackend:
    """A backend holding a real (tiny, random) torch network as a field, like the learned ones do."""

    name = "tiny"

    def __init__(self, channels: int) -> None:
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3), torch.nn.BatchNorm2d(channels))


class DeclaredBackend:
    def __init__(self, size: int) -> None:
        self.size = size

    def memory_bytes(self) -> int:
        return self.size


def test_estimate_counts_parameters_and_buffers_once():
    backend = TorchBackend(16)
    conv, bn = backend.net[0], backend.net[1]
    expected = sum(t.numel() * 4 for t in [conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                                           bn.running_var]) + 8  # num_batches_tracked is int64
    assert estimate_bytes(backend) == expected
    assert estimate_bytes(backend.net) == expected
    backend.alias = backend.net  # the same module twice is counted once
    assert estimate_bytes(backend) == expected
    assert estimate_bytes(DeclaredBackend(12345)) == 12345
    assert estimate_bytes(object()) == 0


def test_cache_unloads_least_recently_used_past_the_budget():
    cache = ModelCache(budget_bytes=250)
    cache[("eraser", "a")] = DeclaredBackend(100)
    cache[("upscaler", "b")] = DeclaredBackend(100)
    _ = cache[("eraser", "a")]                     # a is now the most recently used
    cache[("masker", "c")] = DeclaredBackend(100)  # 300 > 250: b goes
    assert set(cache) == {("eraser", "a"), ("masker", "c")}
    assert cache.evicted == [("upscaler", "b")]
    assert cache.total_bytes() == 200
    # One instance alone over the budget stays (its job was admitted), the others go.
    cache[("eraser", "huge")] = DeclaredBackend(1000)
    assert set(cache) == {("eraser", "huge")}


def test_cache_remeasures_a_backend_that_loads_lazily():
    cache = ModelCache(budget_bytes=150)
    lazy = DeclaredBackend(0)
    cache[("eraser", "lazy")] = lazy
    cache[("upscaler", "other")] = DeclaredBackend(100)
    lazy.size = 100        # its network got loaded during a job
    _ = cache[("eraser", "lazy")]
    assert ("upscaler", "other") not in cache and cache.size_of(("eraser", "lazy")) == 100


def test_pipeline_keeps_its_instances_in_the_cache():
    cache = ModelCache(budget_bytes=10 * MIB)
    pipeline = Pipeline(instances=cache)
    first = pipeline._instance("eraser", _Tiny)
    assert pipeline._instance("eraser", _Tiny) is first
    assert cache.size_of(("eraser", "tinynet")) == estimate_bytes(first) > 0


class _Tiny(TorchBackend):
    name = "tinynet"

    def __init__(self) -> None:
        super().__init__(8)


def test_job_estimate_and_refusal_carry_the_numbers():
    est = estimate_job_bytes(1920, 1080, (768, 432), 80, model_bytes=50 * MIB)
    assert est.source_bytes == min(1920 * 1080 * 3 * 80, 512 * MIB)
    assert est.working_bytes == 768 * 432 * 3 * 80 * 4
    assert est.total == est.working_bytes + est.source_bytes + 50 * MIB
    budget = MemoryBudget(100 * MIB)
    with pytest.raises(ResourceExhausted) as info:
        budget.check_job(1920, 1080, (768, 432), 80, [])
    assert "needs about" in info.value.message and "budget is 100 MiB" in info.value.message
    budget.check_job(320, 240, (320, 240), 4, [])  # small enough


def test_default_budget_is_three_quarters_of_ram():
    assert physical_memory_bytes() > 0
    assert default_budget_bytes() == int(physical_memory_bytes() * 0.75)


def test_daemon_refuses_a_job_that_cannot_fit_and_runs_one_that_can(tmp_path: Path):
    clip, masks = tmp_path / "clip", tmp_path / "masks"
    clip.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(clip / f"f_{i:03d}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
        mask = np.zeros((96, 128), np.uint8)
        mask[30:50, 40:60] = 255
        cv2.imwrite(str(masks / f"m_{i:03d}.png"), mask)
    proc = DaemonProcess(state_dir=tmp_path / "state", log_path=tmp_path / "daemon.log",
                         extra_args=["--memory-budget-mb", "1"]).start()
    try:
        with proc.client(timeout=60) as client:
            # 80-frame windows of 128x96: ~12 MiB of working frames, over a 1 MiB budget.
            with pytest.raises(ClientError) as refused:
                client.submit(str(clip), output_path=str(tmp_path / "big"), mask_path=str(masks),
                              options={"eraser": "telea", "working_height": 0, "subvideo_length": 80})
            assert refused.value.code == "RESOURCE_EXHAUSTED"
            numbers = re.findall(r"(\d+) MiB", refused.value.message)
            assert "needs about" in refused.value.message and len(numbers) >= 2
            assert "budget is 1 MiB" in refused.value.message
            assert not (tmp_path / "big").exists()
            # Two-frame windows fit; the daemon still serves and runs them.
            job = client.submit(str(clip), output_path=str(tmp_path / "small"), mask_path=str(masks),
                                options={"eraser": "telea", "working_height": 0, "subvideo_length": 2})
            final = client.wait(job.id, timeout=120)
            assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
            assert len(list((tmp_path / "small").iterdir())) == 4
    finally:
        proc.stop()
        proc.kill()


def test_daemon_rejects_a_nonsense_budget(tmp_path: Path):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "peanut_server.daemon.main", "--state-dir", str(tmp_path),
                          "--port", "0", "--memory-budget-mb", "0"], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 2 and "--memory-budget-mb must be positive" in run.stderr
