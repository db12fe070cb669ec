"""The daemon as a process, driven by the real client: jobs, events, cancel, restart, auth, bad input."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peanut_server.api import peanut_pb2 as pb
from peanut_server.api import peanut_pb2_grpc as pb_grpc
from peanut_server.client import ClientError, PeanutClient
from peanut_server.media import frame_filename
from tests.clips import decode_index, make_index_clip, make_object_clip
from tests.daemon import DaemonProcess


@pytest.fixture()
def object_clip(tmp_path: Path, shared_data: Path):
    return make_object_clip(
        tmp_path / "clip", shared_data / "davis" / "tennis" / "00000.png", n_frames=12, size=(96, 64)
    )


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_submit_watch_to_completion(daemon, object_clip, tmp_path):
    out = tmp_path / "out" / "cleaned"
    out.parent.mkdir()
    with daemon.client() as client:
        job = client.submit(
            str(object_clip.frames),
            2,
            10,
            output_path=str(out),
            mask_path=str(object_clip.masks),
            options={"eraser": "telea"},
        )
        assert job.state == pb.JOB_STATE_QUEUED
        events = list(client.watch(job.id))
    assert events[0].type == pb.EVENT_TYPE_SNAPSHOT
    seqs = [e.seq for e in events[1:]]
    assert seqs == sorted(set(seqs)), "events must arrive in order, each once"
    final = events[-1].job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    assert {e.job.stage for e in events} >= {"masking", "erasing"}
    assert final.result.frame_count == 8
    backends = {pb.Stage.Name(b.stage): b.backend for b in final.result.backends}
    assert backends["STAGE_ERASER"] == "telea" and backends["STAGE_MASKER"] == "external"
    files = sorted(os.listdir(out))
    assert files == [frame_filename(i) for i in range(2, 10)]
    matte = Path(final.result.matte_path)
    assert sorted(os.listdir(matte)) == files
    for i in range(2, 10):
        source = read_rgb(object_clip.frames / f"frame_{i:06d}.png")
        cleaned = read_rgb(out / frame_filename(i))
        mask = cv2.imread(str(object_clip.masks / f"frame_{i:06d}.png"), cv2.IMREAD_GRAYSCALE) > 0
        # Far from the mask (beyond dilation + feather) the output is the source, bit for bit.
        far = cv2.dilate(mask.astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
        assert np.array_equal(cleaned[far], source[far])
        # The disc is gone: inside the mask no pixel keeps either stripe colour.
        for stripe_rgb in ((200, 40, 30), (20, 230, 240)):
            near = np.abs(cleaned[mask].astype(int) - stripe_rgb).max(axis=1) < 40
            assert near.mean() < 0.02
    assert not [p for p in os.listdir(out.parent) if "peanut-partial" in p]


def test_frame_accuracy_through_the_daemon(daemon, tmp_path):
    clip = make_index_clip(tmp_path / "index.mp4", 40, size=(64, 48), gop=12, bframes=2)
    mask = np.zeros((48, 64), np.uint8)
    mask[40:46, 58:62] = 255  # a corner far from the code cells
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    out = tmp_path / "out"
    with daemon.client() as client:
        job = client.submit(
            str(clip),
            17,
            29,
            output_path=str(out),
            mask_path=str(tmp_path / "mask.png"),
            options={"eraser": "telea", "working_height": 0},
        )
        final = client.wait(job.id, timeout=120)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    for i in range(12):
        assert decode_index(read_rgb(out / frame_filename(17 + i))) == 17 + i


def test_cancel_mid_job_removes_partial_output(daemon, tmp_path, shared_data):
    clip = make_object_clip(
        tmp_path / "clip", shared_data / "davis" / "bmx-trees" / "00000.jpg", n_frames=80, size=(192, 128)
    )
    out = tmp_path / "out"
    with daemon.client() as client:
        job = client.submit(
            str(clip.frames),
            output_path=str(out),
            mask_path=str(clip.masks),
            options={"eraser": "telea", "subvideo_length": 4},
        )
        for event in client.watch(job.id):
            if event.job.stage == "erasing" and event.job.frames_done >= 2:
                client.cancel(job.id)
                break
        final = client.wait(job.id, timeout=60)
        assert final.state == pb.JOB_STATE_CANCELLED
        assert not out.exists()
        assert not list(tmp_path.glob(".*peanut-partial*")), "partial output must be removed"
        assert client.info().version  # still serving


def test_jobs_survive_a_restart(tmp_path, object_clip):
    proc = DaemonProcess(state_dir=tmp_path / "state", log_path=tmp_path / "d.log").start()
    try:
        with proc.client() as client:
            job = client.submit(
                str(object_clip.frames),
                output_path=str(tmp_path / "o"),
                mask_path=str(object_clip.masks),
                options={"eraser": "telea"},
            )
            assert client.wait(job.id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
        assert proc.stop() == 0
        proc.start()
        with proc.client() as client:
            jobs = {j.id: j for j in client.list_jobs()}
            assert jobs[job.id].state == pb.JOB_STATE_SUCCEEDED
            assert jobs[job.id].result.output_path == str(tmp_path / "o")
    finally:
        proc.kill()


def _start_and_run_until(tmp_path, shared_data, frames_done: int):
    """A daemon running a 60-frame job in 4-frame windows, returned once `frames_done` are erased."""
    clip = make_object_clip(
        tmp_path / "clip", shared_data / "davis" / "bmx-trees" / "00000.jpg", n_frames=60, size=(192, 128)
    )
    out = tmp_path / "out"
    proc = DaemonProcess(state_dir=tmp_path / "state", log_path=tmp_path / "d.log").start()
    try:
        with proc.client() as client:
            # The flow-guided eraser, not Telea: with the erase pass overlapped, 60 Telea frames of this
            # size finish in ~0.13 s, before the stop below can reach a job still running.
            job = client.submit(
                str(clip.frames),
                output_path=str(out),
                mask_path=str(clip.masks),
                options={"eraser": "flowguided", "subvideo_length": 4},
            )
            for event in client.watch(job.id):
                if event.job.stage == "erasing" and event.job.frames_done >= frames_done:
                    break
    except BaseException:
        proc.kill()
        raise
    return proc, job, out


def test_sigterm_interrupts_and_resume_finishes(tmp_path, shared_data):
    proc, job, out = _start_and_run_until(tmp_path, shared_data, 8)
    try:
        assert proc.stop(signal.SIGTERM) == 0
        proc.start()
        with proc.client() as client:
            interrupted = client.get_job(job.id)
            assert interrupted.state == pb.JOB_STATE_INTERRUPTED
            done_before = interrupted.frames_done
            assert done_before >= 8
            client.resume(job.id)
            final = client.wait(job.id, timeout=120)
            assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
        assert sorted(os.listdir(out)) == [frame_filename(i) for i in range(60)]
    finally:
        proc.kill()


def test_wrong_or_missing_token_is_refused(daemon):
    with PeanutClient(daemon.address, token="not-the-token") as client:
        with pytest.raises(ClientError) as err:
            client.info()
        assert err.value.code == "UNAUTHENTICATED"
    with PeanutClient(daemon.address, token="") as client:
        with pytest.raises(ClientError) as err:
            client.list_jobs()
        assert err.value.code == "UNAUTHENTICATED"
    token_file = daemon.state_dir / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_health_and_reflection_need_no_token(daemon):
    with grpc.insecure_channel(daemon.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="peanut.v1.Peanut"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert "peanut.v1.Peanut" in names


def test_get_info_reports_backends(daemon):
    with daemon.client() as client:
        info = client.info()
    assert info.api_version == "peanut.v1" and info.device
    eraser = {b.name: b for b in info.backends if b.stage == pb.STAGE_ERASER}
    assert eraser["telea"].available
    assert any(b.is_default for b in eraser.values())


def _expect(client, code: str, words: str, **kwargs):
    with pytest.raises(ClientError) as err:
        client.submit(**kwargs)
    assert err.value.code == code, err.value.message
    assert words in err.value.message.lower(), err.value.message
    assert client.info().version  # the daemon keeps serving


def test_bad_input_gets_a_clear_status(daemon, tmp_path, object_clip):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    unreadable = tmp_path / "secret.mp4"
    unreadable.write_bytes(b"")
    mask4x3 = tmp_path / "mask_4x3.png"
    cv2.imwrite(str(mask4x3), np.full((60, 80), 255, np.uint8))
    mask_scaled = tmp_path / "mask_scaled.png"
    big = np.zeros((128, 192), np.uint8)
    big[20:40, 20:40] = 255
    cv2.imwrite(str(mask_scaled), big)
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.zeros((64, 96), np.uint8))
    few_masks = tmp_path / "few"
    few_masks.mkdir()
    for i in range(3):
        cv2.imwrite(str(few_masks / f"m{i}.png"), big)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("the editor's file")
    src, masks = str(object_clip.frames), str(object_clip.masks)
    out = str(tmp_path / "o")
    with daemon.client() as client:
        _expect(client, "NOT_FOUND", "not", source_path=str(tmp_path / "missing.mp4"), output_path=out, mask_path=masks)
        _expect(client, "INVALID_ARGUMENT", "corrupt.mp4", source_path=str(corrupt), output_path=out, mask_path=masks)
        _expect(client, "INVALID_ARGUMENT", "secret.mp4", source_path=str(unreadable), output_path=out, mask_path=masks)
        _expect(client, "OUT_OF_RANGE", "12", source_path=src, start=5, end=30, output_path=out, mask_path=masks)
        _expect(client, "INVALID_ARGUMENT", "aspect", source_path=src, output_path=out, mask_path=str(mask4x3))
        _expect(client, "INVALID_ARGUMENT", "empty", source_path=src, output_path=out, mask_path=str(empty))
        _expect(client, "INVALID_ARGUMENT", "3", source_path=src, output_path=out, mask_path=str(few_masks))
        _expect(client, "INVALID_ARGUMENT", "source", source_path=src, output_path=src, mask_path=masks)
        _expect(client, "INVALID_ARGUMENT", "source", source_path=src, output_path=src + "/inside", mask_path=masks)
        _expect(client, "ALREADY_EXISTS", "exists", source_path=src, output_path=str(existing), mask_path=masks)
        _expect(client, "INVALID_ARGUMENT", "range", source_path=src, start=6, end=3, output_path=out, mask_path=masks)
        # A mask that differs from the source only in scale is accepted (and resized).
        job = client.submit(src, output_path=out, mask_path=str(mask_scaled), options={"eraser": "telea"})
        assert client.wait(job.id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
    assert sorted(os.listdir(existing)) == ["keep.txt"]  # nothing the user owns was touched
    assert (existing / "keep.txt").read_text() == "the editor's file"


def test_kill_9_then_resume_keeps_finished_frames(tmp_path, shared_data):
    proc, job, out = _start_and_run_until(tmp_path, shared_data, 12)
    try:
        proc.kill()  # SIGKILL: no chance to clean up
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".out.peanut-partial")]
        assert len(staging) == 1
        # A frame being written at the kill is left as a hidden .tmp file: not a finished frame.
        before = {p.name: p.stat().st_mtime_ns for p in staging[0].iterdir() if not p.name.startswith(".")}
        assert len(before) >= 12
        proc.start()
        with proc.client() as client:
            assert client.get_job(job.id).state == pb.JOB_STATE_INTERRUPTED
            client.resume(job.id)
            assert client.wait(job.id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
        after = {name: (out / name).stat().st_mtime_ns for name in before if (out / name).exists()}
        assert after == before, "finished frames must not be recomputed"
        assert len(os.listdir(out)) == 60
    finally:
        proc.kill()


def test_the_error_code_travels_in_the_status_details_and_the_text_stays_human(daemon, tmp_path):
    # Issue 15, point 16: the code was appended to the message text as "[MEDIA_NOT_FOUND]".
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    missing = str(tmp_path / "nope.mp4")
    with daemon.client() as client:
        with pytest.raises(ClientError) as err:
            client.submit(missing, output_path=str(tmp_path / "o"), mask_path=missing)
    assert err.value.reason == "MEDIA_NOT_FOUND" and err.value.code == "NOT_FOUND"
    assert "nope.mp4" in err.value.message and "[" not in err.value.message, err.value.message
    # Any gRPC client reads it the standard way, without the PEANUT client.
    channel = grpc.insecure_channel(daemon.address)
    stub = pb_grpc.PeanutStub(channel)
    with pytest.raises(grpc.RpcError) as raw:
        stub.Submit(
            pb.SubmitRequest(
                source=pb.MediaRange(path=missing),
                mask=pb.MaskSpec(mask_path=missing),
                output=pb.OutputSpec(path=str(tmp_path / "o")),
            ),
            metadata=[("authorization", f"Bearer {daemon.token}")],
            timeout=30,
        )
    status = rpc_status.from_call(raw.value)
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append((info.reason, info.domain))
    channel.close()
    assert infos == [("MEDIA_NOT_FOUND", "peanut.v1")]


def test_a_job_through_the_daemon_gives_the_frames_a_local_run_gives(daemon, tmp_path, shared_data):
    """Whatever ran in the daemon before (its warm-up erases a 32x48 clip, other jobs), a job's
    frames are the ones `peanut remove --local` writes for it. OpenCV's DIS kept settings adapted
    to the warm-up's small frames, so every daemon job's fill differed from the local one (on DAVIS
    dog-agility: 84k hole pixels filled by Telea against 15k)."""
    import subprocess
    import sys

    frames = tmp_path / "frames"
    masks = tmp_path / "masks"
    frames.mkdir()
    masks.mkdir()
    for t, path in enumerate(sorted((shared_data / "davis" / "bmx-trees").iterdir())[:8]):
        image = cv2.imread(str(path))
        cv2.imwrite(str(frames / f"{t:05d}.png"), image)
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.ellipse(mask, (150 + 8 * t, 120), (40, 60), 0, 0, 360, 255, -1)
        cv2.imwrite(str(masks / f"{t:05d}.png"), mask)
    local = tmp_path / "local"
    done = subprocess.run(
        [sys.executable, "-m", "peanut_server.cli", "remove", str(frames), "-o", str(local)]
        + ["--mask", str(masks), "--local", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    through = tmp_path / "daemon"
    with daemon.client() as client:
        final = client.wait(client.submit(str(frames), output_path=str(through), mask_path=str(masks)).id, timeout=300)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    for t in range(8):
        ours, theirs = read_rgb(through / frame_filename(t)), read_rgb(local / frame_filename(t))
        assert np.array_equal(ours, theirs), f"frame {t}: {int((ours != theirs).any(-1).sum())} pixels differ"
