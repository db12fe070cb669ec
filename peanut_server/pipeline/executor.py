"""Scale-out: a job's masking and erasing as tasks on a Ray cluster, its outputs kept by the daemon.

    peanut-server --executor ray --ray-address local|auto|ray://host:port

The daemon keeps everything that makes a job a job: the queue, events,
cancellation, resume and the output rules (staging beside the destination,
atomic commit). Only the heavy work goes to the cluster:

- masking: one task per job (the masker tracks through the clip in order);
  it streams the masks back in chunks and the daemon stages them as the matte;
- erasing: one task per window. Windows overlap as in the local executor, but
  a task cannot wait for the previous window's finished frames (that would
  serialise the cluster): it erases `overlap` source frames before its own
  as lead-in, for temporal context, and returns only its own frames, composited
  at source resolution. The daemon writes them in order, so `output.written`
  stays the resume point; results are bit-exact with the local executor outside
  the mask (both copy the source there) and differ inside it only by the
  lead-in instead of the finished tail.

What the cluster must share with the daemon: the source paths (every node
reads the clip and, for a mask file or folder, the masks at the same absolute
path, read-only), the same peanut-video version with the same backends and
model weights (HF cache or models folder on each node) for the backends a job
asks for. Outputs and staging stay on the daemon's disk: frames come back
through Ray's object store.

A timeline job runs as many of its clips at once as the cluster has task
slots (otio/timeline.py run_timeline, parallel=clips_at_once()).

Cancellation: the daemon checks the job's Reporter while it waits and cancels
every task of the job still in flight (ray.cancel, force), then raises as the
local executor does.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PeanutError
from ..masker.base import MaskReport
from ..media import MediaInfo, open_source, probe, validate_range
from ..progress import Reporter
from .backends import Choice, choose
from .composite import working_size
from .run import KEEP_SOURCE_BYTES, Pipeline, _Bounds, _mask_from_matte, set_thread_counts
from .spec import RemovalSpec

log = logging.getLogger(__name__)

# Seconds between looks at the job's cancel/interrupt while waiting on the cluster.
POLL_SECONDS = 0.1
# Masks a masking task sends back at a time (packed bits: ~260 kB a 1080p frame).
MASK_CHUNK = 16


class ExecutorError(PeanutError):
    status = "UNAVAILABLE"
    code = "EXECUTOR_UNAVAILABLE"


@dataclass
class RayOptions:
    """How the daemon talks to Ray and what each task asks the scheduler for."""

    address: str = "local"  # "local": start a runtime here; "auto": join this node's cluster; "ray://h:p"
    local_cpus: int | None = None  # CPUs a "local" runtime may use (None: all of this machine's)
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0  # > 0 on a cluster with GPUs for the learned backends
    max_in_flight: int = 0  # erase tasks of one job at once; 0 = the cluster's CPUs / cpus_per_task


def _packed(masks: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, ...]]:
    stack = np.stack(masks).astype(bool)
    return np.packbits(stack, axis=None), stack.shape


def _unpacked(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)


class _PackedMatte:
    """The masks of frames first..first+n-1 of the range, read the way a staged matte is (FrameSink.read)."""

    def __init__(self, first: int, packed: np.ndarray, shape: tuple[int, ...]) -> None:
        self.first = first
        self.masks = _unpacked(packed, shape)

    def read(self, k: int) -> np.ndarray:
        return self.masks[k - self.first]


# -- what runs on a Ray worker ------------------------------------------------------

_WORKER_PIPELINE = None


def _worker_pipeline() -> Pipeline:
    """One Pipeline per Ray worker process: backends and their models stay loaded between tasks."""
    global _WORKER_PIPELINE
    if _WORKER_PIPELINE is None:
        _WORKER_PIPELINE = Pipeline(streaming=False)
    return _WORKER_PIPELINE


def _task_threads() -> None:
    """OpenCV and torch pools sized to the CPUs Ray gave this task, not to the node's cores
    (several tasks share a node)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    set_thread_counts(max(1, int(round(cpus))))


def mask_task(spec: RemovalSpec, start: int, end: int) -> Iterator[dict[str, Any]]:
    """Ray streaming task: the masks of source frames start..end-1 in chunks, then the masker's report."""
    _task_threads()
    pipeline = _worker_pipeline()
    choice = pipeline.masker_choice(spec)
    masker = pipeline.masker_for_call(choice)
    chunk: list[np.ndarray] = []
    with open_source(spec.source_path) as source:
        for mask in masker.masks(source, start, end, spec.prompt, spec.options.masker_options, Reporter()):
            chunk.append(mask)
            if len(chunk) == MASK_CHUNK:
                yield {"masks": _packed(chunk)}
                chunk = []
    if chunk:
        yield {"masks": _packed(chunk)}
    yield {"report": masker.report, "name": masker.name}


def erase_task(
    spec: RemovalSpec, first: int, pos: int, end: int, packed: np.ndarray, shape: tuple[int, ...]
) -> dict[str, Any]:
    """Ray task: frames pos..end-1 of the range erased, upscaled and composited at source resolution.

    Frames first..pos-1 are the lead-in: erased with their masks for temporal
    context, not returned. Masks cover first..end-1.
    """
    _task_threads()
    pipeline = _worker_pipeline()
    info = probe(spec.source_path)
    start, stop = validate_range(info, spec.start, spec.end)
    plan, runs = pipeline._erase_plan(info, start, stop - start, spec)
    reporter = Reporter()
    with open_source(spec.source_path) as source:
        decoded = pipeline._decode_window(
            source,
            _PackedMatte(first, packed, shape),
            plan,
            _Bounds(first, end, 0),
            keep=plan.window_bytes <= KEEP_SOURCE_BYTES,
        )
        window = pipeline._assemble_window(plan, decoded, [], reporter)
        result = plan.eraser.erase(window.lr_frames, window.lr_masks, plan.options.eraser_options, reporter)
        crop, upscaled = pipeline._upscale_window(plan, window, result, reporter)
        frames = [
            frame
            for frame, _ in pipeline._composite_window(
                source, plan, window, result.frames, crop, upscaled, spec.patch_layer
            )
        ]
    checkpoint = getattr(plan.upscaler, "ran_model_id", "")
    if checkpoint:
        runs[-1].note = f"{runs[-1].note}; weights {checkpoint}"
    return {"frames": np.stack(frames[pos - first :]), "runs": runs}


# -- the daemon's side --------------------------------------------------------------


@dataclass(frozen=True)
class RayWindow:
    """One erase task: its own frames pos..end-1 of the range, after lead-in frames first..pos-1."""

    first: int
    pos: int
    end: int


def ray_windows(count: int, pos: int, window: int, overlap: int) -> list[RayWindow]:
    """Tasks for frames pos..count-1: each at most `window` frames long, lead-in included.

    The lead-in is the `overlap` frames before a task's own (fewer at the start
    of the range): a task's own frames are window - overlap.
    """
    step = max(1, window - overlap)
    tasks = []
    while pos < count:
        end = min(count, pos + step)
        tasks.append(RayWindow(max(0, pos - overlap), pos, end))
        pos = end
    return tasks


class RayExecutor:
    """Runs the mask and erase passes of the daemon's jobs as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._ray: Any = None
        self._mask_task: Any = None
        self._erase_task: Any = None
        self._started_runtime = False

    def start(self) -> None:
        """Connect to (or, for "local", start) the Ray runtime. Raises ExecutorError naming what failed."""
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install 'peanut-video[ray]'") from None
        address = self.options.address
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        try:
            if address == "local":
                # A runtime of its own on this machine, stopped with the daemon.
                ray.init(address="local", num_cpus=self.options.local_cpus, **kwargs)
                self._started_runtime = True
            else:
                ray.init(address=address, **kwargs)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: name the address either way
            raise ExecutorError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        self._ray = ray
        self._mask_task = ray.remote(num_returns="streaming")(mask_task)
        self._erase_task = ray.remote(erase_task)
        log.info("Ray executor on %s: %s", address, ray.cluster_resources())

    def shutdown(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    # -- resources --------------------------------------------------------------

    def _task_options(self, spec: RemovalSpec, info: MediaInfo, window: int) -> dict[str, Any]:
        from ..daemon.budget import estimate_job_bytes

        working = working_size(info.width, info.height, spec.options.working_height)
        estimate = estimate_job_bytes(info.width, info.height, working, window, 0)
        return dict(
            num_cpus=self.options.cpus_per_task, num_gpus=self.options.gpus_per_task, memory=int(estimate.total)
        )

    def _max_in_flight(self) -> int:
        if self.options.max_in_flight > 0:
            return self.options.max_in_flight
        cpus = self._ray.cluster_resources().get("CPU", 1.0)
        return max(1, int(cpus // max(self.options.cpus_per_task, 1e-3)))

    def clips_at_once(self) -> int:
        """Clips of one timeline job run at once: as many as the cluster has task slots."""
        return self._max_in_flight()

    def _cancel(self, refs: list[Any]) -> None:
        """Stop the job's tasks (force: a task in a long native call would otherwise keep its CPU).

        Best effort: the error that led here is the one the job reports. Only the tasks still
        running are cancelled: a forced cancel racing with the reply of a task that is finishing
        can abort the driver inside Ray ("Check failed: ... Tried to complete task that was not
        pending", Ray 2.60, seen once in a CI rehearsal; ray-project/ray#54846 reports the same
        check). A finished task needs no cancel, and skipping those narrows that window."""
        if refs:
            try:
                _, refs = self._ray.wait(list(refs), num_returns=len(refs), timeout=0)
            except Exception:  # noqa: BLE001
                log.warning("could not ask Ray which tasks are still running", exc_info=True)
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                log.warning("could not cancel Ray task %s", ref, exc_info=True)

    def _wait(self, ref: Any, reporter: Reporter) -> None:
        while not self._ray.wait([ref], timeout=POLL_SECONDS)[0]:
            reporter.check()
        reporter.check()

    def _get(self, ref: Any) -> Any:
        from ray.exceptions import RayTaskError

        try:
            return self._ray.get(ref)
        except RayTaskError as exc:
            # The task's own exception (a PeanutError with its code, an OSError...), as the local executor raises it.
            cause = exc.as_instanceof_cause()
            original = getattr(exc, "cause", None)
            raise (original if isinstance(original, BaseException) else cause) from None

    # -- the passes -------------------------------------------------------------

    def mask_pass(
        self,
        pipeline,
        spec: RemovalSpec,
        info: MediaInfo,
        start: int,
        end: int,
        choice: Choice,
        matte,
        reporter: Reporter,
    ) -> MaskReport:
        count = end - start
        if matte.written >= count:
            report = MaskReport(backend=choice.cls.name)
            report.chosen_object = "(masks from the interrupted run)"
            return report
        reporter.stage("masking", count, done=matte.written, outer=True)
        options = self._task_options(spec, info, 1)
        stream = self._mask_task.options(**options).remote(spec, start, end)
        result: dict[str, Any] = {}

        def masks() -> Iterator[np.ndarray]:
            while True:
                try:
                    self._wait(stream, reporter)
                    item = self._get(next(stream))
                except StopIteration:
                    return
                if "report" in item:
                    result.update(item)
                    continue
                yield from _unpacked(*item["masks"])

        try:
            pipeline._write_masks(masks(), choice.cls.name, info, start, count, spec, matte, reporter)
        except BaseException:
            self._cancel([stream])
            raise
        return result.get("report") or MaskReport(backend=choice.cls.name)

    def erase_pass(
        self,
        pipeline,
        spec: RemovalSpec,
        info: MediaInfo,
        start: int,
        count: int,
        matte,
        output,
        reporter: Reporter,
        timings: dict[str, float],
    ) -> list:
        opts = spec.options
        window = max(2, opts.subvideo_length)
        overlap = min(opts.window_overlap, window // 2)
        # Refuse a backend that cannot run before anything is sent (the workers check again on their nodes).
        choose("eraser", opts.eraser)
        if working_size(info.width, info.height, opts.working_height) != (info.width, info.height):
            choose("upscaler", opts.upscaler)
        tasks = deque(ray_windows(count, output.written, window, overlap))
        reporter.stage("erasing", count, done=output.written, outer=True)
        options = self._task_options(spec, info, window)
        limit = self._max_in_flight()
        in_flight: deque[tuple[RayWindow, Any]] = deque()
        runs: list = []
        timings.setdefault("cluster", 0.0)
        timings.setdefault("write", 0.0)
        try:
            while tasks or in_flight:
                while tasks and len(in_flight) < limit:
                    task = tasks.popleft()
                    packed, shape = _packed(
                        [_mask_from_matte(matte.read(i), start + i) for i in range(task.first, task.end)]
                    )
                    ref = self._erase_task.options(**options).remote(
                        spec, task.first, task.pos, task.end, packed, shape
                    )
                    in_flight.append((task, ref))
                task, ref = in_flight[0]  # written in order: wait for the oldest
                clock = time.monotonic()
                self._wait(ref, reporter)
                done = self._get(ref)
                timings["cluster"] += time.monotonic() - clock
                in_flight.popleft()
                runs = done["runs"]
                clock = time.monotonic()
                for frame in done["frames"]:
                    output.write(frame)
                    reporter.advance(outer=True)
                timings["write"] += time.monotonic() - clock
                del done
        except BaseException:
            self._cancel([ref for _, ref in in_flight])
            raise
        if not runs:  # resumed with every frame already written
            runs = pipeline._erase_plan(info, start, count, spec)[1]
        return runs
