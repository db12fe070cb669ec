"""The daemon under attacks (issue 13): each test drives real daemon processes the way an attacker
or an unlucky user would, and checks that the daemon refuses with a clear line, keeps what the user
owns, and goes on serving.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.api import peanut_pb2_grpc as pb_grpc
from peanut_server.client import ClientError, PeanutClient
from peanut_server.media import frame_filename
from tests.daemon import REPO, DaemonProcess

TELEA = {"eraser": "telea", "working_height": 0}
# Jobs a SIGTERM must catch mid-way: with the erase pass overlapped, 60 small Telea frames finish
# before the stop can reach them, so these use the flow-guided eraser in 4-frame windows.
SLOW_ENOUGH = {"eraser": "flowguided", "working_height": 0, "subvideo_length": 4}


# -- helpers -------------------------------------------------------------------


def small_clip(folder: Path, n: int = 4, size: tuple[int, int] = (64, 48), seed: int = 0) -> tuple[Path, Path]:
    """Noise frames and one static mask file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"f_{i:04d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[size[1] // 3 : size[1] // 2, size[0] // 3 : size[0] // 2] = 255
    mask_path = folder.parent / f"{folder.name}_mask.png"
    cv2.imwrite(str(mask_path), mask)
    return folder, mask_path


def long_clip(folder: Path, n: int = 8000) -> tuple[Path, Path]:
    """A clip that keeps the worker busy for a long while: n symlinks to one smooth 320x240 frame.

    Smooth, so the PNGs the job writes stay small; symlinks, so making it is quick.
    """
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:240, 0:320]
    frame = np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8)
    one = folder.parent / f"{folder.name}_frame.png"
    cv2.imwrite(str(one), frame)
    for i in range(n):
        (folder / f"f_{i:05d}.png").symlink_to(one)
    mask = np.zeros((240, 320), np.uint8)
    mask[100:140, 140:180] = 255
    mask_path = folder.parent / f"{folder.name}_mask.png"
    cv2.imwrite(str(mask_path), mask)
    return folder, mask_path


def start_blocker(client: PeanutClient, tmp_path: Path, name: str = "blocker") -> pb.Job:
    """Submit a long job and return once it runs (so later jobs wait in the queue)."""
    clip, mask = long_clip(tmp_path / f"{name}_clip")
    job = client.submit(str(clip), output_path=str(tmp_path / f"{name}_out"), mask_path=str(mask), options=TELEA)
    for event in client.watch(job.id):
        if event.job.state == pb.JOB_STATE_RUNNING:
            return event.job
        assert event.job.state == pb.JOB_STATE_QUEUED, event.job
    raise AssertionError("the blocker never ran")


def daemon_cmd(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "peanut_server.daemon.main", "--state-dir", str(state_dir), *args]


def run_daemon_expecting_exit(state_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Start a daemon that should refuse to start; a daemon that starts anyway is killed at the timeout."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        return subprocess.run(
            daemon_cmd(state_dir, *args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the daemon did not refuse to start: {exc.stderr!s:.2000}") from None


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def short_dir() -> Path:
    """A folder with a short path: unix socket paths are limited to about 100 bytes."""
    return Path(tempfile.mkdtemp(prefix="pn", dir="/tmp"))


def start(tmp_path: Path, *args: str, name: str = "state") -> DaemonProcess:
    return DaemonProcess(state_dir=tmp_path / name, log_path=tmp_path / f"{name}.log", extra_args=list(args)).start()


def db_states(state_dir: Path) -> dict[str, int]:
    db = sqlite3.connect(str(state_dir / "jobs.sqlite"))
    try:
        return dict(db.execute("SELECT id, state FROM jobs").fetchall())
    finally:
        db.close()


# -- a second daemon on the same state dir ------------------------------------------------------


def test_second_daemon_on_the_same_state_dir_exits_2_naming_the_first(tmp_path):
    first = start(tmp_path)
    try:
        before = (first.state_dir / "server.json").read_text()
        second = run_daemon_expecting_exit(first.state_dir, "--port", "0", timeout=30)
        assert second.returncode == 2, second.stderr
        line = one_line(second.stderr)
        assert first.address in line and "already" in line, line
        # The first daemon's address stays published, and it still answers.
        assert (first.state_dir / "server.json").read_text() == before
        with first.client() as client:
            assert client.info().pid == first.process.pid
    finally:
        first.stop()
        first.kill()


def test_second_daemon_does_not_touch_the_first_ones_jobs(tmp_path):
    first = start(tmp_path)
    try:
        with first.client() as client:
            blocker = start_blocker(client, tmp_path)
            run_daemon_expecting_exit(first.state_dir, "--port", "0", timeout=30)
            # Its running job is still RUNNING, in memory and on disk.
            assert client.get_job(blocker.id).state == pb.JOB_STATE_RUNNING
            assert db_states(first.state_dir)[blocker.id] == pb.JOB_STATE_RUNNING
            client.cancel(blocker.id)
    finally:
        first.stop()
        first.kill()


# -- SIGTERM with jobs queued ------------------------------------------------------------------


def test_sigterm_keeps_queued_jobs_queued_and_exits_0(tmp_path):
    proc = start(tmp_path)
    try:
        with proc.client() as client:
            blocker = start_blocker(client, tmp_path)
            clip, mask = small_clip(tmp_path / "clip")
            queued = [
                client.submit(str(clip), output_path=str(tmp_path / f"q{i}"), mask_path=str(mask), options=TELEA).id
                for i in range(2)
            ]
        # Well inside the daemon's grace: a stop that hangs or aborts fails here.
        assert proc.stop(signal.SIGTERM, timeout=25) == 0, proc.log()
        assert "terminate called" not in proc.log()
        states = db_states(proc.state_dir)
        assert states[blocker.id] == pb.JOB_STATE_INTERRUPTED
        assert [states[j] for j in queued] == [pb.JOB_STATE_QUEUED] * 2
        # After a restart the queued jobs run by themselves.
        proc.start()
        with proc.client() as client:
            for job_id in queued:
                assert client.wait(job_id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
            assert client.get_job(blocker.id).state == pb.JOB_STATE_INTERRUPTED
    finally:
        proc.kill()


def test_sigint_while_idle_exits_0(tmp_path):
    proc = start(tmp_path)
    try:
        assert proc.stop(signal.SIGINT, timeout=25) == 0, proc.log()
        assert not (proc.state_dir / "server.json").exists()
    finally:
        proc.kill()


# -- the queue limit ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["0", "-5"])
def test_queue_size_below_one_is_refused(tmp_path, size):
    result = run_daemon_expecting_exit(tmp_path / "state", "--port", "0", "--queue-size", size, timeout=30)
    assert result.returncode == 2
    assert "--queue-size" in one_line(result.stderr)


def test_cancelled_jobs_do_not_count_against_the_queue(tmp_path):
    proc = start(tmp_path, "--queue-size", "3")
    try:
        with proc.client() as client:
            blocker = start_blocker(client, tmp_path)
            clip, mask = small_clip(tmp_path / "clip")
            waiting = [
                client.submit(str(clip), output_path=str(tmp_path / f"q{i}"), mask_path=str(mask), options=TELEA).id
                for i in range(3)
            ]
            with pytest.raises(ClientError) as err:
                client.submit(str(clip), output_path=str(tmp_path / "q3"), mask_path=str(mask), options=TELEA)
            assert err.value.code == "RESOURCE_EXHAUSTED" and "3 jobs waiting" in err.value.message
            for job_id in waiting:
                assert client.cancel(job_id).state == pb.JOB_STATE_CANCELLED
            assert client.info().queue_length == 0
            job = client.submit(str(clip), output_path=str(tmp_path / "q4"), mask_path=str(mask), options=TELEA)
            assert job.state == pb.JOB_STATE_QUEUED
            client.cancel(blocker.id)
            assert client.wait(job.id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
    finally:
        proc.stop()
        proc.kill()


# -- a corrupt database -------------------------------------------------------------------------


def _damaged_db(state_dir: Path, damage: str) -> bytes:
    state_dir.mkdir(parents=True)
    path = state_dir / "jobs.sqlite"
    if damage == "garbage":
        path.write_bytes(b"this is not a database\n" * 200)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        # A real queue of 200 jobs, cut in the middle (a disk that filled, a copy that stopped).
        db = sqlite3.connect(str(path))
        db.execute(
            "CREATE TABLE jobs (rowid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
            " state INTEGER NOT NULL, job BLOB NOT NULL, timeline BLOB)"
        )
        for i in range(200):
            job = pb.Job(id=f"job{i:04d}", state=pb.JOB_STATE_SUCCEEDED, kind="remove", error="x" * 300)
            db.execute(
                "INSERT INTO jobs (id, state, job) VALUES (?, ?, ?)", (job.id, job.state, job.SerializeToString())
            )
        db.commit()
        db.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_database_is_moved_aside_kept_and_named(tmp_path, damage):
    state_dir = tmp_path / "state"
    original = _damaged_db(state_dir, damage)
    proc = DaemonProcess(state_dir=state_dir, log_path=tmp_path / "d.log")
    try:
        proc.start()
        log = proc.log()
        assert "Traceback" not in log
        kept = [p for p in state_dir.iterdir() if p.name.startswith("jobs.sqlite.damaged")]
        assert len(kept) == 1, sorted(p.name for p in state_dir.iterdir())
        assert kept[0].read_bytes() == original  # kept as it was, never deleted
        assert "ERROR" in log and str(state_dir / "jobs.sqlite") in log and kept[0].name in log, log
        # The daemon works on a fresh queue.
        clip, mask = small_clip(tmp_path / "clip")
        with proc.client() as client:
            job = client.submit(str(clip), output_path=str(tmp_path / "o"), mask_path=str(mask), options=TELEA)
            assert client.wait(job.id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
    finally:
        proc.stop()
        proc.kill()


# -- --unix PATH ---------------------------------------------------------------------------------


def test_unix_refuses_a_regular_file(tmp_path):
    folder = short_dir()
    target = folder / "notes.txt"
    target.write_text("the editor's notes")
    result = run_daemon_expecting_exit(tmp_path / "state", "--port", "-1", "--unix", str(target), timeout=30)
    assert result.returncode == 2
    assert str(target) in one_line(result.stderr)
    assert target.read_text() == "the editor's notes"


def test_unix_refuses_a_live_socket(tmp_path):
    folder = short_dir()
    path = folder / "live.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        inode = path.stat().st_ino
        result = run_daemon_expecting_exit(tmp_path / "state", "--port", "-1", "--unix", str(path), timeout=30)
        assert result.returncode == 2
        line = one_line(result.stderr)
        assert str(path) in line and "in use" in line, line
        assert path.stat().st_ino == inode  # not taken over
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))  # still reaches the listener it belongs to
        client.close()
    finally:
        listener.close()


def test_unix_takes_over_a_stale_socket(tmp_path):
    folder = short_dir()
    path = folder / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a crashed daemon leaves
    proc = DaemonProcess(
        state_dir=tmp_path / "state", log_path=tmp_path / "d.log", extra_args=["--unix", str(path)]
    ).start()
    try:
        with PeanutClient(f"unix:{path}", state_dir=proc.state_dir) as client:
            assert client.info().pid == proc.process.pid
    finally:
        proc.stop()
        proc.kill()


# -- the token ------------------------------------------------------------------------------------


def test_a_rotated_token_is_honoured_without_a_restart(daemon):
    old = daemon.token
    (daemon.state_dir / "token").write_text("a-new-token-chosen-by-the-admin\n")
    with daemon.client() as client:
        assert client.token == "a-new-token-chosen-by-the-admin"
        assert client.info().pid == daemon.process.pid
    with PeanutClient(daemon.address, token=old) as client:
        with pytest.raises(ClientError) as err:
            client.info()
        assert err.value.code == "UNAUTHENTICATED"


def test_a_deleted_token_file_is_written_again(daemon):
    (daemon.state_dir / "token").unlink()
    deadline = time.monotonic() + 20
    while not (daemon.state_dir / "token").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (daemon.state_dir / "token").read_text().strip() == daemon.token
    assert (daemon.state_dir / "token").stat().st_mode & 0o077 == 0
    with daemon.client() as client:
        assert client.info().pid == daemon.process.pid


def test_a_client_without_a_token_is_told_so(daemon, tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    with PeanutClient(daemon.address, state_dir=empty) as client:
        with pytest.raises(ClientError) as err:
            client.info()
    assert err.value.code == "UNAUTHENTICATED"
    assert "does not match" not in err.value.message
    assert "no token" in err.value.message and str(empty / "token") in err.value.message, err.value.message


# -- resume after the source changed ---------------------------------------------------------------


def _interrupted_job(tmp_path: Path, overwrite: bool):
    """A 60-frame noise job stopped by SIGTERM after 8 frames; the daemon is stopped on return."""
    clip, mask = small_clip(tmp_path / "clip", n=60, size=(160, 120), seed=1)
    out = tmp_path / "out"
    proc = start(tmp_path)
    try:
        with proc.client() as client:
            job = client.submit(
                str(clip), output_path=str(out), mask_path=str(mask), overwrite=overwrite, options=SLOW_ENOUGH
            )
            for event in client.watch(job.id):
                if event.job.stage == "erasing" and event.job.frames_done >= 8:
                    break
        assert proc.stop(signal.SIGTERM) == 0
    except BaseException:
        proc.kill()
        raise
    assert db_states(proc.state_dir)[job.id] == pb.JOB_STATE_INTERRUPTED
    return proc, job, clip, mask, out


def _change_source(clip: Path) -> None:
    """The editor re-renders the clip into the same folder: same names and sizes, other pixels."""
    rng = np.random.default_rng(99)
    for path in sorted(clip.iterdir()):
        image = cv2.imread(str(path))
        cv2.imwrite(str(path), rng.integers(0, 255, image.shape, dtype=np.uint8))


def test_resume_refuses_a_source_that_changed(tmp_path):
    proc, job, clip, mask, out = _interrupted_job(tmp_path, overwrite=False)
    try:
        _change_source(clip)
        proc.start()
        with proc.client() as client:
            with pytest.raises(ClientError) as err:
                client.resume(job.id)
            assert err.value.code == "FAILED_PRECONDITION"
            assert str(clip) in err.value.message and "changed" in err.value.message, err.value.message
            assert client.get_job(job.id).state == pb.JOB_STATE_INTERRUPTED
        assert not out.exists()
    finally:
        proc.stop()
        proc.kill()


def test_resume_with_overwrite_starts_again_from_the_new_source(tmp_path):
    proc, job, clip, mask, out = _interrupted_job(tmp_path, overwrite=True)
    try:
        _change_source(clip)
        proc.start()
        with proc.client() as client:
            client.resume(job.id)
            final = client.wait(job.id, timeout=180)
            assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
            assert any("changed" in w for w in final.warnings), final.warnings
        # Every output frame comes from the new source: a corner far from the mask is the source's pixels.
        for i, path in enumerate(sorted(clip.iterdir())):
            source = cv2.imread(str(path))
            cleaned = cv2.imread(str(out / frame_filename(i)))
            assert np.array_equal(cleaned[:20, :20], source[:20, :20]), f"frame {i} is from the old source"
    finally:
        proc.stop()
        proc.kill()


def test_resume_of_a_timeline_job_refuses_a_clip_that_changed(tmp_path):
    """A timeline job checks its timeline and every clip's media on Resume, as a single job does."""
    import opentimelineio as otio

    from peanut_server.media.sink import frame_filename  # noqa: F401 (the names the clip folders use)

    clip, mask = small_clip(tmp_path / "clip", n=60, size=(160, 120), seed=1)
    rate = 25
    timeline = otio.schema.Timeline(name="cut")
    track = otio.schema.Track(name="V1")
    timeline.tracks.append(track)
    track.append(
        otio.schema.Clip(
            name="noise",
            media_reference=otio.schema.ExternalReference(
                target_url=str(clip),
                available_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(60, rate)
                ),
            ),
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(60, rate)
            ),
            metadata={"peanut": {"mask": str(mask)}},
        )
    )
    cut = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(cut))
    proc = start(tmp_path)
    try:
        with proc.client() as client:
            job = client.process_timeline(
                str(cut), str(tmp_path / "cut_peanut.otio"), str(tmp_path / "media"), options=SLOW_ENOUGH
            )
            for event in client.watch(job.id):
                if event.job.stage == "erasing" and event.job.frames_done >= 8:
                    break
        assert proc.stop(signal.SIGTERM) == 0
        assert db_states(proc.state_dir)[job.id] == pb.JOB_STATE_INTERRUPTED
        _change_source(clip)
        proc.start()
        with proc.client() as client:
            with pytest.raises(ClientError) as err:
                client.resume(job.id)
            assert err.value.code == "FAILED_PRECONDITION"
            assert str(clip) in err.value.message and "changed" in err.value.message, err.value.message
            assert client.get_job(job.id).state == pb.JOB_STATE_INTERRUPTED
    finally:
        proc.stop()
        proc.kill()


# -- output path claims ------------------------------------------------------------------------------


def test_a_job_may_not_write_into_or_over_another_live_jobs_output(tmp_path):
    proc = start(tmp_path)
    clip, mask = small_clip(tmp_path / "clip")
    outs = tmp_path / "outs"
    outs.mkdir()
    try:
        with proc.client() as client:
            start_blocker(client, tmp_path)
            second, second_mask = long_clip(tmp_path / "second_clip")
            client.submit(
                str(second), output_path=str(tmp_path / "second_out"), mask_path=str(second_mask), options=TELEA
            )
            a = client.submit(str(clip), output_path=str(outs / "a"), mask_path=str(mask), options=TELEA)
            refused = [
                dict(output_path=str(outs / "a_matte"), overwrite=True),  # over A's matte
                dict(output_path=str(outs / "a" / "inner")),  # inside A's output
                dict(output_path=str(outs / "b"), matte_path=str(outs / "a")),  # a matte over A's output
                dict(output_path=str(outs / "x" / ".." / "a"), overwrite=True),  # the same place, spelt otherwise
            ]
            (outs / "x").mkdir()
            (outs / "a").mkdir()  # an empty folder is a valid output
            for kwargs in refused:
                with pytest.raises(ClientError) as err:
                    client.submit(str(clip), mask_path=str(mask), options=TELEA, **kwargs)
                assert err.value.code == "ALREADY_EXISTS" and a.id in err.value.message, (kwargs, err.value.message)
            (outs / "a").rmdir()
        # After a restart the first blocker is interrupted, the second runs, and A still waits: still protected.
        assert proc.stop(signal.SIGTERM) == 0
        proc.start()
        with proc.client() as client:
            assert client.get_job(a.id).state == pb.JOB_STATE_QUEUED
            with pytest.raises(ClientError) as err:
                client.submit(
                    str(clip), output_path=str(outs / "a_matte"), mask_path=str(mask), overwrite=True, options=TELEA
                )
            assert err.value.code == "ALREADY_EXISTS" and a.id in err.value.message
            # Once A is cancelled its paths are free again.
            client.cancel(a.id)
            job = client.submit(str(clip), output_path=str(outs / "a"), mask_path=str(mask), options=TELEA)
            assert job.state == pb.JOB_STATE_QUEUED
    finally:
        proc.stop()
        proc.kill()


# -- watch streams and unary calls ---------------------------------------------------------------


def _open_watches(address: str, token: str, job_id: str, count: int, channels: int):
    """`count` Watch streams spread over `channels` connections; returns (calls, errors, chans)."""
    # Each channel its own connection (gRPC would share one between channels to the same address):
    # the daemon counts watchers per connection, as separate `peanut watch` processes have.
    chans = [grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)]
    calls, errors = [], []
    metadata = [("authorization", f"Bearer {token}")]

    def drain(call):
        try:
            for _ in call:
                pass
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                errors.append(exc)

    for i in range(count):
        call = pb_grpc.PeanutStub(chans[i % channels]).Watch(pb.WatchRequest(job_id=job_id), metadata=metadata)
        calls.append(call)
        threading.Thread(target=drain, args=(call,), daemon=True).start()
    return calls, errors, chans


def test_unary_calls_are_served_with_40_watch_streams_open(tmp_path):
    proc = start(tmp_path)
    try:
        with proc.client(timeout=15) as client:
            blocker = start_blocker(client, tmp_path)
            clip, mask = small_clip(tmp_path / "clip")
            waiting = client.submit(str(clip), output_path=str(tmp_path / "o"), mask_path=str(mask), options=TELEA)
            calls, errors, chans = _open_watches(proc.address, proc.token, waiting.id, 40, channels=8)
            try:
                time.sleep(3)  # let every stream reach the daemon
                for _ in range(5):
                    assert client.info().pid == proc.process.pid
                    assert client.get_job(waiting.id).state == pb.JOB_STATE_QUEUED
                    assert len(client.list_jobs()) == 2
                assert errors == []
            finally:
                for call in calls:
                    call.cancel()
                for chan in chans:
                    chan.close()
            client.cancel(blocker.id)
    finally:
        proc.stop()
        proc.kill()


def test_watchers_per_client_are_capped_with_a_clear_status(tmp_path):
    from peanut_server.daemon.service import MAX_WATCHERS_PER_CLIENT

    proc = start(tmp_path)
    try:
        with proc.client(timeout=15) as client:
            blocker = start_blocker(client, tmp_path)
            calls, errors, chans = _open_watches(
                proc.address, proc.token, blocker.id, MAX_WATCHERS_PER_CLIENT + 1, channels=1
            )
            try:
                deadline = time.monotonic() + 30
                while not errors and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert len(errors) == 1, errors
                assert errors[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "watch" in errors[0].details() and str(MAX_WATCHERS_PER_CLIENT) in errors[0].details()
                assert client.info().pid == proc.process.pid
            finally:
                for call in calls:
                    call.cancel()
                for chan in chans:
                    chan.close()
            client.cancel(blocker.id)
    finally:
        proc.stop()
        proc.kill()


# -- RAM size where os.sysconf does not say -----------------------------------------------------------


def test_budget_when_os_sysconf_knows_no_ram_size(tmp_path):
    """As on Windows, where os.sysconf is missing: the budget comes from psutil, Submit works."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    wrapper = (
        "import os, sys\n"
        "real = os.sysconf\n"
        "def sysconf(name):\n"
        "    if name in ('SC_PHYS_PAGES', 'SC_PAGE_SIZE'):\n"
        "        raise ValueError('unrecognized configuration name')\n"
        "    return real(name)\n"
        "os.sysconf = sysconf\n"
        "from peanut_server.daemon.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    log = open(tmp_path / "d.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-c", wrapper, "--state-dir", str(state_dir), "--port", "0"],
        cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline and process.poll() is None:
            try:
                data = json.loads((state_dir / "server.json").read_text())
                address = data["addresses"][0] if data.get("pid") == process.pid else None
            except (OSError, ValueError):
                time.sleep(0.1)
        assert address, (tmp_path / "d.log").read_text()
        clip, mask = small_clip(tmp_path / "clip")
        with PeanutClient(address, state_dir=state_dir) as client:
            job = client.submit(str(clip), output_path=str(tmp_path / "o"), mask_path=str(mask), options=TELEA)
            assert client.wait(job.id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
        assert "memory budget 0 MiB" not in (tmp_path / "d.log").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- TLS ---------------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_the_client_speaks_tls_when_the_daemon_does(tmp_path):
    cert, key = _self_signed(tmp_path)
    proc = start(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        # The state directory says TLS and holds the certificate to trust.
        with proc.client() as client:
            assert client.info().pid == proc.process.pid
        # A client elsewhere is given the CA and the token explicitly.
        with PeanutClient(proc.address, state_dir=tmp_path / "nowhere", token=proc.token, tls_ca=cert) as client:
            assert client.info().pid == proc.process.pid
        # peanut --tls-ca works from the command line as well.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "peanut_server.cli",
                "info",
                "--server",
                proc.address,
                "--state-dir",
                str(proc.state_dir),
                "--tls-ca",
                str(cert),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
        )
        assert result.returncode == 0, result.stderr
    finally:
        proc.stop()
        proc.kill()


# -- ListJobs paging -----------------------------------------------------------------------------------


def test_list_jobs_pages_through_every_job(daemon, tmp_path):
    clip, mask = small_clip(tmp_path / "clip")
    with daemon.client() as client:
        ids = [
            client.submit(str(clip), output_path=str(tmp_path / f"o{i}"), mask_path=str(mask), options=TELEA).id
            for i in range(5)
        ]
        seen, token, pages = [], "", 0
        while True:
            jobs, token = client.list_jobs_page(limit=2, page_token=token)
            seen.extend(j.id for j in jobs)
            pages += 1
            assert len(jobs) <= 2
            if not token:
                break
        assert pages == 3
        assert seen == list(reversed(ids))  # newest first, each once
        with pytest.raises(ClientError) as err:
            client.list_jobs_page(limit=2, page_token="not-a-token")
        assert err.value.code == "INVALID_ARGUMENT" and "page_token" in err.value.message


# -- the event log of a job ---------------------------------------------------------------------------


def test_the_event_log_of_a_job_is_bounded_and_a_late_watcher_still_sees_the_end(tmp_path):
    from peanut_server.daemon.jobs import MAX_EVENTS_PER_JOB, JobChannel, JobStore

    store = JobStore(tmp_path / "jobs.sqlite")
    job = pb.Job(id="j1", state=pb.JOB_STATE_RUNNING, kind="remove")
    store.add(job)
    channel = JobChannel(job, store)
    slow = channel.watch(lambda: True, poll=0.01)
    assert next(slow).type == pb.EVENT_TYPE_SNAPSHOT
    for i in range(MAX_EVENTS_PER_JOB * 3):
        channel.update(pb.EVENT_TYPE_PROGRESS, "", persist=False, frames_done=i)
        channel.update(pb.EVENT_TYPE_WARNING, f"warning {i}", warnings=[f"warning {i}"])
    channel.update(pb.EVENT_TYPE_STATE, "succeeded", state=pb.JOB_STATE_SUCCEEDED)
    assert channel.event_count() <= MAX_EVENTS_PER_JOB
    # Warnings kept in the record are bounded too, and say how many were dropped.
    saved = store.get("j1")
    assert len(saved.warnings) <= MAX_EVENTS_PER_JOB and "more warnings" in saved.warnings[-1], saved.warnings[-1:]
    # A watcher that fell behind the log is told so with a fresh snapshot, and still sees the final state.
    rest = list(slow)
    assert rest[0].type == pb.EVENT_TYPE_SNAPSHOT
    assert rest[-1].job.state == pb.JOB_STATE_SUCCEEDED
    seqs = [e.seq for e in rest]
    assert seqs == sorted(seqs)
    store.close()
