"""The device policy: CUDA, then MPS, then CPU; explicit devices checked; autocast only where known safe.

No GPU here: the CUDA and MPS paths are tested through the policy's decisions
with the hardware mocked at the torch level (torch.cuda.is_available,
device_count, get_device_capability, torch.backends.mps.is_available). Nothing
is moved to a GPU in these tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peanut_server.errors import InvalidRequest
from peanut_server.models import device as policy
from tests.tiny_models import save_basicvsrpp_checkpoint


@pytest.fixture(autouse=True)
def _daemon_defaults():
    policy.set_daemon_defaults("auto", "auto")
    yield
    policy.set_daemon_defaults("auto", "auto")


def machine(monkeypatch: pytest.MonkeyPatch, cuda: int = 0, mps: bool = False, capability: int = 8) -> None:
    """Make torch report `cuda` CUDA devices of compute capability `capability` and MPS or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (capability, 0))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    machine(monkeypatch, cuda=2, mps=True)
    assert policy.resolve_device(None) == "cuda:0"
    assert policy.resolve_device("auto") == "cuda:0"
    machine(monkeypatch, cuda=0, mps=True)
    assert policy.resolve_device("") == "mps"
    machine(monkeypatch, cuda=0, mps=False)
    assert policy.resolve_device(None) == "cpu"


def test_explicit_devices_are_checked_never_replaced(monkeypatch):
    machine(monkeypatch, cuda=2)
    assert policy.resolve_device("cuda") == "cuda:0"
    assert policy.resolve_device("CUDA:1") == "cuda:1"
    assert policy.resolve_device("cpu") == "cpu"
    with pytest.raises(InvalidRequest, match=r"has 2 CUDA device\(s\)"):
        policy.resolve_device("cuda:2")
    with pytest.raises(InvalidRequest, match="MPS is not available"):
        policy.resolve_device("mps")
    machine(monkeypatch, cuda=0)
    with pytest.raises(InvalidRequest, match="CUDA is not available"):
        policy.resolve_device("cuda")
    for bad in ("gpu", "cuda:x", "tpu:0", "cuda:"):
        with pytest.raises(InvalidRequest, match="choose from auto, cpu, cuda, cuda:N, mps"):
            policy.resolve_device(bad)


def test_the_job_request_wins_over_the_daemon_default(monkeypatch):
    machine(monkeypatch, cuda=1, mps=True)
    policy.set_daemon_defaults("mps")
    assert policy.resolve_device(None) == "mps"  # the job asked for nothing: the daemon's --device
    assert policy.resolve_device("cuda") == "cuda:0"  # the job's own request
    assert policy.resolve_device("cpu") == "cpu"
    with pytest.raises(InvalidRequest):
        policy.set_daemon_defaults("cuda:1")  # a device the machine lacks is refused at start
    assert policy.daemon_defaults() == ("mps", "auto")


def test_autocast_only_where_known_safe(monkeypatch):
    machine(monkeypatch, cuda=1, mps=True, capability=8)
    on_cuda = {name: policy.select(name, "cuda").dtype for name in ("basicvsrpp", "sam2", "sam3", "raft", "lama")}
    assert on_cuda == {
        "basicvsrpp": "float16",
        "sam2": "bfloat16",
        "sam3": "bfloat16",
        "raft": "float32",
        "lama": "float32",
    }
    assert "not known safe for raft" in policy.select("raft", "cuda").reason
    for device in ("mps", "cpu"):
        assert {policy.select(n, device).dtype for n in ("basicvsrpp", "sam2", "raft")} == {"float32"}
    # A GPU without bfloat16 (compute capability 7): fp32, not a silent fp16.
    machine(monkeypatch, cuda=1, capability=7)
    assert policy.select("sam2", "cuda").dtype == "float32"
    assert policy.select("basicvsrpp", "cuda").dtype == "float16"


def test_precision_overrides(monkeypatch):
    machine(monkeypatch, cuda=1, capability=8)
    policy.set_daemon_defaults("auto", "fp32")
    assert policy.select("basicvsrpp", None).dtype == "float32"  # daemon --precision fp32
    assert policy.select("basicvsrpp", None, "auto").autocast is False
    assert policy.select("raft", "cuda", "fp16").dtype == "float16"  # asked for by a benchmark
    assert policy.select("raft", "cuda", "bf16").precision == "bf16"
    with pytest.raises(InvalidRequest, match="only offered on CUDA"):
        policy.select("raft", "cpu", "fp16")
    with pytest.raises(InvalidRequest, match="unknown precision"):
        policy.select("raft", "cpu", "half")


def test_placement_autocast_context_is_real_on_cpu():
    placement = policy.select("raft", "cpu")
    assert placement.device == "cpu" and not placement.autocast
    layer = torch.nn.Linear(4, 4)
    with placement.autocast_context():
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_basicvsrpp_run_settings_follow_the_policy(monkeypatch):
    from peanut_server.upscaler.basicvsrpp.runner import choose_settings

    machine(monkeypatch, cuda=1)
    on_gpu = choose_settings(100, 100, 64, torch.device("cuda:0"))
    assert on_gpu.half and on_gpu.dtype == "float16"
    policy.set_daemon_defaults("auto", "fp32")
    assert not choose_settings(100, 100, 64, torch.device("cuda:0")).half
    assert not choose_settings(100, 100, 64, torch.device("cpu")).half


def test_backends_ask_the_policy_for_their_device(monkeypatch, tmp_path, state_dir):
    """RAFT and BasicVSR++ refuse a device the machine lacks, with the policy's reason."""
    from peanut_server.flow.raft import raft_available
    from peanut_server.upscaler.basicvsrpp.backend import BasicVSRPPUpscaler

    machine(monkeypatch, cuda=0)
    monkeypatch.setattr("peanut_server.models.registry.missing_reason", lambda model_id: "")
    monkeypatch.setattr(
        "peanut_server.upscaler.basicvsrpp.backend.find_weights", lambda: ("basicvsrpp-reds4", tmp_path / "w.pth")
    )
    assert raft_available("raft_small", "cpu") == (True, "")
    ok, reason = raft_available("raft_small", "cuda")
    assert not ok and "CUDA is not available" in reason
    ok, reason = BasicVSRPPUpscaler.availability("mps")
    assert not ok and "MPS is not available" in reason


def test_job_option_is_checked_and_reaches_every_stage():
    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline.spec import options_from_message

    opts = options_from_message(pb.Options(device="CUDA:1"))
    assert opts.device == opts.eraser_options.device == opts.upscaler_options.device == "cuda:1"
    assert options_from_message(pb.Options()).device == ""
    with pytest.raises(InvalidRequest, match="unknown device 'gpu'"):
        options_from_message(pb.Options(device="gpu"))


def test_daemon_refuses_a_device_it_does_not_have(tmp_path: Path):
    # No machine has 100 CUDA devices: refused at start, with or without a GPU.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "peanut_server.daemon.main",
            "--state-dir",
            str(tmp_path),
            "--port",
            "0",
            "--device",
            "cuda:99",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 2, run.stderr
    assert "--device" in run.stderr and ("CUDA is not available" in run.stderr or "CUDA device(s)" in run.stderr)


def test_info_shows_each_backends_device_and_a_job_device_is_checked_at_submit(tmp_path, monkeypatch, capsys):
    """`peanut info` names device and precision per learned backend; Submit refuses a device the machine lacks."""
    import cv2
    import numpy as np

    from peanut_server import cli
    from peanut_server.client import ClientError
    from tests.daemon import DaemonProcess

    models = tmp_path / "models"
    save_basicvsrpp_checkpoint(models)
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models))
    clip, masks = tmp_path / "clip", tmp_path / "masks"
    clip.mkdir()
    masks.mkdir()
    for i in range(2):
        cv2.imwrite(str(clip / f"f_{i:03d}.png"), np.full((64, 80, 3), 100, np.uint8))
        cv2.imwrite(str(masks / f"m_{i:03d}.png"), np.full((64, 80), 255, np.uint8))
    state = tmp_path / "state"
    proc = DaemonProcess(
        state_dir=state, log_path=tmp_path / "daemon.log", extra_args=["--device", "cpu", "--precision", "fp32"]
    ).start()
    try:
        with proc.client(timeout=60) as client:
            rows = {b.name: b for b in client.info().backends}
            assert (rows["basicvsrpp"].device, rows["basicvsrpp"].precision) == ("cpu", "fp32")
            assert rows["flowguided"].device == "cpu" and rows["lanczos"].device == ""
            with pytest.raises(ClientError) as refused:
                client.submit(
                    str(clip), output_path=str(tmp_path / "out"), mask_path=str(masks), options={"device": "cuda:99"}
                )
            assert refused.value.code == "INVALID_ARGUMENT" and "cuda:99" in refused.value.message
            assert not (tmp_path / "out").exists()
        monkeypatch.setenv("PEANUT_STATE_DIR", str(state))
        assert cli.main(["info", "--server", proc.address]) == 0
        assert "basicvsrpp  [cpu, fp32]" in capsys.readouterr().out
    finally:
        proc.stop()
        proc.kill()


def test_cli_sends_the_job_device():
    from peanut_server import cli
    from peanut_server.client import _options_message

    args = cli.build_parser().parse_args(
        ["remove", "/tmp/clip", "-o", "/tmp/out", "--mask", "/tmp/m", "--device", "cuda:1"]
    )
    assert _options_message(cli.options_from_args(args)).device == "cuda:1"
