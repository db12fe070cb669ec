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
from tests.tiny_models import save_basicvsrpp_checkpoint


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
    expected = (
        sum(t.numel() * 4 for t in [conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var]) + 8
    )  # num_batches_tracked is int64
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
    _ = cache[("eraser", "a")]  # a is now the most recently used
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
    lazy.size = 100  # its network got loaded during a job
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
    masks = 1920 * 1080 * 80  # one window's object masks at source resolution, a byte a pixel
    assert est.source_bytes == min(1920 * 1080 * 3 * 80, 512 * MIB) + masks
    assert est.working_bytes == 768 * 432 * 3 * 80 * 4
    assert est.total == est.working_bytes + est.source_bytes + 50 * MIB
    budget = MemoryBudget(100 * MIB)
    with pytest.raises(ResourceExhausted) as info:
        budget.check_job(1920, 1080, (768, 432), 80, [])
    assert "needs about" in info.value.message and "budget is 100 MiB" in info.value.message
    budget.check_job(320, 240, (320, 240), 4, [])  # small enough


def test_streaming_estimate_counts_every_window_in_flight():
    """Three windows: the eraser's at 4x, two more at working resolution once; three windows of source
    frames (up to the compositor's cap) and masks; the writer's queue of finished frames."""
    one = estimate_job_bytes(1920, 1080, (768, 432), 80, 0)
    three = estimate_job_bytes(1920, 1080, (768, 432), 80, 0, windows_in_flight=3)
    assert three.working_bytes == 768 * 432 * 3 * 80 * (4 + 2)
    kept = min(3 * 1920 * 1080 * 3 * 80, 512 * MIB)  # 1.4 GiB of frames: over the cap, counted at the cap
    queued = 8 * 1920 * 1080 * 6
    assert three.source_bytes == kept + 3 * 1920 * 1080 * 80 + queued
    assert three.total > one.total
    # Small frames: all three windows' source frames are kept.
    small = estimate_job_bytes(128, 96, (128, 96), 8, 0, windows_in_flight=3)
    assert small.source_bytes == 3 * 128 * 96 * 3 * 8 + 3 * 128 * 96 * 8 + 8 * 128 * 96 * 6


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
    # 80-frame windows of 128x96: one window needs ~15 MiB, the three the streaming pass holds ~29 MiB.
    budget_mib = 20
    assert estimate_job_bytes(128, 96, (128, 96), 80, 0).total < budget_mib * MIB
    assert estimate_job_bytes(128, 96, (128, 96), 80, 0, windows_in_flight=3).total > budget_mib * MIB
    proc = DaemonProcess(
        state_dir=tmp_path / "state",
        log_path=tmp_path / "daemon.log",
        extra_args=["--memory-budget-mb", str(budget_mib)],
    ).start()
    try:
        with proc.client(timeout=60) as client:
            with pytest.raises(ClientError) as refused:
                client.submit(
                    str(clip),
                    output_path=str(tmp_path / "big"),
                    mask_path=str(masks),
                    options={"eraser": "telea", "working_height": 0, "subvideo_length": 80},
                )
            assert refused.value.code == "RESOURCE_EXHAUSTED"
            message = refused.value.message
            numbers = [int(n) for n in re.findall(r"(\d+) MiB", message)]
            assert "needs about" in message and "3 windows of 80 frames in flight" in message, message
            assert f"budget is {budget_mib} MiB" in message
            assert numbers[0] > budget_mib, message  # the total it needs, first
            assert not (tmp_path / "big").exists()
            # Two-frame windows fit; the daemon still serves and runs them.
            job = client.submit(
                str(clip),
                output_path=str(tmp_path / "small"),
                mask_path=str(masks),
                options={"eraser": "telea", "working_height": 0, "subvideo_length": 2},
            )
            final = client.wait(job.id, timeout=120)
            assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
            assert len(list((tmp_path / "small").iterdir())) == 4
    finally:
        proc.stop()
        proc.kill()


def test_daemon_rejects_a_nonsense_budget(tmp_path: Path):
    import subprocess
    import sys

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "peanut_server.daemon.main",
            "--state-dir",
            str(tmp_path),
            "--port",
            "0",
            "--memory-budget-mb",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 2 and "--memory-budget-mb must be positive" in run.stderr


# -- one model cache: every backend's networks, by bytes per memory pool ----------------------------


class PooledBackend(DeclaredBackend):
    def __init__(self, size: int, pool: str) -> None:
        super().__init__(size)
        self.memory_pool = pool


def test_get_or_load_loads_once_and_reuses_across_jobs():
    cache = ModelCache(budget_bytes=10 * MIB)
    calls = []

    def load():
        calls.append(1)
        return TorchBackend(8)

    first = cache.get_or_load(("model", "tiny", "cpu"), load)
    second = cache.get_or_load(("model", "tiny", "cpu"), load)
    assert first is second and calls == [1] and cache.loads == [("model", "tiny", "cpu")]
    assert cache.size_of(("model", "tiny", "cpu")) == estimate_bytes(first) > 0


def test_loading_evicts_least_recently_used_to_make_room_for_the_declared_size():
    net_bytes = estimate_bytes(TorchBackend(16))
    cache = ModelCache(budget_bytes=int(net_bytes * 2.5))
    cache.get_or_load(("model", "a"), lambda: TorchBackend(16))
    cache.get_or_load(("model", "b"), lambda: TorchBackend(16))
    cache.get_or_load(("model", "a"), lambda: pytest.fail("a is loaded"))  # a is now the most recent
    # c declares its size up front: room is made before it loads, by unloading b.
    cache.get_or_load(("model", "c"), lambda: TorchBackend(16), reserve={"cpu": net_bytes})
    assert cache.evicted == [("model", "b")] and set(cache) == {("model", "a"), ("model", "c")}
    assert cache.total_bytes("cpu") == 2 * net_bytes


def test_pools_are_budgeted_apart():
    limits = {"cuda:0": 300}
    cache = ModelCache(budget_bytes=100, limit_of=limits.get)
    cache[("model", "gpu-a")] = PooledBackend(200, "cuda:0")
    cache[("model", "ram")] = PooledBackend(80, "cpu")
    assert set(cache) == {("model", "gpu-a"), ("model", "ram")}  # 200 on the GPU does not count in RAM
    cache[("model", "gpu-b")] = PooledBackend(200, "cuda:0")  # 400 > 300 on cuda:0: gpu-a goes
    assert cache.evicted == [("model", "gpu-a")]
    assert cache.total_bytes("cuda:0") == 200 and cache.total_bytes("cpu") == 80


def _need(key, pool, weights, activations):
    from peanut_server.models.cache import ModelNeed

    return ModelNeed(key=key, pool=pool, weight_bytes=weights, activation_bytes=activations)


def test_check_job_refuses_by_bytes_per_pool_and_admits_what_eviction_can_fit():
    budget = MemoryBudget(200 * MIB, accelerator_bytes={"cuda:0": 1000 * MIB})
    small = (64, 64)
    # A model that cannot fit on the GPU even alone: refused, naming the pool and the model.
    with pytest.raises(ResourceExhausted) as refused:
        budget.check_job(
            64, 64, small, 2, [], needs=[_need(("model", "raft-large", "cuda:0"), "cuda:0", 100 * MIB, 2000 * MIB)]
        )
    assert "on cuda:0" in refused.value.message and "raft-large" in refused.value.message
    assert "budget there is 1000 MiB" in refused.value.message
    # Other models hold the GPU now, but unloading them makes room: admitted.
    budget.cache[("model", "other", "cuda:0")] = PooledBackend(900 * MIB, "cuda:0")
    estimate = budget.check_job(
        64, 64, small, 2, [], needs=[_need(("model", "x", "cuda:0"), "cuda:0", 300 * MIB, 300 * MIB)]
    )
    assert estimate.accelerator_bytes == {"cuda:0": 600 * MIB}
    # RAM: weights and activations of a CPU model count with the frames.
    with pytest.raises(ResourceExhausted, match="models 250 MiB"):
        budget.check_job(64, 64, small, 2, [], needs=[_need(("model", "y", "cpu"), "cpu", 50 * MIB, 200 * MIB)])


def test_check_job_counts_a_loaded_model_by_its_measured_size():
    budget = MemoryBudget(100 * MIB)
    key = ("model", "tiny", "cpu")
    budget.cache.get_or_load(key, lambda: TorchBackend(8))
    measured = budget.cache.size_of(key)
    declared_wrong = _need(key, "cpu", 10**12, 0)  # a declaration far off: the measurement wins once loaded
    assert budget.need_bytes([declared_wrong]) == {"cpu": measured}


def test_learned_backends_report_their_bytes_to_the_one_cache(tmp_path, monkeypatch, state_dir):
    """BasicVSR++ and RAFT put their networks in the installed cache, measured (the budget saw 0 before)."""
    from peanut_server.flow import get_estimator
    from peanut_server.flow.models import RAFT_SMALL
    from peanut_server.flow.raft import build_raft
    from peanut_server.models.cache import install_model_cache
    from peanut_server.upscaler import BACKENDS

    models = tmp_path / "models"
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models))
    torch.manual_seed(0)
    (models / RAFT_SMALL.id).mkdir(parents=True)
    torch.save(build_raft("raft_small").state_dict(), models / RAFT_SMALL.id / RAFT_SMALL.files[0].filename)
    vsr_id = save_basicvsrpp_checkpoint(models).parent.name  # the file sits in its model id's folder

    budget = MemoryBudget(1024 * MIB)
    install_model_cache(budget.cache)
    try:
        raft = get_estimator("raft_small", device="cpu")
        upscaler_net = BACKENDS["basicvsrpp"]().model("cpu")
        assert get_estimator("raft_small", device="cpu") is raft  # the second job reuses it
        sizes = {key[1]: budget.cache.size_of(key) for key, _ in budget.cache.held()}
        assert sizes["raft-small"] == estimate_bytes(raft.model) > 0
        assert sizes[vsr_id] == estimate_bytes(upscaler_net) > 0
        assert budget.cache.total_bytes("cpu") == sizes["raft-small"] + sizes[vsr_id]
    finally:
        install_model_cache(None)


def test_job_needs_come_from_the_chosen_backends(tmp_path, monkeypatch, state_dir):
    from peanut_server.daemon.budget import job_model_needs
    from peanut_server.eraser import FlowGuidedEraser
    from peanut_server.flow.raft import raft_activation_bytes, raft_weight_bytes
    from peanut_server.pipeline.spec import PipelineOptions
    from peanut_server.upscaler import BACKENDS

    monkeypatch.setenv("PEANUT_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    opts = PipelineOptions()
    opts.eraser_options.flow = "raft_large"
    opts.eraser_options.device = opts.upscaler_options.device = "cpu"
    needs = job_model_needs([("eraser", FlowGuidedEraser), ("upscaler", BACKENDS["basicvsrpp"])], opts, (768, 432))
    by_model = {n.key[1]: n for n in needs}
    assert set(by_model) == {"raft-large", "basicvsrpp-reds4"}  # no LaMa: its weights are absent, auto skips it
    raft = by_model["raft-large"]
    assert raft.pool == "cpu" and raft.weight_bytes == raft_weight_bytes("raft_large") > 4_000_000 * 4
    assert raft.activation_bytes == raft_activation_bytes("raft_large", 432, 768)
    # The correlation volume grows with the square of the area: 1080p RAFT is refused on a 16 GiB budget.
    assert raft_activation_bytes("raft_large", 1080, 1920) > 16 * 1024 * MIB
    assert (
        by_model["basicvsrpp-reds4"].weight_bytes > 7_000_000 * 4 and by_model["basicvsrpp-reds4"].activation_bytes > 0
    )


def test_a_loaded_backend_instance_counts_in_its_own_pool():
    """A masker holding its network on a GPU counts against that GPU at Submit, not against RAM."""

    class Masker:
        name = "gpu-masker"

    budget = MemoryBudget(200 * MIB, accelerator_bytes={"cuda:0": 100 * MIB})
    budget.cache[("masker", "gpu-masker")] = PooledBackend(150 * MIB, "cuda:0")
    with pytest.raises(ResourceExhausted, match="on cuda:0"):
        budget.check_job(64, 64, (64, 64), 2, [("masker", Masker)])
    budget.cache[("masker", "gpu-masker")] = PooledBackend(150 * MIB, "cpu")
    assert budget.check_job(64, 64, (64, 64), 2, [("masker", Masker)]).model_bytes == 150 * MIB


def test_two_jobs_asking_at_once_share_one_load_and_a_failed_load_leaves_nothing():
    import threading
    import time

    cache = ModelCache(budget_bytes=10 * MIB)
    calls = []

    def slow_load():
        calls.append(1)
        time.sleep(0.2)
        return TorchBackend(4)

    got = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.get_or_load(("model", "m"), slow_load))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and len(got) == 3 and all(g is got[0] for g in got)

    def broken():
        raise RuntimeError("corrupt checkpoint")

    with pytest.raises(RuntimeError):
        cache.get_or_load(("model", "bad"), broken)
    assert ("model", "bad") not in cache
    assert cache.get_or_load(("model", "bad"), lambda: TorchBackend(4)) is not None  # a later try loads again
