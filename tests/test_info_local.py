"""`peanut info --local`: what this machine can run, without a daemon, in `peanut info`'s format.

CUDA is mocked at the torch level (nothing moves to a GPU); a tiny BasicVSR++
with the official key names stands for weights on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peanut_server import cli
from peanut_server.models import device as policy
from tests.tiny_models import save_basicvsrpp_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _daemon_defaults():
    policy.set_daemon_defaults("auto", "auto")
    yield
    policy.set_daemon_defaults("auto", "auto")


@pytest.fixture()
def one_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Path:
    """A models directory holding only a tiny random BasicVSR++ (official key names); no HF cache."""

    models = tmp_path / "models"
    save_basicvsrpp_checkpoint(models)
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return models


def gpu_machine(monkeypatch: pytest.MonkeyPatch, cuda: int = 1, capability: int = 8) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (capability, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_info_local_lists_backends_devices_and_models_without_a_daemon(one_model, state_dir, monkeypatch, capsys):
    gpu_machine(monkeypatch)
    assert cli.main(["info", "--local"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].endswith("on cuda:0 (Fake GPU), this process (--local: no daemon)"), lines[0]
    assert lines[1] == f"state: {state_dir}"
    # The weights present make BasicVSR++ the default upscaler, in fp16 on the (mocked) GPU.
    assert "  * upscaler  basicvsrpp  [cuda:0, fp16]" in lines
    # RAFT runs fp32 (autocast not known safe); the learned maskers say why they cannot run.
    assert any(line.startswith("  * eraser    flowguided  [cuda:0, fp32]") for line in lines), out
    sam2 = next(line for line in lines if " grounded-sam2 " in line)
    assert sam2.startswith("  - masker") and "[cuda:0, bf16]" in sam2 and "no tracker weights" in sam2
    assert "  * masker    motion" in out
    # Models: the one present with its folder, each missing one with the files and the command.
    assert f"  + basicvsrpp-reds4  {one_model / 'basicvsrpp-reds4'}" in lines
    assert any(
        line.startswith("  - sam3  not found: config.json") and "peanut models pull sam3" in line for line in lines
    )
    count = next(line for line in lines if line.startswith("models: "))
    assert count.startswith("models: 1 of ")

    # --device places backends as `peanut-server --device` would: CPU is fp32 everywhere.
    assert cli.main(["info", "--local", "--device", "cpu"]) == 0
    assert "  * upscaler  basicvsrpp  [cpu, fp32]" in capsys.readouterr().out.splitlines()


def test_info_local_json_is_the_info_message(one_model, monkeypatch, capsys):
    gpu_machine(monkeypatch, capability=7)  # before Ampere: SAM 2 gets no bf16
    assert cli.main(["info", "--local", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rows = {(row["stage"], row["name"]): row for row in info["backends"]}
    assert rows[("STAGE_UPSCALER", "basicvsrpp")]["device"] == "cuda:0"
    assert rows[("STAGE_UPSCALER", "basicvsrpp")]["precision"] == "fp16"
    assert rows[("STAGE_MASKER", "grounded-sam2")]["precision"] == "fp32"
    assert rows[("STAGE_MASKER", "grounded-sam2")].get("available", False) is False
    assert "peanut models pull" in rows[("STAGE_MASKER", "grounded-sam2")]["reason"]
    models = {m["id"]: m for m in info["models"]}
    assert models["basicvsrpp-reds4"].get("present") is True
    assert not models["raft-small"].get("present") and "peanut models pull raft-small" in models["raft-small"]["reason"]


def test_info_local_refuses_a_device_the_machine_lacks(one_model, monkeypatch, capsys):
    gpu_machine(monkeypatch, cuda=1)
    assert cli.main(["info", "--local", "--device", "cuda:3"]) == 2
    err = capsys.readouterr().err
    assert "cuda:3" in err and "1 CUDA device(s)" in err
    assert cli.main(["info", "--device", "cpu"]) == 2  # a daemon's device is its own
    assert "go with --local" in capsys.readouterr().err


def test_info_local_needs_no_daemon_and_does_not_import_it(one_model, state_dir):
    code = (
        "import sys; from peanut_server import cli; rc = cli.main(['info', '--local', '--json']); "
        "assert rc == 0, rc; "
        "assert not [m for m in sys.modules if m.startswith('peanut_server.daemon')], 'daemon imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300, env=None)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (
        info["state_dir"] == str(state_dir)
        and {"name": "motion"}.items() <= next(row for row in info["backends"] if row["name"] == "motion").items()
    )
