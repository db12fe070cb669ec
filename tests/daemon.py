"""A real daemon process for integration tests, on a free localhost port.

    def test_x(daemon):
        with daemon.client() as client: ...

The daemon binds port 0 (the OS picks a free port) and writes the address it
got to server.json in its own temporary state directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from peanut_server.client import PeanutClient

REPO = Path(__file__).resolve().parents[1]


@dataclass
class DaemonProcess:
    state_dir: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    address: str = ""
    token: str = ""

    def start(self, timeout: float = 60.0) -> DaemonProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        server_file = self.state_dir / "server.json"
        if server_file.exists():
            server_file.unlink()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PEANUT_STATE_DIR=str(self.state_dir))
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "peanut_server.daemon.main",
                "--state-dir",
                str(self.state_dir),
                "--port",
                "0",
                *self.extra_args,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                data = json.loads(server_file.read_text())
                if data.get("pid") == self.process.pid:
                    self.address = data["addresses"][0]
                    self.token = (self.state_dir / "token").read_text().strip()
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not start in {timeout}s:\n{self.log()}")

    def client(self, **kwargs) -> PeanutClient:
        kwargs.setdefault("state_dir", self.state_dir)
        return PeanutClient(self.address, **kwargs)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as timed_out:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"daemon ignored signal {sig} for {timeout}s:\n{self.log()}") from timed_out

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def running_daemon(root: Path, extra_args: list[str] | None = None) -> Iterator[DaemonProcess]:
    """A daemon with its state under `root`, stopped (then killed if need be) afterwards."""
    proc = DaemonProcess(
        state_dir=root / "daemon-state", log_path=root / "daemon.log", extra_args=list(extra_args or [])
    ).start()
    try:
        yield proc
    finally:
        try:
            proc.stop()
        finally:
            proc.kill()


@pytest.fixture()
def daemon(tmp_path: Path):
    with running_daemon(tmp_path) as proc:
        yield proc
