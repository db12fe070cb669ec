"""Faults during a job, against a real daemon: a full disk, an unexpected exception, a vanished input.

Each fails that job with a named reason, removes its partial output, and the
daemon keeps serving the next job.

The full disk is a real small filesystem: a 2 MiB tmpfs mounted for the test
(the sandbox runs as root, so `mount -t tmpfs` works). Where mounting is not
permitted, the test falls back to RLIMIT_FSIZE on the daemon process (writes
past the size fail with EFBIG, which Python sees as an OSError because it
ignores SIGXFSZ): also a real kernel refusal, not a mock.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from tests.daemon import running_daemon


def noise_clip(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> tuple[Path, Path]:
    """Frames of noise (PNG barely compresses them) and one static mask."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"f_{i:03d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[size[1] // 3 : size[1] // 2, size[0] // 3 : size[0] // 2] = 255
    mask_path = folder.parent / f"{folder.name}_mask.png"
    cv2.imwrite(str(mask_path), mask)
    return folder, mask_path


def partials(folder: Path) -> list[str]:
    return [p for p in os.listdir(folder) if "peanut-partial" in p or "peanut-tmp" in p]


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 2 MiB filesystem: ("tmpfs", path) or ("fsize", path) when mounting is not permitted."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield ("tmpfs" if mounted else "fsize"), mount_point
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_fails_the_job_cleanly_and_the_daemon_goes_on(tmp_path, small_disk):
    kind, disk = small_disk
    # 12 noise frames of 480x360: ~6 MiB of PNGs, three times the 2 MiB disk.
    clip, mask = noise_clip(tmp_path / "clip", 12, (480, 360))
    with running_daemon(tmp_path) as proc:
        if kind == "fsize":
            # No mount here: cap every file the daemon writes at 256 KiB; a noise frame is ~500 KiB.
            resource.prlimit(proc.process.pid, resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
        out = disk / "cleaned"
        with proc.client(timeout=60) as client:
            job = client.submit(
                str(clip), output_path=str(out), mask_path=str(mask), options={"eraser": "telea", "working_height": 0}
            )
            final = client.wait(job.id, timeout=180)
            assert final.state == pb.JOB_STATE_FAILED, (final.state, final.error)
            assert final.error_code == "DISK_FULL", (final.error_code, final.error)
            assert "disk full" in final.error and "partial output was removed" in final.error
            # Nothing of the job is left on the small disk: no staging, no half output, no matte.
            assert os.listdir(disk) == [], os.listdir(disk)
            if kind == "tmpfs":
                assert shutil.disk_usage(disk).used < 64 * 1024
            # The daemon goes on: the same job to a roomy disk succeeds.
            roomy = tmp_path / "roomy"
            roomy.mkdir()
            job2 = client.submit(
                str(clip),
                0,
                3,
                output_path=str(roomy / "cleaned"),
                mask_path=str(mask),
                options={"eraser": "telea", "working_height": 0},
            )
            final2 = client.wait(job2.id, timeout=180)
            assert final2.state == pb.JOB_STATE_SUCCEEDED, final2.error
            assert len(os.listdir(roomy / "cleaned")) == 3
            assert partials(roomy) == []
            assert client.get_job(job.id).error_code == "DISK_FULL"
        assert proc.process.poll() is None


def test_full_disk_while_encoding_a_video_output(tmp_path, small_disk):
    kind, disk = small_disk
    if kind != "tmpfs":
        pytest.skip("needs a mounted small filesystem (RLIMIT_FSIZE is covered by the PNG test)")
    clip, mask = noise_clip(tmp_path / "clip", 8, (480, 360), seed=3)
    with running_daemon(tmp_path) as proc:
        with proc.client(timeout=60) as client:
            # Staging PNGs go beside the output on the small disk too: whichever write fails first, the job fails.
            job = client.submit(
                str(clip),
                output_path=str(disk / "cleaned.mkv"),
                mask_path=str(mask),
                options={"eraser": "telea", "working_height": 0},
            )
            final = client.wait(job.id, timeout=180)
            assert final.state == pb.JOB_STATE_FAILED and final.error_code == "DISK_FULL", final.error
            assert os.listdir(disk) == []
            assert client.info().pid == proc.process.pid


def test_unexpected_exception_fails_only_that_job(tmp_path):
    """A frame swapped for one of another size after Submit's checks: the eraser cannot stack the window.

    This reaches the pipeline as a plain ValueError (not a PeanutError): the job
    fails as INTERNAL with the exception named, its partial output is removed,
    and the daemon runs the next job.
    """
    blocker, blocker_mask = noise_clip(tmp_path / "blocker", 60, (320, 240), seed=1)
    clip, mask = noise_clip(tmp_path / "clip", 6, (96, 64), seed=2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with running_daemon(tmp_path) as proc:
        with proc.client(timeout=60) as client:
            first = client.submit(
                str(blocker),
                output_path=str(out_dir / "blocker"),
                mask_path=str(blocker_mask),
                options={"eraser": "telea", "working_height": 0},
            )
            victim = client.submit(
                str(clip),
                output_path=str(out_dir / "victim"),
                mask_path=str(mask),
                options={"eraser": "telea", "working_height": 0, "subvideo_length": 6},
            )
            # While it waits in the queue, frame 4 changes size (an editor re-rendering into the folder).
            cv2.imwrite(str(clip / "f_004.png"), np.zeros((80, 120, 3), np.uint8))
            client.cancel(first.id)
            final = client.wait(victim.id, timeout=180)
            assert final.state == pb.JOB_STATE_FAILED, final
            assert final.error_code in ("INTERNAL", "MEDIA_UNREADABLE"), final.error_code
            assert final.error and ("Error" in final.error or "size" in final.error), final.error
            assert partials(out_dir) == [] and not (out_dir / "victim").exists()
            # The next job runs.
            cv2.imwrite(str(clip / "f_004.png"), np.zeros((64, 96, 3), np.uint8))
            again = client.submit(
                str(clip),
                output_path=str(out_dir / "again"),
                mask_path=str(mask),
                options={"eraser": "telea", "working_height": 0},
            )
            done = client.wait(again.id, timeout=180)
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.error
        assert proc.process.poll() is None


def test_input_vanishing_mid_queue_fails_with_a_named_reason(tmp_path):
    blocker, blocker_mask = noise_clip(tmp_path / "blocker", 60, (320, 240), seed=1)
    clip, mask = noise_clip(tmp_path / "clip", 6, (96, 64), seed=2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with running_daemon(tmp_path) as proc:
        with proc.client(timeout=60) as client:
            first = client.submit(
                str(blocker),
                output_path=str(out_dir / "blocker"),
                mask_path=str(blocker_mask),
                options={"eraser": "telea", "working_height": 0},
            )
            victim = client.submit(
                str(clip),
                output_path=str(out_dir / "victim"),
                mask_path=str(mask),
                options={"eraser": "telea", "working_height": 0},
            )
            shutil.rmtree(clip)  # the card was ejected
            client.cancel(first.id)
            final = client.wait(victim.id, timeout=180)
            assert final.state == pb.JOB_STATE_FAILED
            assert final.error_code == "MEDIA_NOT_FOUND" and str(clip) in final.error, (final.error_code, final.error)
            assert partials(out_dir) == []
            assert client.info().pid == proc.process.pid


def test_many_failures_in_a_row_leave_the_daemon_responsive(tmp_path):
    """Twenty jobs that each fail at run time; GetInfo still answers fast and nothing is left behind."""
    clip, mask = noise_clip(tmp_path / "clip", 3, (64, 48), seed=4)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with running_daemon(tmp_path) as proc:
        with proc.client(timeout=60) as client:
            ids = []
            for i in range(20):
                ids.append(
                    client.submit(
                        str(clip), output_path=str(out_dir / f"o{i}"), mask_path=str(mask), options={"eraser": "telea"}
                    ).id
                )
            # The output folder vanishes (renamed away at once): jobs can no longer stage there.
            out_dir.rename(tmp_path / "gone")
            states = [client.wait(j, timeout=120) for j in ids]
            # Jobs that ran before the folder went succeeded; every later one failed with a named reason.
            failed = [s for s in states if s.state == pb.JOB_STATE_FAILED]
            assert len(failed) >= 10, [s.error for s in states]
            assert all(s.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED) for s in states)
            assert {s.error_code for s in failed} <= {"OUTPUT_INVALID", "IO_ERROR"}, {s.error_code for s in failed}
            assert all(s.error for s in failed)
            assert sum("does not exist" in s.error for s in failed) >= 10
            # Still answering: within a short deadline of its own (the client's 60 s would hide a stall).
            assert client.info(timeout=10).pid == proc.process.pid
        assert proc.process.poll() is None
