"""Security checks: where the daemon writes, how it listens, and what it refuses to unpickle."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from peanut_server.api import peanut_pb2 as pb
from peanut_server.client import ClientError, PeanutClient
from peanut_server.errors import ModelError
from tests.daemon import DaemonProcess

REPO = Path(__file__).resolve().parents[1]


def make_clip(folder: Path, n: int = 3) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"f_{i}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 10:20] = 255
    mask_path = folder.parent / f"{folder.name}_mask.png"
    cv2.imwrite(str(mask_path), mask)
    return folder, mask_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


# ----------------------------------------------------------------------------- where it writes


def test_output_through_a_symlink_into_the_source_is_refused(daemon, tmp_path):
    clip, mask = make_clip(tmp_path / "clip")
    before = snapshot(clip)
    (tmp_path / "link").symlink_to(clip)  # parent is a symlink into the source folder
    (tmp_path / "frame_link.png").symlink_to(clip / "f_0.png")  # output is a symlink onto a source file
    (tmp_path / "clip_alias").symlink_to(clip)  # output is the source folder, by another name
    cases = [
        (str(tmp_path / "link" / "out"), {}),
        (str(tmp_path / "link" / "deeper" / ".." / "out"), {}),
        (str(tmp_path / "frame_link.png"), {"overwrite": True}),
        (str(tmp_path / "clip_alias"), {"overwrite": True}),
    ]
    with daemon.client() as client:
        for out, extra in cases:
            with pytest.raises(ClientError) as refused:
                client.submit(str(clip), output_path=out, mask_path=str(mask), options={"eraser": "telea"}, **extra)
            assert refused.value.code in ("INVALID_ARGUMENT", "ALREADY_EXISTS"), (out, refused.value)
            assert "source" in refused.value.message or "does not exist" in refused.value.message, refused.value
        # A matte path through the symlink is refused just the same.
        with pytest.raises(ClientError) as refused:
            client.submit(
                str(clip),
                output_path=str(tmp_path / "ok"),
                mask_path=str(mask),
                matte_path=str(tmp_path / "link" / "matte"),
                options={"eraser": "telea"},
            )
        assert "source" in refused.value.message
    assert snapshot(clip) == before, "the source folder was written into"


def test_writes_land_only_under_the_named_output(daemon, tmp_path):
    """Overwriting an output folder that holds a symlink to the source removes the link, never the source."""
    clip, mask = make_clip(tmp_path / "clip")
    before = snapshot(clip)
    out_parent = tmp_path / "renders"
    out_parent.mkdir()
    out = out_parent / "cleaned"
    out.mkdir()
    (out / "evil").symlink_to(clip)  # an old output with a link back to the source
    (out / "evil_file.png").symlink_to(clip / "f_1.png")
    neighbours = {p.name for p in tmp_path.iterdir()}
    with daemon.client() as client:
        job = client.submit(
            str(clip), output_path=str(out), mask_path=str(mask), overwrite=True, options={"eraser": "telea"}
        )
        final = client.wait(job.id, timeout=120)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    assert snapshot(clip) == before
    assert sorted(os.listdir(out)) == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    # Beside the output: only its matte (the request's own second output); staging is gone.
    assert sorted(os.listdir(out_parent)) == ["cleaned", "cleaned_matte"]
    assert {p.name for p in tmp_path.iterdir()} == neighbours


# ----------------------------------------------------------------------------- how it listens


def test_unix_socket_and_token_are_owner_only(tmp_path):
    sock = tmp_path / "peanut.sock"
    proc = DaemonProcess(
        state_dir=tmp_path / "state", log_path=tmp_path / "d.log", extra_args=["--unix", str(sock)]
    ).start()
    try:
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(proc.state_dir / "token").st_mode) == 0o600
        with PeanutClient(f"unix:{sock}", state_dir=proc.state_dir) as client:
            assert client.info().pid == proc.process.pid
        with PeanutClient(f"unix:{sock}", token="wrong") as client, pytest.raises(ClientError) as denied:
            client.info()
        assert denied.value.code == "UNAUTHENTICATED"
    finally:
        proc.stop()
        proc.kill()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--host", "0.0.0.0"], "refusing to listen on non-loopback address 0.0.0.0"),
        (["--host", "::"], "refusing to listen on non-loopback address ::"),
        (["--host", "192.168.1.10"], "refusing to listen on non-loopback address"),
        (["--host", "0.0.0.0", "--allow-remote"], "--allow-remote needs --tls-cert and --tls-key"),
    ],
)
def test_non_loopback_binding_is_refused(tmp_path, args, words):
    # A daemon that served instead of refusing would outlive the timeout: TimeoutExpired fails the test.
    run = subprocess.run(
        [sys.executable, "-m", "peanut_server.daemon.main", "--state-dir", str(tmp_path / "s"), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert run.returncode == 2, run
    assert words in run.stderr and run.stderr.count("\n") == 1, run.stderr  # one line, no traceback
    assert not (tmp_path / "s" / "server.json").exists()


# ----------------------------------------------------------------------------- what it unpickles


def _python_files() -> list[Path]:
    roots = [REPO / "peanut_server", REPO / "plugins", REPO / "benchmarks"]
    return [p for root in roots if root.exists() for p in root.rglob("*.py") if "/api/" not in str(p)]


def test_no_pickle_and_no_unsafe_torch_load_in_the_code_base():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(
                    n and n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "shelve", "marshal") for n in names
                ):
                    offenders.append(f"{path}:{node.lineno}: imports {names}")
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
                if name == "load" and owner == "torch":
                    safe = any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in node.keywords
                    )
                    if not safe:
                        offenders.append(f"{path}:{node.lineno}: torch.load without weights_only=True")
                if name in ("from_pretrained",) and any(
                    k.arg == "trust_remote_code" and getattr(k.value, "value", False) for k in node.keywords
                ):
                    offenders.append(f"{path}:{node.lineno}: trust_remote_code=True")
                if (
                    name == "load"
                    and owner in ("numpy", "np")
                    and any(k.arg == "allow_pickle" and getattr(k.value, "value", False) for k in node.keywords)
                ):
                    offenders.append(f"{path}:{node.lineno}: np.load(allow_pickle=True)")
    assert offenders == [], "\n".join(offenders)


class Payload:
    """An object whose unpickling would run a command: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path, state: dict) -> Path:
    torch.save({"state_dict": state, "model": state, "meta": Payload(marker)}, path)
    return path


def loaders():
    from peanut_server.flow.raft import load_raft_file
    from peanut_server.masker.sam2.tracker import load_sam2_checkpoint
    from peanut_server.upscaler.basicvsrpp.loader import load_checkpoint

    return {
        "basicvsrpp": lambda p: load_checkpoint(p),
        "raft": lambda p: load_raft_file("raft_small", p),
        "sam2": lambda p: load_sam2_checkpoint(torch.nn.Linear(2, 2), p),
    }


@pytest.mark.parametrize("name", ["basicvsrpp", "raft", "sam2"])
def test_model_loaders_refuse_a_pickle_carrying_code(tmp_path, name):
    marker = tmp_path / "pwned"
    path = evil_checkpoint(tmp_path / f"{name}.pth", marker, {"weight": torch.zeros(2, 2)})
    with pytest.raises(ModelError) as refused:
        loaders()[name](path)
    assert (
        "weights_only" in str(refused.value).lower()
        or "unpickl" in str(refused.value).lower()
        or "unsupported" in str(refused.value).lower()
    ), refused.value
    assert not marker.exists(), "unpickling ran code from the checkpoint"


@pytest.mark.parametrize("name", ["basicvsrpp", "raft", "sam2"])
def test_model_loaders_refuse_a_non_tensor_object(tmp_path, name):
    """Not code, just an arbitrary class instance: still not data a checkpoint may carry."""
    path = tmp_path / f"{name}.pth"
    torch.save(
        {"state_dict": {"weight": torch.zeros(2)}, "model": {"weight": torch.zeros(2)}, "extra": PlainObject()}, path
    )
    with pytest.raises(ModelError):
        loaders()[name](path)


class PlainObject:
    value = 1
