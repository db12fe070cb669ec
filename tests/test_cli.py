"""The `peanut` command as a user runs it: through a daemon, and --local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peanut_server.media import frame_filename
from tests.clips import make_object_clip

REPO = Path(__file__).resolve().parents[1]


def peanut(*args: str, state_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PEANUT_STATE_DIR=str(state_dir))
    return subprocess.run([sys.executable, "-m", "peanut_server.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def clip(tmp_path: Path, shared_data: Path):
    return make_object_clip(tmp_path / "clip", shared_data / "davis" / "tennis" / "00000.png", n_frames=10,
                            size=(96, 64))


def test_remove_through_the_daemon(daemon, clip, tmp_path):
    out = tmp_path / "cleaned"
    done = peanut("remove", str(clip.frames), "-o", str(out), "--mask", str(clip.masks), "--start", "3",
                  "--end", "8", "--eraser", "telea", "--json", state_dir=daemon.state_dir)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert sorted(os.listdir(out)) == [frame_filename(i) for i in range(3, 8)]
    # The client found the daemon through the state directory; info and jobs work the same way.
    info = peanut("info", state_dir=daemon.state_dir)
    assert info.returncode == 0 and "eraser" in info.stdout
    jobs = peanut("jobs", state_dir=daemon.state_dir)
    assert job["id"] in jobs.stdout and "succeeded" in jobs.stdout


def test_remove_local_without_daemon(clip, tmp_path):
    out = tmp_path / "cleaned"
    done = peanut("remove", str(clip.frames), "-o", str(out), "--mask", str(clip.masks), "--local",
                  "--eraser", "telea", state_dir=tmp_path / "nostate")
    assert done.returncode == 0, done.stderr
    assert "done: 10 frames" in done.stdout
    assert len(os.listdir(out)) == 10


@pytest.mark.parametrize("local", [False, True])
def test_bad_input_exits_non_zero_with_one_line(daemon, clip, tmp_path, local):
    args = ["remove", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o"), "--mask", str(clip.masks)]
    done = peanut(*args, *(["--local"] if local else []), state_dir=daemon.state_dir)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.mp4" in lines[0] and "Traceback" not in done.stderr


def test_no_daemon_is_a_clear_message(tmp_path, clip):
    done = peanut("info", "--server", "127.0.0.1:1", state_dir=tmp_path / "s")
    assert done.returncode == 3
    assert "no PEANUT daemon answers at 127.0.0.1:1" in done.stderr


def test_nothing_to_remove_is_refused(daemon, clip, tmp_path):
    done = peanut("remove", str(clip.frames), "-o", str(tmp_path / "o"), state_dir=daemon.state_dir)
    assert done.returncode == 2 and "nothing to remove" in done.stderr
