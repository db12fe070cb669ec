"""Hostile gRPC input against one real daemon: fuzzed requests, special files, size limits, deadlines.

Every request either queues a job or is refused with a named gRPC status whose
message names the problem and carries the error's stable code; the daemon never
crashes or hangs (every call has a deadline, and the daemon must still answer
GetInfo afterwards).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peanut_server.api import peanut_pb2 as pb
from peanut_server.api import peanut_pb2_grpc as pb_grpc
from peanut_server.client import error_reason
from tests.daemon import running_daemon

CALL_DEADLINE = 30.0
# Statuses that name a problem the user can act on. INTERNAL / UNKNOWN mean a
# bug, DEADLINE_EXCEEDED a hang, UNAVAILABLE a crash.
NAMED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
}


class Files:
    """Real and hostile paths on disk for the fuzzer to pick from."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.clip = root / "clip"
        self.masks = root / "masks"
        self.clip.mkdir()
        self.masks.mkdir()
        rng = np.random.default_rng(0)
        for i in range(4):
            cv2.imwrite(str(self.clip / f"f_{i:03d}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
            mask = np.zeros((48, 64), np.uint8)
            mask[10:20, 10:20] = 255
            cv2.imwrite(str(self.masks / f"m_{i:03d}.png"), mask)
        self.out = root / "out"
        self.out.mkdir()
        self.fifo = root / "pipe.mov"
        os.mkfifo(self.fifo)
        self.fifo_png = root / "pipe.png"
        os.mkfifo(self.fifo_png)
        self.sock_path = root / "sock.mp4"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.sock_path))
        self.dev_link = root / "zero.mov"
        self.dev_link.symlink_to("/dev/zero")
        self.proc_link = root / "status.png"
        self.proc_link.symlink_to("/proc/self/status")
        self.loop = root / "loop.mov"
        self.loop.symlink_to(root / "loop.mov")
        self.dir_as_file = root / "folder.mov"
        self.dir_as_file.mkdir()
        self.empty_dir = root / "empty"
        self.empty_dir.mkdir()
        self.unicode = root / "ünïcødé ✂ 片.mov"
        self.unicode.write_bytes(b"not a video")
        self.file_as_parent = root / "plain.txt"
        self.file_as_parent.write_text("x")
        # A source folder whose frames include a FIFO dressed as a PNG: listing must skip it, not block on it.
        self.clip_with_fifo = root / "clip_fifo"
        self.clip_with_fifo.mkdir()
        for name in sorted(os.listdir(self.clip)):
            os.link(self.clip / name, self.clip_with_fifo / name)
        os.mkfifo(self.clip_with_fifo / "f_999.png")
        self.masks_with_fifo = root / "masks_fifo"
        self.masks_with_fifo.mkdir()
        for name in sorted(os.listdir(self.masks)):
            os.link(self.masks / name, self.masks_with_fifo / name)
        os.mkfifo(self.masks_with_fifo / "m_000a.png")

    def hostile_sources(self) -> list[str]:
        return [
            str(p)
            for p in (
                self.fifo,
                self.fifo_png,
                self.sock_path,
                self.dev_link,
                self.proc_link,
                self.loop,
                self.dir_as_file,
                self.empty_dir,
                self.unicode,
                self.file_as_parent,
            )
        ] + [
            "/dev/zero",
            "/dev/stdin",
            "/proc/self/mem",
            "/proc/self/environ",
            "/sys/kernel",
            "/etc/passwd",
            str(self.clip) + "/../" * 30 + "etc/shadow",
            str(self.file_as_parent / "child"),
            "relative/path",
            "",
            "/" + "a" * 5000,
            "/tmp/\u202eevil",
            str(self.clip) + "\x00.png",
        ]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    files = Files(tmp_path_factory.mktemp("hostile"))
    yield files
    files.sock.close()


@pytest.fixture(scope="module")
def hostile_daemon(tmp_path_factory):
    with running_daemon(tmp_path_factory.mktemp("hostile-daemon"), ["--queue-size", "4"]) as proc:
        yield proc


@pytest.fixture(scope="module")
def stub(hostile_daemon):
    channel = grpc.insecure_channel(
        hostile_daemon.address,
        options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )
    yield pb_grpc.PeanutStub(channel)
    channel.close()


def call(hostile_daemon, method, request, timeout: float = CALL_DEADLINE):
    """One RPC with a deadline: (response, None) or (None, RpcError)."""
    metadata = [("authorization", f"Bearer {hostile_daemon.token}")]
    try:
        return method(request, metadata=metadata, timeout=timeout), None
    except grpc.RpcError as exc:
        return None, exc


def assert_named_or_ok(hostile_daemon, stub, response, error, what: str) -> None:
    if error is not None:
        code, details = error.code(), error.details() or ""
        assert code in NAMED, f"{what}: {code} {details}\n{hostile_daemon.log()}"
        assert details and error_reason(error), f"{what}: no named problem in the status details: {details!r}"
    elif isinstance(response, pb.Job):
        # The fuzzer found a valid request: fine, but do not let it pile up work.
        call(hostile_daemon, stub.Cancel, pb.CancelRequest(job_id=response.id))
    assert hostile_daemon.process.poll() is None, f"daemon died on {what}:\n{hostile_daemon.log()}"


def assert_alive(hostile_daemon, stub) -> None:
    info, error = call(hostile_daemon, stub.GetInfo, pb.GetInfoRequest(), timeout=10)
    assert error is None, f"daemon stopped answering: {error}\n{hostile_daemon.log()}"
    assert info.pid == hostile_daemon.process.pid


def path_strategy(files: Files):
    real = [str(files.clip), str(files.masks), str(files.clip_with_fifo), str(files.masks_with_fifo)]
    return st.one_of(
        st.sampled_from(files.hostile_sources() + real),
        st.text(min_size=0, max_size=300).map(lambda s: "/" + s),
        st.text(min_size=0, max_size=50),
        st.integers(1, 200_000).map(lambda n: "/" + "é" * n),
    )


def options_strategy():
    int32 = st.integers(-(2**31), 2**31 - 1)
    small = st.integers(-5, 3000)
    return st.builds(
        pb.Options,
        preset=st.sampled_from([0, 1, 2, 3]),
        masker=st.sampled_from(["", "auto", "external", "nope", "TELEA", "x" * 10_000]),
        eraser=st.sampled_from(["", "auto", "telea", "flowguided", "lama", "../../bin/sh"]),
        upscaler=st.sampled_from(["", "auto", "lanczos", "basicvsrpp", "\u0000"]),
        flow=st.sampled_from(["", "auto", "dis", "raft_large", "⚡"]),
        working_height=st.one_of(small, int32),
        mask_dilation=st.one_of(small, int32),
        feather=st.one_of(small, int32),
        neighbor_stride=small,
        step=small,
        subvideo_length=st.one_of(small, int32),
        mask_threshold=st.floats(allow_nan=True, allow_infinity=True, width=32),
        clip_window=small,
        seed=st.integers(0, 2**64 - 1),
    )


def frame_int():
    return st.one_of(st.integers(-10, 10), st.integers(-(2**63), 2**63 - 1))


@st.composite
def submit_requests(draw, files: Files):
    paths = path_strategy(files)
    source = pb.MediaRange(path=draw(paths), start_frame=draw(frame_int()))
    if draw(st.booleans()):
        source.end_frame = draw(frame_int())
    mask = pb.MaskSpec(
        text=draw(st.one_of(st.just(""), st.text(max_size=50), st.just("x" * 50_000))),
        mask_path=draw(st.one_of(st.just(""), paths)),
    )
    for _ in range(draw(st.integers(0, 2))):
        fp = mask.frame_prompts.add(frame=draw(frame_int()))
        fp.points.add(x=draw(st.floats(width=32)), y=draw(st.floats(width=32)), positive=draw(st.booleans()))
    output_name = draw(st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and "\x00" not in s))
    output = pb.OutputSpec(
        path=draw(st.one_of(paths, st.just(str(files.out / output_name)), st.just(str(files.clip / "inside")))),
        matte_path=draw(st.one_of(st.just(""), paths)),
        overwrite=draw(st.booleans()),
        patch_layer=draw(st.booleans()),
    )
    return pb.SubmitRequest(
        source=source,
        mask=mask,
        mode=draw(st.sampled_from([0, 1, 2, 7])),
        options=draw(options_strategy()),
        output=output,
        client=draw(st.text(max_size=20)),
    )


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_fuzzed_submit_requests_get_named_statuses(hostile_daemon, stub, files):
    @FUZZ
    @given(request=submit_requests(files))
    def check(request):
        response, error = call(hostile_daemon, stub.Submit, request)
        assert_named_or_ok(hostile_daemon, stub, response, error, f"Submit({request.source.path[:80]!r})")

    check()
    assert_alive(hostile_daemon, stub)


def test_fuzzed_preview_requests_get_named_statuses(hostile_daemon, stub, files):
    @FUZZ
    @given(
        path=path_strategy(files),
        frame=frame_int(),
        text=st.text(max_size=30),
        mask_path=st.one_of(st.just(""), path_strategy(files)),
        options=options_strategy(),
    )
    def check(path, frame, text, mask_path, options):
        request = pb.PreviewMaskRequest(
            path=path, frame=frame, mask=pb.MaskSpec(text=text, mask_path=mask_path), options=options
        )
        response, error = call(hostile_daemon, stub.PreviewMask, request)
        assert_named_or_ok(hostile_daemon, stub, response, error, f"PreviewMask({path[:80]!r}, {frame})")

    check()
    assert_alive(hostile_daemon, stub)


def test_fuzzed_timeline_requests_get_named_statuses(hostile_daemon, stub, files):
    otio_garbage = files.root / "garbage.otio"
    otio_garbage.write_bytes(os.urandom(2000))
    otio_truncated = files.root / "truncated.otio"
    otio_truncated.write_text('{"OTIO_SCHEMA": "Timeline.1", "name": "x", "tracks": {"OTIO_SCHEMA": "Stack.1", "chi')
    otio_fifo = files.root / "pipe.otio"
    os.mkfifo(otio_fifo)
    timelines = st.one_of(
        st.sampled_from([str(otio_garbage), str(otio_truncated), str(otio_fifo)]), path_strategy(files)
    )

    @FUZZ
    @given(
        timeline=timelines,
        output=st.one_of(path_strategy(files), st.just(str(files.out / "t.otio"))),
        media_dir=st.one_of(st.just(""), path_strategy(files)),
        overwrite=st.booleans(),
        options=options_strategy(),
    )
    def check(timeline, output, media_dir, overwrite, options):
        request = pb.ProcessTimelineRequest(
            timeline_path=timeline, output_path=output, media_dir=media_dir, options=options, overwrite=overwrite
        )
        response, error = call(hostile_daemon, stub.ProcessTimeline, request)
        assert_named_or_ok(hostile_daemon, stub, response, error, f"ProcessTimeline({timeline[:80]!r})")

    check()
    assert_alive(hostile_daemon, stub)


def submit(files: Files, source: str, mask: str | None = None, out: str | None = None, **range_) -> pb.SubmitRequest:
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=source, **range_),
        mask=pb.MaskSpec(mask_path=mask or str(files.masks)),
        options=pb.Options(eraser="telea"),
        output=pb.OutputSpec(path=out or str(files.out / f"o{time.monotonic_ns()}")),
    )
    return request


@pytest.mark.parametrize(
    "which, code, words",
    [
        ("fifo", "INVALID_ARGUMENT", "not a regular file"),
        ("fifo_png", "INVALID_ARGUMENT", "not a regular file"),
        ("sock_path", "INVALID_ARGUMENT", "not a regular file"),
        ("dev_link", "INVALID_ARGUMENT", "/dev/zero"),
        ("proc_link", "INVALID_ARGUMENT", "/proc/"),
        ("loop", "INVALID_ARGUMENT", "cannot be read"),
        ("dir_as_file", "INVALID_ARGUMENT", "no images"),
        ("unicode", "INVALID_ARGUMENT", "ünïcødé ✂ 片.mov"),
    ],
)
def test_special_files_as_source_are_refused_quickly(hostile_daemon, stub, files, which, code, words):
    path = str(getattr(files, which))
    started = time.monotonic()
    _, error = call(hostile_daemon, stub.Submit, submit(files, path), timeout=20)
    assert error is not None and error.code().name == code, error
    assert words in error.details(), error.details()
    assert time.monotonic() - started < 10, "a special file must not block the daemon"
    assert_alive(hostile_daemon, stub)


@pytest.mark.parametrize("which", ["fifo_png", "sock_path", "dev_link", "proc_link", "empty_dir"])
def test_special_files_as_mask_are_refused(hostile_daemon, stub, files, which):
    _, error = call(
        hostile_daemon, stub.Submit, submit(files, str(files.clip), mask=str(getattr(files, which))), timeout=20
    )
    assert error is not None and error.code() in NAMED, error
    assert "mask" in error.details().lower()
    assert_alive(hostile_daemon, stub)


def test_fifo_inside_frame_folders_is_skipped_not_read(hostile_daemon, stub, files):
    """A FIFO named like a frame must not block listing or reading: the folder's real frames run."""
    request = submit(files, str(files.clip_with_fifo), mask=str(files.masks_with_fifo))
    job, error = call(hostile_daemon, stub.Submit, request, timeout=20)
    assert error is None, error
    final = None
    for event in stub.Watch(
        pb.WatchRequest(job_id=job.id), metadata=[("authorization", f"Bearer {hostile_daemon.token}")], timeout=120
    ):
        final = event.job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    assert final.result.frame_count == 4


def test_ranges_negative_reversed_and_past_the_end(hostile_daemon, stub, files):
    cases = [
        (dict(start_frame=-1), "INVALID_ARGUMENT", "negative"),
        (dict(start_frame=3, end_frame=1), "INVALID_ARGUMENT", "reversed"),
        (dict(start_frame=2, end_frame=2), "INVALID_ARGUMENT", "empty"),
        (dict(start_frame=0, end_frame=2**62), "OUT_OF_RANGE", ""),
        (dict(start_frame=2**62), "OUT_OF_RANGE", ""),
    ]
    for range_, code, words in cases:
        _, error = call(hostile_daemon, stub.Submit, submit(files, str(files.clip), **range_))
        assert error is not None and error.code().name == code, (range_, error)
        assert words in error.details()
    assert_alive(hostile_daemon, stub)


def test_output_paths_that_escape_or_collide(hostile_daemon, stub, files):
    for out, words in [
        (str(files.clip), "source"),
        (str(files.clip / "sub"), "inside the source"),
        (str(files.file_as_parent / "out"), "does not exist"),
        ("/proc/self/out", "not writable"),
        (str(files.out) + "/../clip/x", "inside the source"),
    ]:
        _, error = call(hostile_daemon, stub.Submit, submit(files, str(files.clip), out=out))
        assert error is not None and error.code() in NAMED, (out, error)
        assert words in error.details(), (out, error.details())


def test_message_over_the_receive_limit_is_resource_exhausted(hostile_daemon, stub, files):
    request = submit(files, str(files.clip))
    request.mask.text = "x" * (17 * 1024 * 1024)  # over the daemon's 16 MiB limit
    _, error = call(hostile_daemon, stub.Submit, request)
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert "larger than max" in (error.details() or "").lower() or "message" in (error.details() or "").lower()
    # Just under the limit is parsed, and then refused for what it is, not for its size.
    request.mask.text = "x" * (15 * 1024 * 1024)
    _, error = call(hostile_daemon, stub.Submit, request)
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT and "1000" in error.details()
    assert_alive(hostile_daemon, stub)


def test_client_deadlines_end_calls_and_the_daemon_goes_on(hostile_daemon, stub, files):
    # A job long enough to outlive the watchers: 120 frames of 640x480.
    long_clip = files.root / "long"
    long_clip.mkdir(exist_ok=True)
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (480, 1, 3))
    for i in range(120):
        cv2.imwrite(str(long_clip / f"f_{i:03d}.png"), np.roll(ramp, i, axis=1))
    mask = np.zeros((480, 640), np.uint8)
    mask[200:260, 300:380] = 255
    cv2.imwrite(str(files.root / "long_mask.png"), mask)
    request = submit(files, str(long_clip), mask=str(files.root / "long_mask.png"))
    request.options.working_height = 0
    long_job, error = call(hostile_daemon, stub.Submit, request)
    assert error is None, error
    # Twenty watchers cut off by their deadline leave no stuck server threads behind.
    job, error = call(hostile_daemon, stub.Submit, submit(files, str(files.clip)))
    assert error is None, error
    for _ in range(20):
        with pytest.raises(grpc.RpcError) as cut:
            for _event in stub.Watch(
                pb.WatchRequest(job_id=job.id),
                metadata=[("authorization", f"Bearer {hostile_daemon.token}")],
                timeout=0.01,
            ):
                time.sleep(0.05)
        assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    metadata = [("authorization", f"Bearer {hostile_daemon.token}")]
    call(hostile_daemon, stub.Cancel, pb.CancelRequest(job_id=long_job.id))
    final = None
    for event in stub.Watch(pb.WatchRequest(job_id=job.id), metadata=metadata, timeout=120):
        final = event.job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    assert_alive(hostile_daemon, stub)


def test_bad_job_ids(hostile_daemon, stub):
    for job_id, code in [
        ("", "INVALID_ARGUMENT"),
        ("nope", "NOT_FOUND"),
        ("x" * 100_000, "NOT_FOUND"),
        ("'; DROP TABLE jobs; --", "NOT_FOUND"),
        ("\u0000", "NOT_FOUND"),
    ]:
        for method, message in (
            (stub.GetJob, pb.GetJobRequest),
            (stub.Cancel, pb.CancelRequest),
            (stub.Resume, pb.ResumeRequest),
            (stub.Watch, pb.WatchRequest),
        ):
            response, error = call(hostile_daemon, method, message(job_id=job_id))
            if method is stub.Watch and error is None:
                try:
                    list(response)
                except grpc.RpcError as exc:
                    error = exc
            assert error is not None and error.code().name == code, (job_id, error)
    _, error = call(hostile_daemon, stub.ListJobs, pb.ListJobsRequest(limit=-5, states=[99, -1]))
    assert error is None or error.code() in NAMED
    assert_alive(hostile_daemon, stub)


def test_full_queue_answers_resource_exhausted(hostile_daemon, stub, files):
    """Double clicks and runaway scripts: past --queue-size waiting jobs, Submit says so and nothing is lost."""
    long_clip = files.root / "queue_long"
    long_clip.mkdir(exist_ok=True)
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], (480, 1, 3))
    for i in range(60):
        cv2.imwrite(str(long_clip / f"f_{i:03d}.png"), np.roll(ramp, 3 * i, axis=1))
    mask = np.zeros((480, 640), np.uint8)
    mask[200:260, 300:380] = 255
    cv2.imwrite(str(files.root / "queue_mask.png"), mask)
    accepted, refused = [], None
    for _ in range(12):  # the module's daemon has --queue-size 4
        request = submit(files, str(long_clip), mask=str(files.root / "queue_mask.png"))
        request.options.working_height = 0
        job, error = call(hostile_daemon, stub.Submit, request)
        if error is not None:
            refused = error
            break
        accepted.append(job.id)
    try:
        assert refused is not None, "the queue never filled"
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
        assert "queue is full" in refused.details() and "4 jobs waiting" in refused.details()
        assert 4 <= len(accepted) <= 6  # 4 waiting, plus at most the one running
    finally:
        for job_id in accepted:
            call(hostile_daemon, stub.Cancel, pb.CancelRequest(job_id=job_id))
    for job_id in accepted:  # every accepted job is accounted for
        job, error = call(hostile_daemon, stub.GetJob, pb.GetJobRequest(job_id=job_id))
        assert error is None and job.id == job_id
    assert_alive(hostile_daemon, stub)
