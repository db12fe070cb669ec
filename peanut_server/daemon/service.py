"""The gRPC service and the worker that runs queued jobs one at a time."""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import queue
import shutil
import threading
import time
import traceback
import uuid
from contextlib import contextmanager

import cv2
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .. import API_VERSION, __version__
from ..api import peanut_pb2 as pb
from ..api import peanut_pb2_grpc as pb_grpc
from ..errors import InvalidRequest, JobCancelled, JobInterrupted, PeanutError, ResourceExhausted
from ..pipeline import Pipeline, spec_from_request
from ..pipeline import backends as backend_table
from ..pipeline.composite import working_size
from ..pipeline.info import add_backends_and_models, detect_device
from ..pipeline.messages import result_message
from ..pipeline.spec import absolute_path
from ..progress import ProgressState, Reporter
from .budget import WINDOWS_IN_FLIGHT, MemoryBudget, job_model_needs
from .inputs import fingerprint_job, fingerprint_timeline, first_difference
from .jobs import FINAL_STATES, JobChannel, JobStore

log = logging.getLogger(__name__)

INFO_CACHE_SECONDS = 5.0
# Finished jobs whose event logs stay in memory; older ones are read back from SQLite.
MAX_LIVE_CHANNELS = 256
# Watch streams hold an RPC thread each for as long as they are open. They get
# their own bounded share of the server's threads (main.py sizes the pool as
# unary threads + MAX_WATCHERS), so open streams never starve GetInfo, GetJob
# or Submit; one client (one connection) may hold at most MAX_WATCHERS_PER_CLIENT.
MAX_WATCHERS = 256
MAX_WATCHERS_PER_CLIENT = 32


ERROR_DOMAIN = "peanut.v1"


def abort_with_code(context, status: grpc.StatusCode, message: str, code: str) -> None:
    """Abort with `message` for people; the stable PEANUT error code travels in the status
    details (google.rpc.ErrorInfo, reason=code), where a client reads it without parsing text."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=code, domain=ERROR_DOMAIN))
    context.abort_with_status(
        rpc_status.to_status(status_pb2.Status(code=status.value[0], message=message, details=[detail]))
    )


def _abort_for(exc: Exception, context, method_name: str) -> None:
    """Abort the call with a named status for `exc` (re-raises gRPC's own aborts)."""
    if isinstance(exc, PeanutError):
        abort_with_code(context, getattr(grpc.StatusCode, exc.status), _clip(exc.message), exc.code)
    if isinstance(exc, OSError):
        # A path from the request the OS refuses (too long, a symlink loop,
        # not a folder): the caller's problem to fix, named, not a daemon bug.
        status, code = _os_error_status(exc)
        where = f" ({_clip(str(exc.filename), 200)})" if exc.filename else ""
        abort_with_code(context, status, f"cannot use path{where}: {exc.strerror or exc}", code)
    if isinstance(exc, grpc.RpcError) or type(exc).__name__ == "_AbortError":
        raise exc
    log.error("internal error in %s:\n%s", method_name, traceback.format_exc())
    abort_with_code(
        context, grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {_clip(str(exc))}", "INTERNAL"
    )


def rpc(method):
    """Turn PeanutErrors into gRPC statuses with their message; log anything else as a bug.

    Server-streaming methods are generators: their errors surface while the
    response is iterated, so the wrapper must iterate inside the try as well.
    """
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as exc:
                _abort_for(exc, context, method.__name__)

        return stream_wrapper

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort_for(exc, context, method.__name__)

    return wrapper


def _clip(text: str, limit: int = 2000) -> str:
    """Messages quote user input; a 100 kB path must not come back 100 kB long."""
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"


def _os_error_status(exc: OSError) -> tuple[grpc.StatusCode, str]:
    if exc.errno == errno.ENOSPC:
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "DISK_FULL"
    if exc.errno == errno.ENOENT:
        return grpc.StatusCode.NOT_FOUND, "PATH_NOT_FOUND"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return grpc.StatusCode.PERMISSION_DENIED, "PATH_NOT_PERMITTED"
    return grpc.StatusCode.INVALID_ARGUMENT, "PATH_INVALID"


class Worker:
    """Runs queued jobs one at a time, in submission order."""

    def __init__(self, store: JobStore, pipeline: Pipeline, capacity: int, warm: bool = True) -> None:
        self.warm = warm
        self.store = store
        self.pipeline = pipeline
        self.capacity = capacity
        self.channels: dict[str, JobChannel] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._running: tuple[str, Reporter] | None = None
        # Set by stop(): no new job starts, no new job is accepted.
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peanut-worker", daemon=True)

    def start(self) -> None:
        for job_id in self.store.queued_ids():
            self._queue.put(job_id)
        self._thread.start()

    def channel(self, job_id: str) -> JobChannel | None:
        with self._lock:
            channel = self.channels.get(job_id)
            if channel is None:
                job = self.store.get(job_id)
                if job is None:
                    return None
                channel = self.channels[job_id] = JobChannel(job, self.store)
            return channel

    def pending(self) -> int:
        """Jobs waiting to run. Cancelled jobs stay in the in-memory queue until the
        worker skips them, so the database's QUEUED rows are what counts."""
        return self.store.count(pb.JOB_STATE_QUEUED)

    def _check_intake(self) -> None:
        """Caller holds _lock."""
        if self.stopping.is_set():
            raise ShuttingDown("the daemon is shutting down; submit again once it has restarted")
        waiting = self.pending()
        if waiting >= self.capacity:
            raise ResourceExhausted(
                f"the queue is full ({waiting} jobs waiting, at most {self.capacity}); try again later"
            )

    def _check_claims(self, claims: tuple[str, ...]) -> None:
        """Refuse paths equal to, inside or around a path another live job writes. Caller holds _lock."""
        for other_id, other_path, state in self.store.live_claims():
            for path in claims:
                if path == other_path or _inside(path, other_path) or _inside(other_path, path):
                    how = "is" if path == other_path else ("is inside" if _inside(path, other_path) else "holds")
                    name = pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()
                    hint = "cancel it first" if state == pb.JOB_STATE_INTERRUPTED else "wait for it or cancel it"
                    raise OutputBusy(f"{path} {how} {other_path}, where job {other_id} ({name}) writes; {hint}")

    def _forget_finished(self) -> None:
        """Drop in-memory channels (and their event logs) of finished jobs past a cap.

        A daemon left running for days sees thousands of jobs; their records
        live in SQLite, so a later GetJob or Watch rebuilds the channel from
        there. Watchers already attached keep their channel object. Caller holds _lock.
        """
        if len(self.channels) <= MAX_LIVE_CHANNELS:
            return
        running = self._running[0] if self._running else None
        for job_id in [j for j, c in self.channels.items() if c.job.state in FINAL_STATES and j != running]:
            del self.channels[job_id]

    def enqueue(
        self, job: pb.Job, timeline: pb.ProcessTimelineRequest | None = None, claims: tuple[str, ...] = ()
    ) -> pb.Job:
        """Queue a job that writes to `claims` (resolved paths), unless another live job writes there."""
        with self._lock:
            self._forget_finished()
            self._check_intake()
            self._check_claims(claims)
            self.store.add(job, timeline, claims)
            self.channels[job.id] = JobChannel(job, self.store)
            self._queue.put(job.id)
        return job

    def requeue(self, job_id: str) -> pb.Job:
        channel = self.channel(job_id)
        with self._lock:
            self._check_intake()
            job = channel.update(pb.EVENT_TYPE_STATE, "resumed", state=pb.JOB_STATE_QUEUED, error="", error_code="")
            self._queue.put(job_id)
        return job

    def cancel(self, job_id: str) -> pb.Job:
        channel = self.channel(job_id)
        with self._lock:
            job = channel.job
            if job.state == pb.JOB_STATE_QUEUED or job.state == pb.JOB_STATE_INTERRUPTED:
                if job.state == pb.JOB_STATE_INTERRUPTED:
                    self._discard_staging(job)
                return channel.update(pb.EVENT_TYPE_STATE, "cancelled", state=pb.JOB_STATE_CANCELLED)
            if self._running and self._running[0] == job_id:
                self._running[1].cancel_event.set()
        return channel.job

    def stop(self, timeout: float = 30.0) -> bool:
        """Take no more jobs, interrupt the running one (it keeps its partial output for
        Resume) and wait for the worker thread. Queued jobs stay QUEUED in the database
        and run after the next start. False if the thread did not end in `timeout`."""
        with self._lock:
            self.stopping.set()
            if self._running:
                self._running[1].interrupt_event.set()
        self._queue.put(None)
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------

    def warm_up(self) -> None:
        """Run the default eraser and upscaler once on a tiny window, in the worker thread.

        Their first call imports torchvision and friends (seconds, with the GIL
        held in long stretches by extension loading). Done here, at start-up,
        that cost does not land on the first job, and GetInfo stays fast while
        jobs run. Failures only log: a job would report them properly.
        """
        import numpy as np

        from ..eraser.base import EraserOptions
        from ..upscaler.base import UpscalerOptions

        started = time.monotonic()
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
        masks = np.zeros((3, 32, 48), bool)
        masks[:, 10:20, 15:30] = True
        for stage in ("eraser", "upscaler"):
            try:
                choice = backend_table.choose(stage, "auto")
                instance = self.pipeline._instance(stage, choice.cls)
                if stage == "eraser":
                    instance.erase(frames, masks, EraserOptions(), Reporter())
                else:
                    instance.upscale(frames, (96, 64), None, UpscalerOptions(), Reporter())
            except Exception:  # noqa: BLE001 - a warm-up must never take the daemon down
                log.warning("warm-up of the %s failed", stage, exc_info=True)
        log.info("warm-up done in %.1fs", time.monotonic() - started)

    def _loop(self) -> None:
        if self.warm:
            self.warm_up()
        while not self.stopping.is_set():
            job_id = self._queue.get()
            if job_id is None or self.stopping.is_set():
                return
            channel = self.channel(job_id)
            if channel is None or channel.job.state != pb.JOB_STATE_QUEUED:
                continue  # cancelled while queued
            self._run(channel)

    def _run(self, channel: JobChannel) -> None:
        job = channel.job
        streamed: set[str] = set()  # warnings sent while the job ran; the result repeats some of them

        def warn(message: str) -> None:
            streamed.add(message)
            channel.update(pb.EVENT_TYPE_WARNING, message, warnings=[message])

        reporter = Reporter(callback=lambda state: self._progress(channel, state), warn_callback=warn)
        with self._lock:
            if self.stopping.is_set():
                return  # stays QUEUED: it runs after the next start
            self._running = (job.id, reporter)
        channel.update(pb.EVENT_TYPE_STATE, "started", state=pb.JOB_STATE_RUNNING)
        try:
            if job.kind == "timeline":
                resumed = self._check_inputs(channel, job)
                result = self._run_timeline(job, reporter, resumed)
            else:
                self._check_inputs(channel, job)
                removal = self.pipeline.run(spec_from_request(job.request), reporter, job_id=job.id)
                for warning in removal.warnings:
                    if warning not in streamed:
                        channel.update(pb.EVENT_TYPE_WARNING, warning, warnings=[warning])
                result = result_message(removal)
            channel.update(
                pb.EVENT_TYPE_STATE, "succeeded", state=pb.JOB_STATE_SUCCEEDED, result=result, eta_seconds=0.0
            )
        except JobCancelled:
            channel.update(pb.EVENT_TYPE_STATE, "cancelled", state=pb.JOB_STATE_CANCELLED)
        except JobInterrupted as exc:
            channel.update(
                pb.EVENT_TYPE_STATE, str(exc), state=pb.JOB_STATE_INTERRUPTED, error=str(exc), error_code=exc.code
            )
        except PeanutError as exc:
            full = _disk_full_message(job, exc)
            if full:
                channel.update(pb.EVENT_TYPE_STATE, full, state=pb.JOB_STATE_FAILED, error=full, error_code="DISK_FULL")
            else:
                channel.update(
                    pb.EVENT_TYPE_STATE, exc.message, state=pb.JOB_STATE_FAILED, error=exc.message, error_code=exc.code
                )
        except MemoryError:
            channel.update(
                pb.EVENT_TYPE_STATE,
                "out of memory",
                state=pb.JOB_STATE_FAILED,
                error="out of memory: try a lower working height or a shorter subvideo_length",
                error_code="OUT_OF_MEMORY",
            )
        except OSError as exc:
            # Full disk, permissions: the job fails, the daemon goes on.
            message = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
            full = _disk_full_message(job, exc)
            channel.update(
                pb.EVENT_TYPE_STATE,
                full or message,
                state=pb.JOB_STATE_FAILED,
                error=full or message,
                error_code="DISK_FULL" if full else "IO_ERROR",
            )
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            message = f"internal error: {type(exc).__name__}: {exc}"
            channel.update(
                pb.EVENT_TYPE_STATE, message, state=pb.JOB_STATE_FAILED, error=message, error_code="INTERNAL"
            )
        finally:
            with self._lock:
                self._running = None

    def _check_inputs(self, channel: JobChannel, job: pb.Job) -> bool:
        """First run: record the inputs' fingerprint. Resumed run: the inputs must be the same,
        or, for a job submitted with overwrite, it starts again from the first frame.
        True when the job resumes what an earlier run left (same inputs)."""
        timeline = self.store.timeline_request(job.id) if job.kind == "timeline" else None
        fingerprint = (
            (lambda: fingerprint_timeline(timeline)) if timeline is not None else (lambda: fingerprint_job(job.request))
        )
        before = self.store.inputs(job.id)
        if before is None:
            try:
                self.store.set_inputs(job.id, fingerprint())
            except Exception:  # noqa: BLE001 - a missing input or a bad timeline: the job's own checks name it
                pass
            return False
        change = first_difference(before, None if timeline is not None else job.request, quick=False)
        if not change:
            return True
        # A timeline job's clip folders are not known here, so its old frames
        # cannot be discarded: a changed timeline job is always refused.
        if timeline is not None or not job.request.output.overwrite:
            self._discard_staging(job)  # frames of the old input: no use to a job that cannot continue
            raise InputChanged(
                f"the input changed since the job started ({change}); its finished frames would "
                "not match the rest. Submit it again (with overwrite to replace the output)"
            )
        message = f"the input changed since the job started ({change}): starting again from the first frame"
        log.warning("job %s: %s", job.id, message)
        self._discard_staging(job)
        channel.update(pb.EVENT_TYPE_WARNING, message, warnings=[message])
        try:
            self.store.set_inputs(job.id, fingerprint())
        except Exception:  # noqa: BLE001
            self.store.set_inputs(job.id, None)  # the pipeline's checks name the missing input
        return False

    def _progress(self, channel: JobChannel, state: ProgressState) -> None:
        job = channel.job
        if state.stage != job.stage:
            channel.update(
                pb.EVENT_TYPE_STAGE,
                state.stage,
                stage=state.stage,
                frames_done=state.done,
                frames_total=state.total,
                eta_seconds=state.eta_seconds,
            )
        else:
            channel.update(
                pb.EVENT_TYPE_PROGRESS,
                "",
                persist=False,
                frames_done=state.done,
                frames_total=state.total,
                eta_seconds=state.eta_seconds,
            )

    def _run_timeline(self, job: pb.Job, reporter: Reporter, resumed: bool = False) -> pb.JobResult:
        from ..otio.jobs import run_timeline_job

        request = self.store.timeline_request(job.id)
        return run_timeline_job(request, self.pipeline, reporter, job.id, resumed=resumed)

    def _discard_staging(self, job: pb.Job) -> None:
        import shutil

        from ..pipeline import staging_path

        for path in (job.request.output.path, job.request.output.matte_path or job.result.matte_path):
            if path:
                shutil.rmtree(staging_path(path, job.id), ignore_errors=True)


# Less free space than this where the output goes, after a write failed: the disk is full.
DISK_FULL_SLACK = 4 * 1024 * 1024


def _disk_full_message(job: pb.Job, exc: BaseException) -> str:
    """A job's write failure, named as a full disk when it is one ("" otherwise).

    OpenCV only says a write failed, not why; errno says ENOSPC / EFBIG /
    EDQUOT where Python sees it. Either way, the free space left where the
    output goes decides.
    """
    errno_full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    is_write_error = errno_full or getattr(exc, "code", "") == "OUTPUT_INVALID"
    parent = os.path.dirname(job.request.output.path.rstrip("/")) if job.request.output.path else ""
    if not is_write_error or not parent:
        return ""
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        free = -1
    if not errno_full and not 0 <= free < DISK_FULL_SLACK:
        return ""
    where = f"{parent} has {free / 1024 / 1024:.1f} MiB free" if free >= 0 else f"cannot write under {parent}"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        where = "a file went over the size limit for this process or filesystem"
    return f"disk full: {where}; the partial output was removed. Free some space and submit the job again"


class PeanutService(pb_grpc.PeanutServicer):
    def __init__(self, worker: Worker, state_dir: str, budget: MemoryBudget | None = None) -> None:
        self.worker = worker
        self.state_dir = state_dir
        self.budget = budget
        self.device = detect_device()
        self._info: pb.Info | None = None
        self._info_time = 0.0
        self._info_lock = threading.Lock()
        self._info_refreshing = False
        self.watchers = WatcherSlots(MAX_WATCHERS, MAX_WATCHERS_PER_CLIENT)

    def _new_job(self, kind: str, request: pb.SubmitRequest | None = None) -> pb.Job:
        now = time.time()
        job = pb.Job(
            id=uuid.uuid4().hex[:12],
            state=pb.JOB_STATE_QUEUED,
            kind=kind,
            created_at=now,
            updated_at=now,
            eta_seconds=-1.0,
        )
        if request is not None:
            job.request.CopyFrom(request)
        return job

    def _channel(self, job_id: str) -> JobChannel:
        if not job_id:
            raise InvalidRequest("job_id is empty")
        channel = self.worker.channel(job_id)
        if channel is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return channel

    def prime_info(self) -> None:
        """Build GetInfo's answer once before serving, so no caller waits for the first one."""
        info = self._build_info()
        with self._info_lock:
            self._info, self._info_time = info, time.monotonic()

    @rpc
    def GetInfo(self, request, context):
        # Building the answer looks for model files on disk and asks every backend
        # whether it can run. Only the first call waits for that; afterwards one
        # caller refreshes a stale answer while the others get the cached one, so
        # GetInfo stays fast for editors polling it while a job runs.
        with self._info_lock:
            cached = self._info
            stale = cached is None or time.monotonic() - self._info_time > INFO_CACHE_SECONDS
            refresh = stale and not self._info_refreshing
            if refresh:
                self._info_refreshing = True
        if refresh:
            try:
                fresh = self._build_info()
                with self._info_lock:
                    self._info, self._info_time = fresh, time.monotonic()
                    cached = fresh
            finally:
                with self._info_lock:
                    self._info_refreshing = False
        elif cached is None:
            # Another call is building the very first answer: wait for it.
            deadline = time.monotonic() + 60
            while cached is None and time.monotonic() < deadline:
                time.sleep(0.01)
                with self._info_lock:
                    cached = self._info
            if cached is None:
                raise ResourceExhausted("daemon information is still being gathered; try again")
        info = pb.Info()
        info.CopyFrom(cached)
        info.queue_length = self.worker.pending()
        return info

    def _build_info(self) -> pb.Info:
        import os

        info = pb.Info(
            version=__version__,
            api_version=API_VERSION,
            device=self.device,
            state_dir=self.state_dir,
            pid=os.getpid(),
            queue_capacity=self.worker.capacity,
        )
        return add_backends_and_models(info)

    @rpc
    def Submit(self, request, context):
        spec = spec_from_request(request)
        info, _, _ = self.worker.pipeline.validate(spec)
        self._check_memory(spec, info)
        job = self._new_job("remove", request)
        job.request.output.matte_path = spec.matte_path
        job = self.worker.enqueue(job, claims=claimed_paths(spec.output_path, spec.matte_path))
        log.info("job %s queued: %s [%s, %s) -> %s", job.id, spec.source_path, spec.start, spec.end, spec.output_path)
        return job

    def _check_memory(self, spec, info) -> None:
        """Refuse up front a job whose windows of frames in flight plus models cannot fit the memory budget."""
        if spec.options.device:
            from ..models.device import resolve_device

            resolve_device(spec.options.device)  # a device this machine lacks is refused here, named
        if self.budget is None:
            return
        opts = spec.options
        working = working_size(info.width, info.height, opts.working_height)
        # The masker counts too: a loaded one by its measured size (per memory pool),
        # and by its `model_needs` once it declares them.
        backends = [("masker", self.worker.pipeline.masker_choice(spec).cls)]
        if not spec.matte_only:
            backends.append(("eraser", backend_table.choose("eraser", opts.eraser).cls))
            if working != (info.width, info.height):
                backends.append(("upscaler", backend_table.choose("upscaler", opts.upscaler).cls))
        window = 1 if spec.matte_only else max(2, opts.subvideo_length)
        # The streaming erase pass holds several windows at once; the sequential one and
        # a Ray executor's daemon side hold one (the tasks declare their own to Ray).
        pipeline = self.worker.pipeline
        streams = pipeline.streaming and pipeline.executor is None and not spec.matte_only
        self.budget.check_job(
            info.width,
            info.height,
            working,
            window,
            backends,
            needs=job_model_needs(backends, opts, working),
            windows_in_flight=WINDOWS_IN_FLIGHT if streams else 1,
        )

    @rpc
    def ProcessTimeline(self, request, context):
        from ..otio.jobs import validate_timeline_request

        # Shape checks shared with Submit (NUL bytes, over-long paths) before the OTIO layer touches the disk.
        for path, what in (
            (request.timeline_path, "timeline"),
            (request.output_path, "output timeline"),
            (request.media_dir, "media folder"),
        ):
            if path:
                absolute_path(path, what)
        validate_timeline_request(request)
        job = self._new_job("timeline")
        job.request.output.path = request.output_path
        job.request.client = request.client
        return self.worker.enqueue(job, timeline=request, claims=claimed_paths(request.output_path, request.media_dir))

    @rpc
    def Watch(self, request, context):
        channel = self._channel(request.job_id)
        with self.watchers.slot(context.peer() or "unknown"):
            yield from channel.watch(context.is_active, stopping=self.worker.stopping.is_set)

    @rpc
    def Cancel(self, request, context):
        channel = self._channel(request.job_id)
        if channel.job.state in FINAL_STATES - {pb.JOB_STATE_INTERRUPTED}:
            return channel.job
        return self.worker.cancel(request.job_id)

    @rpc
    def Resume(self, request, context):
        channel = self._channel(request.job_id)
        job = channel.job
        if job.state != pb.JOB_STATE_INTERRUPTED:
            raise NotResumable(
                f"job {job.id} is {pb.JobState.Name(job.state)[10:].lower()}, only interrupted jobs resume"
            )
        before = self.worker.store.inputs(job.id)
        timeline = self.worker.store.timeline_request(job.id) if job.kind == "timeline" else None
        # Names, sizes and mtimes here (cheap); the worker compares content hashes before it continues.
        change = first_difference(before, None if timeline is not None else job.request, quick=True) if before else ""
        if change and (timeline is not None or not job.request.output.overwrite):
            raise InputChanged(
                f"cannot resume job {job.id}: its input changed since it started ({change}), so its "
                "finished frames would not match the rest. Submit it again (with overwrite to "
                "replace the output), or cancel it"
            )
        return self.worker.requeue(job.id)

    @rpc
    def GetJob(self, request, context):
        return self._channel(request.job_id).job

    @rpc
    def ListJobs(self, request, context):
        limit = request.limit if request.limit > 0 else 100
        before = None
        if request.page_token:
            # The token is the row of the last job of the previous page: pages stay stable while jobs are added.
            if not request.page_token.isdigit():
                raise InvalidRequest(
                    f"page_token {_clip(request.page_token, 100)!r} is not one this daemon gave; "
                    "pass the next_page_token of the previous page"
                )
            before = int(request.page_token)
        jobs, last = self.worker.store.page(min(limit, 10_000), tuple(request.states), before)
        # Live state beats the (throttled) record for jobs this daemon is running.
        live = [self.worker.channels[j.id].job if j.id in self.worker.channels else j for j in jobs]
        return pb.ListJobsResponse(jobs=live, next_page_token=str(last) if last else "")

    @rpc
    def PreviewMask(self, request, context):
        submit = pb.SubmitRequest(
            source=pb.MediaRange(path=request.path, start_frame=request.frame, end_frame=request.frame + 1),
            mask=request.mask,
            options=request.options,
            output=pb.OutputSpec(path="/preview-not-written"),
        )
        spec = spec_from_request(submit)
        mask, report = self.worker.pipeline.preview(spec, request.frame, Reporter())
        ok, png = cv2.imencode(".png", mask.astype("uint8") * 255)
        return pb.PreviewMaskResponse(
            mask_png=png.tobytes(),
            width=mask.shape[1],
            height=mask.shape[0],
            backend=report.backend,
            chosen_object=report.chosen_object,
            score=report.score,
            warnings=report.warnings,
            mask_pixels=int(mask.sum()),
        )


def _inside(child: str, parent: str) -> bool:
    return child.startswith(parent.rstrip(os.sep) + os.sep)


def claimed_paths(*paths: str) -> tuple[str, ...]:
    """The places a job writes, resolved (symlinks, `..`), as the claims registry compares them."""
    return tuple(sorted({os.path.realpath(p) for p in paths if p}))


class WatcherSlots:
    """Counts open Watch streams, in all and per client, and refuses past the limits."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = total, per_client
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def open_count(self) -> int:
        with self._lock:
            return sum(self._open.values())

    @contextmanager
    def slot(self, client: str):
        with self._lock:
            if sum(self._open.values()) >= self.total:
                raise ResourceExhausted(
                    f"too many watch streams are open ({self.total}, the daemon's limit); close some and try again",
                    code="TOO_MANY_WATCHERS",
                )
            if self._open.get(client, 0) >= self.per_client:
                raise ResourceExhausted(
                    f"this client already has {self.per_client} watch streams open, the most "
                    "one client may; close one first",
                    code="TOO_MANY_WATCHERS",
                )
            self._open[client] = self._open.get(client, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._open[client] -= 1
                if not self._open[client]:
                    del self._open[client]


class JobNotFound(PeanutError):
    status = "NOT_FOUND"
    code = "JOB_NOT_FOUND"


class OutputBusy(PeanutError):
    status = "ALREADY_EXISTS"
    code = "OUTPUT_BUSY"


class NotResumable(PeanutError):
    status = "FAILED_PRECONDITION"
    code = "NOT_RESUMABLE"


class InputChanged(PeanutError):
    status = "FAILED_PRECONDITION"
    code = "INPUT_CHANGED"


class ShuttingDown(PeanutError):
    status = "UNAVAILABLE"
    code = "SHUTTING_DOWN"
