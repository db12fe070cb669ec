"""The removal pipeline: masks -> erase (working resolution) -> upscale -> composite.

    cleaned = composite(source, UR-Net(NOF-Eraser(V, P-MASK(V, text))))

Two passes over the clip, both streaming:
  1. masking: the masker yields one mask per frame; they are written as the
     matte (PNG) at once, so the second pass and the editor read the same masks;
  2. erasing: windows of `subvideo_length` frames at working resolution go
     through the eraser; the upscaler brings the cleaned region (a crop around
     the mask) back to source resolution; the compositor puts it into the
     untouched source frame. Consecutive windows overlap: the frames the previous
     window finished come in as known pixels, so the fill does not jump at a
     window border.
Memory is bounded by the window, not by the clip. Outputs are staged beside
their destinations and moved into place only when complete (a video output is
encoded by its sink's thread as its frames become final, media/sink.py); a job
interrupted by a shutdown keeps its staging and resumes from the frames
already written.

Streaming, the two passes overlap: maskers yield masks in frame order, so the
mask pass runs in a thread of its own (with its own decoder) and the erase
pass takes each window as soon as its masks are staged (_MaskFeed). Progress
stays one outer stage at a time: "masking" while masks come, then "erasing"
from the frames already written. Sequentially (and on Ray) the mask pass
finishes before the erase pass starts.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..eraser.effects import grow_to_effects
from ..errors import JobInterrupted, MaskError, MediaError, MediaNotFound, PromptError
from ..masker.base import Masker, MaskReport
from ..masker.external import ExternalMasker
from ..masker.prompt import PromptNotUnderstood, check_frame_prompts, refusal_message
from ..media import MediaInfo, check_masks, check_output, open_sink, open_source, probe, validate_range
from ..progress import Reporter
from .backends import Choice, choose
from .composite import (
    Crop,
    alpha_matte,
    composite,
    crop_for,
    dilate,
    downscale_mask,
    feather_alpha,
    hole_region,
    matte16,
    region_box,
    working_size,
)
from .spec import RemovalSpec

if TYPE_CHECKING:
    from .executor import RayExecutor

log = logging.getLogger(__name__)

# Full-resolution frames of one window kept in memory up to this size; beyond
# it (4K and long windows) the compositor decodes them a second time instead.
KEEP_SOURCE_BYTES = 512 * 1024 * 1024
# Streaming erase pass (Pipeline._erase_streaming): windows between decode and the end
# of their compositing (one read ahead, one erasing, one being composited), composited
# frames waiting for the writer, and how often a stage waiting on a queue looks
# whether the job was cancelled or another stage failed (seconds).
WINDOWS_IN_FLIGHT = 3
FRAMES_QUEUED = 8
POLL_SECONDS = 0.05


@dataclass
class StageRun:
    stage: str
    backend: str
    note: str = ""


@dataclass
class RemovalResult:
    output_path: str
    matte_path: str
    frame_count: int
    backends: list[StageRun] = field(default_factory=list)
    chosen_object: str = ""
    chosen_score: float = 0.0
    warnings: list[str] = field(default_factory=list)
    ignored_words: list[str] = field(default_factory=list)  # prompt words the masker could not check
    seconds: float = 0.0
    # Seconds per part, for benchmarks: "masking", "erase pass", "matte", "commit" one after another
    # (wall time); inside the erase pass, its stages' busy time ("decode", "erase", "upscale",
    # "composite", "write"), which overlap when it streams.
    timings: dict[str, float] = field(default_factory=dict)


# Never read from these, whatever a path or a symlink says: devices block or
# never end, and pseudo-files describe the machine, not media.
FORBIDDEN_ROOTS = ("/dev", "/proc", "/sys")


def check_input_path(path: str, what: str) -> None:
    """Only regular files and folders are read: no FIFOs, sockets or devices (they could hang a job)."""
    real = os.path.realpath(path)
    if any(real == root or real.startswith(root + "/") for root in FORBIDDEN_ROOTS):
        raise MediaError(f"{what} {path} resolves to {real}, which is not media")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise MediaNotFound(f"{what} not found: {path}") from None
    except OSError as exc:
        raise MediaError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise MediaError(f"{what} {path} is not a regular file or folder")
    if stat.S_ISDIR(mode):
        # A frame in a folder may itself be a symlink out to a device or a
        # pseudo-file (/proc/kcore is "regular" and 128 TB long): same rule.
        try:
            entries = list(os.scandir(real))
        except OSError as exc:
            raise MediaError(f"{what} {path} cannot be listed: {exc.strerror}") from None
        for entry in entries:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if any(target == root or target.startswith(root + "/") for root in FORBIDDEN_ROOTS):
                    raise MediaError(f"{what} {path}: {entry.name} links to {target}, which is not media")


def staging_path(destination: str, job_id: str) -> str:
    parent, name = os.path.split(destination.rstrip("/\\"))
    return os.path.join(parent, f".{name}.peanut-partial-{job_id}")


def available_cpus() -> int:
    """CPUs this process may use, not the machine's: its affinity mask (taskset, cpusets) and, through
    OpenCV's count, a container's CPU quota."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity on macOS and Windows
        allowed = os.cpu_count() or 1
    return max(1, min(allowed, cv2.getNumberOfCPUs()))


def set_thread_counts(threads: int | None = None) -> int:
    """Size OpenCV's and torch's thread pools: `threads`, or the CPUs this process may use.

    Both libraries size their pools from the machine's core count, which in a
    container or under taskset can be far more than the CPUs allowed, and then
    every parallel call oversubscribes them. The streaming erase pass runs its
    stages in their own threads, but only the eraser (and a learned upscaler)
    makes parallel calls of any length; the other stages are single-threaded
    (PyAV decode, numpy compositing, zlib in the PNG writer), so the pools get
    all the CPUs, not CPUs minus stages. torch is sized only when something
    already imported it: never import torch just to set a number.
    """
    import sys

    n = max(1, threads or available_cpus())
    cv2.setNumThreads(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _mask_to_png(mask: np.ndarray, grey: bool = False) -> np.ndarray:
    """A mask as the matte stages it: white on black, RGB (the object matte an editor gets), or
    one grey channel when it is only the alpha matte's first state (a third of the bytes to
    write and read back, and the alpha replaces it)."""
    values = mask.astype(np.uint8) * 255
    return values if grey else np.repeat(values[:, :, None], 3, axis=2)


class Pipeline:
    """Composes a masker, an eraser and an upscaler; keeps their instances (and models) loaded."""

    def __init__(
        self,
        instances: MutableMapping[tuple[str, str], object] | None = None,
        streaming: bool = True,
        executor: RayExecutor | None = None,
        threads: int | None = None,
    ) -> None:
        # The daemon passes a ModelCache (daemon/budget.py) that unloads least
        # recently used backends past its memory budget; --local keeps a dict.
        self._instances: MutableMapping[tuple[str, str], object] = {} if instances is None else instances
        # Overlap decode, erase, upscale + composite and writing in threads (see _erase_pass);
        # False runs them one after another, with the same output.
        self.streaming = streaming
        # None: the passes run in this process; a RayExecutor sends them to a cluster (executor.py).
        self.executor = executor
        # Threads OpenCV and torch may use inside one call (see set_thread_counts); None: this process's CPUs.
        self.threads = threads

    # -- checks before a job is queued -------------------------------------

    def validate(self, spec: RemovalSpec) -> tuple[MediaInfo, int, int]:
        """Everything that can be known before running: files, range, masks, outputs, backends."""
        check_input_path(spec.source_path, "source")
        if spec.prompt.mask_path:
            check_input_path(spec.prompt.mask_path, "mask")
        info = probe(spec.source_path)
        start, end = validate_range(info, spec.start, spec.end)
        if spec.prompt.mask_path:
            check_masks(spec.prompt.mask_path, info, start, end)
        choice = self.masker_choice(spec)
        check_frame_prompts(
            spec.prompt.frame_prompts,
            info.width,
            info.height,
            start,
            end,
            mask_given=spec.prompt.tracked_mask_frame is not None,
        )
        unchecked = choice.cls.unchecked_words(spec.prompt)
        if unchecked and not spec.prompt.approximate:
            # Refused before any work: a job that silently dropped a noun would exit 0 on the wrong object.
            raise PromptNotUnderstood(refusal_message(choice.cls.name, unchecked))
        check_output(spec.output_path, spec.source_path, spec.overwrite)
        if not spec.matte_only:
            check_output(spec.matte_path, spec.source_path, spec.overwrite)
            choose("eraser", spec.options.eraser)
            if working_size(info.width, info.height, spec.options.working_height) != (info.width, info.height):
                choose("upscaler", spec.options.upscaler)
        return info, start, end

    def masker_choice(self, spec: RemovalSpec) -> Choice:
        from ..masker import BACKENDS

        if spec.prompt.tracked_mask_frame is not None:
            candidates = {name: cls for name, cls in BACKENDS.items() if cls.tracks_given_mask}
            return choose("masker", spec.options.masker, candidates=candidates)
        if spec.prompt.mask_path:
            return Choice(ExternalMasker, "mask file given")
        candidates = {name: cls for name, cls in BACKENDS.items() if cls.accepts(spec.prompt)}
        if not candidates:
            raise PromptError("no masker accepts this prompt; give a text prompt or a mask file")
        return choose("masker", spec.options.masker, candidates=candidates)

    def _instance(self, stage: str, cls: type) -> object:
        key = (stage, cls.name)
        if key not in self._instances:
            self._instances[key] = cls()
        return self._instances[key]

    def masker_for_call(self, choice: Choice) -> Masker:
        """The backend's one shared masker, as a copy for one job or preview (its own report).

        The device is the job's (MaskerOptions.device), read per call, so one instance
        serves every device; the learned parts come from the model cache, loaded once."""
        return self._instance("masker", choice.cls).for_call()

    # -- the job -----------------------------------------------------------

    def run(self, spec: RemovalSpec, reporter: Reporter, job_id: str = "local") -> RemovalResult:
        started = time.monotonic()
        set_thread_counts(self.threads)
        info, start, end = self.validate(spec)
        count = end - start
        result = RemovalResult(output_path=spec.output_path, matte_path=spec.matte_path, frame_count=count)
        masker_choice = self.masker_choice(spec)
        sinks = []
        try:
            with open_source(spec.source_path) as source:
                # The alpha matte's frames are staged as masks by the mask pass and become
                # final when the erase pass replaces them by their alphas (a video matte is
                # encoded as they do); other mattes are final as the masks are written.
                alpha_later = not spec.matte_only and spec.matte_mode == "alpha"
                matte = open_sink(
                    spec.matte_path,
                    info,
                    start,
                    count,
                    overwrite=spec.overwrite,
                    staging_dir=staging_path(spec.matte_path, job_id),
                    final_on_write=not alpha_later,
                )
                sinks.append(matte)
                # Streaming with masks still to make: the mask pass runs beside the erase pass.
                overlap = self.executor is None and self.streaming and not spec.matte_only and matte.written < count
                if overlap:
                    report, runs = self._mask_and_erase(
                        source, info, start, count, spec, masker_choice, matte, sinks, reporter, result.timings, job_id
                    )
                else:
                    clock = time.monotonic()
                    if self.executor is not None:
                        report = self.executor.mask_pass(self, spec, info, start, end, masker_choice, matte, reporter)
                    else:
                        report = self._mask_pass(source, start, end, spec, masker_choice, matte, reporter)
                    result.timings["masking"] = time.monotonic() - clock
                result.backends.append(StageRun("masker", masker_choice.cls.name, masker_choice.note))
                result.chosen_object, result.chosen_score = report.chosen_object, report.score
                result.warnings.extend(report.warnings)
                result.ignored_words = list(report.ignored_words)
                if not spec.matte_only and not overlap:
                    output = self._open_output(spec, info, start, count, job_id)
                    sinks.append(output)
                    alpha_out = self._alpha_out(spec, info, matte, output)
                    clock = time.monotonic()
                    if self.executor is not None:
                        runs = self.executor.erase_pass(
                            self, spec, info, start, count, matte, output, reporter, result.timings
                        )
                    else:
                        runs = self._erase_pass(
                            source,
                            info,
                            start,
                            count,
                            spec,
                            matte,
                            output,
                            reporter,
                            result.timings,
                            alpha_out=alpha_out,
                        )
                    # The pass's wall time: its stages' own timings overlap when it streams.
                    result.timings["erase pass"] = time.monotonic() - clock
                if not spec.matte_only:
                    result.backends.extend(runs)
                    if spec.matte_mode == "alpha":
                        # The matte is the exact alpha each frame was composited with: the erase
                        # pass wrote it; this converts any frame a stop left as a mask.
                        clock = time.monotonic()
                        opts = spec.options
                        lr_size = working_size(info.width, info.height, opts.working_height)
                        alpha_matte(matte, lr_size, opts.mask_dilation, opts.feather)
                        result.timings["matte"] = time.monotonic() - clock
            reporter.stage("writing", count, outer=True)
            # The cleaned frames land before the matte: an editor who sees the
            # matte can rely on the frames being there.
            clock = time.monotonic()
            for sink in reversed(sinks):
                sink.commit()  # a video output: its encoder's last frames, then a rename
            result.timings["commit"] = time.monotonic() - clock
            reporter.advance(count, outer=True)
        except JobInterrupted:
            for sink in sinks:
                sink.suspend()  # staged frames stay for Resume; video encoders stop
            raise
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        result.seconds = time.monotonic() - started
        return result

    @staticmethod
    def _open_output(spec, info: MediaInfo, start: int, count: int, job_id: str):
        return open_sink(
            spec.output_path,
            info,
            start,
            count,
            overwrite=spec.overwrite,
            alpha=spec.patch_layer,
            staging_dir=staging_path(spec.output_path, job_id),
            audio_from=info,
        )

    @staticmethod
    def _alpha_out(spec, info: MediaInfo, matte, output):
        """The matte sink when it carries the composite's alpha (else None), its resumed frames converted."""
        if spec.matte_mode != "alpha":
            return None
        # A Ray executor's erase pass leaves the matte as masks; the alpha pass after it
        # converts them (the same alpha the compositor used).
        if output.written:
            # Resumed: the alphas of the frames already written (one may still be a mask, if the
            # stop came between the two writes) are final before the erase pass makes the next
            # ones final in order.
            opts = spec.options
            lr_size = working_size(info.width, info.height, opts.working_height)
            alpha_matte(matte, lr_size, opts.mask_dilation, opts.feather, upto=output.written)
        return matte

    def _mask_and_erase(
        self, source, info: MediaInfo, start, count, spec, choice, matte, sinks, reporter, timings, job_id: str
    ) -> tuple[MaskReport, list[StageRun]]:
        """The mask pass in a thread of its own beside the streaming erase pass (see _MaskFeed)."""
        output = self._open_output(spec, info, start, count, job_id)
        sinks.append(output)
        alpha_out = self._alpha_out(spec, info, matte, output)
        feed = _MaskFeed(matte, output, reporter, count)

        def mask_pass() -> MaskReport:
            # A second decoder: a source serves one reader at a time, and the erase pass reads too.
            with open_source(spec.source_path) as own:
                return self._mask_pass(own, start, start + count, spec, choice, matte, feed.reporter)

        thread = threading.Thread(target=feed.run, args=(mask_pass,), name="peanut-mask", daemon=True)
        thread.start()
        clock = time.monotonic()
        try:
            runs = self._erase_pass(
                source, info, start, count, spec, matte, output, reporter, timings, alpha_out=alpha_out, feed=feed
            )
        except BaseException as exc:
            feed.stop.set()
            thread.join()
            if isinstance(exc, _Stopped) and feed.error is not None:
                raise feed.error from None  # the mask pass failed first: its error is the job's
            raise
        thread.join()  # every mask was read, so the masker is done or about to be
        timings["erase pass"] = time.monotonic() - clock
        timings["masking"] = feed.seconds
        if feed.error is not None:
            raise feed.error
        return feed.report, runs

    def _mask_pass(self, source, start, end, spec, choice, matte, reporter) -> MaskReport:
        count = end - start
        masker = self.masker_for_call(choice)
        if matte.written >= count:
            masker.report.chosen_object = "(masks from the interrupted run)"
            return masker.report
        reporter.stage("masking", count, done=matte.written, outer=True)
        masks = masker.masks(source, start, end, spec.prompt, spec.options.masker_options, reporter)
        self._write_masks(masks, masker.name, source.info, start, count, spec, matte, reporter)
        return masker.report

    @staticmethod
    def _write_masks(
        masks: Iterable[np.ndarray], name: str, info: MediaInfo, start: int, count: int, spec, matte, reporter: Reporter
    ) -> None:
        """Stage the masker's masks as the matte, after those a resumed job already has; check what came."""
        end = start + count
        height, width = info.height, info.width
        alpha_later = not spec.matte_only and spec.matte_mode == "alpha"  # the masks are replaced by alphas
        produced = 0
        any_mask = False
        for index, mask in enumerate(masks):
            if mask.shape != (height, width):
                raise MaskError(
                    f"masker {name} returned a {mask.shape[1]}x{mask.shape[0]} mask for a {width}x{height} clip"
                )
            produced += 1
            any_mask = any_mask or bool(mask.any())
            if index < matte.written:
                continue  # resumed: this frame's mask is already on disk
            matte.write(_mask_to_png(mask, grey=alpha_later))
            reporter.advance(outer=True)
        if produced != count:
            raise MaskError(f"masker {name} gave {produced} masks for {count} frames")
        if not any_mask and matte.written == count and not spec.prompt.mask_path:
            raise PromptError(f"nothing matching {spec.prompt.text!r} was found in frames {start}..{end - 1}")

    def _erase_pass(
        self,
        source,
        info: MediaInfo,
        start,
        count,
        spec,
        matte,
        output,
        reporter,
        timings: dict[str, float],
        alpha_out=None,
        feed: _MaskFeed | None = None,
    ) -> list[StageRun]:
        """Erase, upscale and composite the clip window by window (see _ErasePlan).

        Each window goes through four steps: decode (its source frames and masks),
        erase (at working resolution, after the previous window: its last frames
        seed this one), finish (upscale and composite) and write (into the output
        sink, one frame at a time). Streaming, each step runs in its own thread
        and hands windows on through bounded queues (_erase_streaming), so while
        the eraser works on one window the next is decoded and the previous one is
        composited and written; sequentially they run one after another. Both give
        the same frames.

        alpha_out: the matte sink, when the matte is the composite's alpha: each
        frame's object mask there is replaced by its alpha as the frame is written.
        feed: the mask pass running beside this one (streaming only): each window
        waits for its masks, and the "erasing" stage begins when masking ends.
        """
        plan, runs = self._erase_plan(info, start, count, spec)
        pos = output.written
        # Frames finished by the previous window (or, resumed, the last frames
        # already written) seed the next one with an empty mask, so content
        # carries across window borders without a seam in time.
        tail = (
            [plan.to_lr(output.read(i)[..., :3]) for i in range(max(0, pos - plan.overlap), pos)]
            if plan.overlap
            else []
        )
        windows = list(_window_bounds(plan, pos, len(tail)))
        if feed is None:
            reporter.stage("erasing", count, done=pos, outer=True)
        for part in ("decode", "erase", "upscale", "composite", "write"):
            timings.setdefault(part, 0.0)
        if self.streaming:
            self._erase_streaming(source, spec, plan, windows, tail, matte, output, reporter, timings, alpha_out, feed)
        elif feed is not None:
            raise RuntimeError("the mask pass overlaps only the streaming erase pass")
        else:
            self._erase_sequential(source, spec, plan, windows, tail, matte, output, reporter, timings, alpha_out)
        checkpoint = getattr(plan.upscaler, "ran_model_id", "")
        if checkpoint:  # name the weights that ran, e.g. "auto; weights basicvsrpp-reds4"
            runs[-1].note = f"{runs[-1].note}; weights {checkpoint}"
        return runs

    def _erase_sequential(
        self,
        source,
        spec,
        plan: _ErasePlan,
        windows: list[_Bounds],
        tail: list[np.ndarray],
        matte,
        output,
        reporter: Reporter,
        timings: dict[str, float],
        alpha_out=None,
    ) -> None:
        """The steps of every window one after another, in the calling thread."""
        stage_reporter = _StageReporter(reporter, threading.Event())
        keep = plan.window_bytes <= KEEP_SOURCE_BYTES
        for bounds in windows:
            clock = time.monotonic()
            decoded = self._decode_window(source, matte, plan, bounds, keep)
            timings["decode"] += time.monotonic() - clock
            window, result = self._erase_window(plan, decoded, tail, stage_reporter, timings)
            tail = _next_tail(plan, window, result)
            frames = self._finish_window(source, spec, plan, window, result, stage_reporter, timings, alpha_out)
            for out, alpha in frames:
                clock = time.monotonic()
                _write_frame(output, out, alpha_out, alpha)
                timings["write"] += time.monotonic() - clock
                reporter.advance(outer=True)

    def _erase_streaming(
        self,
        source,
        spec,
        plan: _ErasePlan,
        windows: list[_Bounds],
        tail: list[np.ndarray],
        matte,
        output,
        reporter: Reporter,
        timings: dict[str, float],
        alpha_out=None,
        feed: _MaskFeed | None = None,
    ) -> None:
        """The four steps in four threads, joined by bounded queues; the slowest sets the pace.

        At most WINDOWS_IN_FLIGHT windows are between decode and the end of their
        compositing (one read ahead, one erasing, one being composited) and at most
        FRAMES_QUEUED composited frames wait for the writer: memory is bounded by
        the window, not by the clip. Only the writer advances the job's progress,
        so frames_done is the count of frames on disk, the count a resume starts
        from. A stage that fails, or sees the job cancelled or interrupted, stops
        the others at their next queue operation or reporter.check().
        """
        handoff = _Handoff(reporter)
        decoded: queue.Queue[_Decoded] = queue.Queue(maxsize=1)
        erased: queue.Queue[tuple[_Window, object]] = queue.Queue(maxsize=1)
        composited: queue.Queue[tuple[np.ndarray, np.ndarray | None]] = queue.Queue(maxsize=FRAMES_QUEUED)
        slots = threading.Semaphore(WINDOWS_IN_FLIGHT)
        # Held windows of full-resolution frames, together, stay under the same cap as
        # the sequential path's one window; past it the compositor decodes them again.
        keep = WINDOWS_IN_FLIGHT * plan.window_bytes <= KEEP_SOURCE_BYTES
        sources = []  # the compositor's own decoder, opened only when frames are not kept

        def decode() -> None:
            for bounds in windows:
                handoff.acquire(slots)
                if feed is not None:
                    feed.wait_for(bounds.end, handoff.reporter.check)  # not counted as decoding
                clock = time.monotonic()
                item = self._decode_window(source, matte, plan, bounds, keep, handoff.reporter.check)
                timings["decode"] += time.monotonic() - clock
                handoff.put(decoded, item)
                del item  # the queue and the eraser hold it now; the slot counts it

        def erase() -> None:
            seed = tail
            for _ in windows:
                item = handoff.get(decoded)
                window, result = self._erase_window(plan, item, seed, handoff.reporter, timings)
                seed = _next_tail(plan, window, result)
                handoff.put(erased, (window, result))
                del item, window, result  # not held while waiting for the next window

        def finish() -> None:
            for _ in windows:
                window, result = handoff.get(erased)
                if window.source_frames is None and not sources:
                    sources.append(open_source(spec.source_path))  # the decode thread holds `source`
                own = sources[0] if sources else source
                frames = self._finish_window(own, spec, plan, window, result, handoff.reporter, timings, alpha_out)
                for item in frames:
                    handoff.put(composited, item)
                del window, result, frames  # before the slot is given back
                slots.release()

        def write() -> None:
            for _ in range(sum(b.end - b.pos for b in windows)):
                out, alpha = handoff.get(composited)
                clock = time.monotonic()
                if feed is None:
                    _write_frame(output, out, alpha_out, alpha)
                    timings["write"] += time.monotonic() - clock
                    reporter.advance(outer=True)
                else:
                    feed.write_frame(out, alpha_out, alpha)
                    timings["write"] += time.monotonic() - clock

        try:
            with ThreadPoolExecutor(max_workers=4, thread_name_prefix="peanut-stage") as pool:
                stages = [pool.submit(fn) for fn in (decode, erase, finish, write)]
                try:
                    first, _ = wait(stages, return_when=FIRST_EXCEPTION)
                finally:
                    handoff.stop.set()  # every stage is done, or one failed: the others leave
        finally:
            for opened in sources:
                opened.close()
        errors = [f.exception() for f in [*first, *stages] if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, _Stopped)]
        if real:
            raise real[0]
        if errors:  # pragma: no cover - a stage stopped with no stage failing
            raise errors[0]

    def _erase_window(self, plan: _ErasePlan, decoded: _Decoded, tail, reporter, timings) -> tuple[_Window, object]:
        """One window through the eraser: its input assembled (tail, holes grown), then erased."""
        clock = time.monotonic()  # "erase" includes growing the masks (effects, dilation)
        window = self._assemble_window(plan, decoded, tail, reporter)
        result = plan.eraser.erase(window.lr_frames, window.lr_masks, plan.options.eraser_options, reporter)
        timings["erase"] += time.monotonic() - clock
        return window, result

    def _finish_window(self, source, spec, plan: _ErasePlan, window: _Window, result, reporter, timings, alpha_out):
        """An erased window upscaled, then its frames composited one by one: (frame, alpha) pairs."""
        clock = time.monotonic()
        crop, upscaled = self._upscale_window(plan, window, result, reporter)
        timings["upscale"] += time.monotonic() - clock
        frames = self._composite_window(
            source, plan, window, result.frames, crop, upscaled, spec.patch_layer, with_matte=alpha_out is not None
        )
        return _timed(frames, timings, "composite")

    def _erase_plan(self, info: MediaInfo, start: int, count: int, spec) -> tuple[_ErasePlan, list[StageRun]]:
        opts = spec.options
        width, height = info.width, info.height
        lr_size = working_size(width, height, opts.working_height)
        scaled = lr_size != (width, height)
        eraser_choice = choose("eraser", opts.eraser)
        runs = [StageRun("eraser", eraser_choice.cls.name, eraser_choice.note)]
        upscaler = None
        if scaled:
            upscaler_choice = choose("upscaler", opts.upscaler)
            upscaler = self._instance("upscaler", upscaler_choice.cls)
            runs.append(StageRun("upscaler", upscaler_choice.cls.name, upscaler_choice.note))
        else:
            runs.append(StageRun("upscaler", "none", "working resolution equals the source"))
        scale = width / lr_size[0]
        window = max(2, opts.subvideo_length)
        plan = _ErasePlan(
            start=start,
            count=count,
            size=(width, height),
            lr_size=lr_size,
            options=opts,
            eraser=self._instance("eraser", eraser_choice.cls),
            upscaler=upscaler,
            # The crop margin must hold the feather (source pixels) plus context for the upscaler.
            margin=int(math.ceil(opts.feather / scale)) + 8,
            window=window,
            overlap=min(opts.window_overlap, window // 2),
        )
        return plan, runs

    @staticmethod
    def _decode_window(
        source, matte, plan: _ErasePlan, bounds: _Bounds, keep: bool, check: Callable[[], None] | None = None
    ) -> _Decoded:
        """Source frames bounds.pos..end-1 and their masks: what a window needs that the previous one does not give.

        `keep`: hold the full-resolution frames for the compositor (else it decodes them again).
        """
        pos, end = bounds.pos, bounds.end
        frames = source.frames(plan.start + pos, plan.start + end)
        source_frames: list[np.ndarray] | None = [] if keep else None
        lr_new = []
        for frame in frames:
            if check is not None:
                check()
            if source_frames is not None:
                source_frames.append(frame)
            lr_new.append(plan.to_lr(frame))
        masks_hr = [_mask_from_matte(matte.read(i), plan.start + i) for i in range(pos, end)]
        objects = [downscale_mask(m, plan.lr_size) for m in masks_hr]
        return _Decoded(bounds=bounds, source_frames=source_frames, lr_new=lr_new, masks_hr=masks_hr, objects=objects)

    @staticmethod
    def _assemble_window(plan: _ErasePlan, decoded: _Decoded, tail: list[np.ndarray], reporter: Reporter) -> _Window:
        """The eraser's input: the tail (finished frames, empty masks), then the decoded frames with their holes."""
        opts = plan.options
        known = decoded.bounds.known
        if len(tail) != known:
            raise RuntimeError(f"window at frame {decoded.bounds.pos} expects {known} finished frames, got {len(tail)}")
        lr_frames = np.stack(tail + decoded.lr_new)
        objects = np.stack([np.zeros(plan.lr_size[::-1], bool)] * known + decoded.objects)
        if opts.include_effects:
            # Before dilation: the shadow must touch the object itself.
            objects = grow_to_effects(lr_frames, objects, check=reporter.check)
        lr_masks = np.stack([m if t < known else dilate(m, opts.mask_dilation) for t, m in enumerate(objects)])
        return _Window(
            pos=decoded.bounds.pos,
            end=decoded.bounds.end,
            known=known,
            source_frames=decoded.source_frames,
            lr_frames=lr_frames,
            lr_masks=lr_masks,
            masks_hr=decoded.masks_hr,
        )

    @staticmethod
    def _upscale_window(
        plan: _ErasePlan, window: _Window, result, reporter: Reporter
    ) -> tuple[Crop | None, np.ndarray | None]:
        """The filled frames' crop around every hole of the window, at source resolution."""
        if plan.upscaler is None:
            return None, None
        union = np.logical_or.reduce(window.lr_masks[window.known :])
        crop = crop_for(union, plan.lr_size, plan.size, plan.margin)
        if crop is None:
            return None, None
        flows = None
        if result.flows is not None:
            flows = type(result.flows)(
                forward=result.flows.forward[:, crop.y0 : crop.y1, crop.x0 : crop.x1],
                backward=result.flows.backward[:, crop.y0 : crop.y1, crop.x0 : crop.x1],
            )
        upscaled = plan.upscaler.upscale(
            result.frames[:, crop.y0 : crop.y1, crop.x0 : crop.x1],
            crop.source_size,
            flows,
            plan.options.upscaler_options,
            reporter,
        )
        return crop, upscaled

    def _composite_window(
        self,
        source,
        plan: _ErasePlan,
        window: _Window,
        filled: np.ndarray,
        crop: Crop | None,
        upscaled: np.ndarray | None,
        patch_layer: bool,
        with_matte: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Each new frame of the window, in order: the cleaned pixels inside the feathered mask, the source
        elsewhere; with `with_matte`, paired with the 16-bit alpha it was composited with (for the matte)."""
        opts = plan.options
        width, height = plan.size
        scaled = plan.upscaler is not None
        frames = (
            window.source_frames
            if window.source_frames is not None
            else source.frames(plan.start + window.pos, plan.start + window.end)
        )
        for j, frame in enumerate(frames, start=window.known):
            mask_hr = window.masks_hr[j - window.known]
            region = hole_region(mask_hr, window.lr_masks[j])
            box = region_box(region, opts.feather + 1)
            out = frame  # decoded for this loop only: composited in place
            alpha_box = None
            if box is not None:
                y0, y1, x0, x1 = box
                # Everything below works on the box around the mask (plus the feather):
                # at 4K/8K a full-frame float alpha and a copied frame per frame add up.
                alpha_box = feather_alpha(region[y0:y1, x0:x1], opts.feather)
                patch = self._cleaned_patch(
                    frame, filled[j], box, crop, None if upscaled is None else upscaled[j], scaled
                )
                if patch_layer:
                    # Straight alpha: the layer's colour is the cleaned pixels, so that
                    # source x (1 - alpha) + layer x alpha is the composited output.
                    out[y0:y1, x0:x1] = np.where(alpha_box[..., None] > 0, patch, frame[y0:y1, x0:x1])
                else:
                    out[y0:y1, x0:x1] = composite(frame[y0:y1, x0:x1], patch, alpha_box)
            if patch_layer:
                alpha = np.zeros((height, width), np.uint8)
                if alpha_box is not None:
                    alpha[y0:y1, x0:x1] = np.rint(alpha_box * 255).astype(np.uint8)
                out = np.dstack([out, alpha])
            yield out, (matte16((height, width), box, alpha_box) if with_matte else None)

    @staticmethod
    def _cleaned_patch(frame, filled_lr, box, crop: Crop | None, upscaled, scaled: bool) -> np.ndarray:
        """The cleaned pixels of `box` at source resolution: the eraser's fill (upscaled when scaled)."""
        y0, y1, x0, x1 = box
        if not scaled:
            return filled_lr[y0:y1, x0:x1]
        patch = frame[y0:y1, x0:x1].copy()
        if crop is not None:
            iy0, iy1 = max(y0, crop.sy0), min(y1, crop.sy1)
            ix0, ix1 = max(x0, crop.sx0), min(x1, crop.sx1)
            if iy1 > iy0 and ix1 > ix0:
                patch[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = upscaled[
                    iy0 - crop.sy0 : iy1 - crop.sy0, ix0 - crop.sx0 : ix1 - crop.sx0
                ]
        return patch

    # -- one frame, quickly --------------------------------------------------

    def preview(self, spec: RemovalSpec, frame: int, reporter: Reporter) -> tuple[np.ndarray, MaskReport]:
        check_input_path(spec.source_path, "source")
        if spec.prompt.mask_path:
            check_input_path(spec.prompt.mask_path, "mask")
        info = probe(spec.source_path)
        validate_range(info, frame, frame + 1)
        choice = self.masker_choice(spec)
        with open_source(spec.source_path) as source:
            masker = self.masker_for_call(choice)
            return masker.preview(source, frame, spec.prompt, spec.options.masker_options, reporter)


def _mask_from_matte(image: np.ndarray, frame: int) -> np.ndarray:
    """A staged matte frame (8- or 16-bit) as the object's mask."""
    if image is None:
        raise MaskError(f"mask for frame {frame} is missing")
    if image.ndim == 3:
        image = image[..., 0]
    return image > (np.iinfo(image.dtype).max // 2 if image.dtype.kind in "ui" else 0.5)


@dataclass
class _ErasePlan:
    """What every window of one erase pass shares."""

    start: int  # first source frame of the range
    count: int  # frames in the range
    size: tuple[int, int]  # source (width, height)
    lr_size: tuple[int, int]  # working (width, height)
    options: object  # PipelineOptions
    eraser: object
    upscaler: object | None  # None when the working size is the source size
    margin: int  # working pixels of context around the upscaled crop
    window: int  # frames per eraser window, tail included
    overlap: int  # finished frames carried into the next window

    def to_lr(self, frame: np.ndarray) -> np.ndarray:
        return frame if self.lr_size == self.size else cv2.resize(frame, self.lr_size, interpolation=cv2.INTER_AREA)

    @property
    def window_bytes(self) -> int:
        """Full-resolution RGB frames of the longest window."""
        return self.size[0] * self.size[1] * 3 * min(self.window, self.count)


@dataclass(frozen=True)
class _Bounds:
    """Where one window lies: `known` finished frames before pos, then source frames pos..end-1."""

    pos: int
    end: int
    known: int


def _window_bounds(plan: _ErasePlan, pos: int, known: int) -> Iterator[_Bounds]:
    """The windows from frame `pos` on, `known` finished frames before the first.

    Each window holds at most plan.window frames, finished ones included; the
    next one starts where it ends, after its last plan.overlap frames.
    """
    while pos < plan.count:
        end = min(plan.count, pos - known + plan.window)
        yield _Bounds(pos, end, known)
        known = min(plan.overlap, known + end - pos) if end < plan.count and plan.overlap else 0
        pos = end


def _next_tail(plan: _ErasePlan, window: _Window, result) -> list[np.ndarray]:
    """The erased frames the next window starts from (none after the last window)."""
    n = len(result.frames)
    more = window.end < plan.count and plan.overlap
    return [result.frames[i] for i in range(max(0, n - plan.overlap), n)] if more else []


class _MaskFeed:
    """The mask pass running in its own thread beside the streaming erase pass.

    Masks are staged in the matte sink in frame order; the erase pass's decoder
    waits here until its window's masks are there (wait_for). Progress stays one
    outer stage at a time: while masks come the reporter shows "masking" and the
    writer's frames are not counted; when the mask pass ends, "erasing" begins at
    the frames already written (every frame is counted once either way).
    `reporter` is what the mask pass sees: the job's, plus `stop` (set when the
    erase pass failed, so the masker leaves at its next check).
    """

    def __init__(self, matte, output, reporter: Reporter, count: int) -> None:
        self.matte = matte
        self.output = output
        self.count = count
        self.stop = threading.Event()
        self.reporter = _StoppableReporter(reporter, self.stop)
        self.finished = threading.Event()
        self.report: MaskReport | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._job_reporter = reporter
        self._progress = threading.Lock()  # the switch to "erasing" against the writer's count
        self._erasing = False

    def run(self, mask_pass: Callable[[], MaskReport]) -> None:
        """The thread's body: the mask pass, then the switch of the progress stage."""
        clock = time.monotonic()
        try:
            self.report = mask_pass()
            with self._progress:
                self._job_reporter.stage("erasing", self.count, done=self.output.written, outer=True)
                self._erasing = True
        except BaseException as exc:  # noqa: BLE001 - handed to the job's thread, raised there
            self.error = exc
        finally:
            self.seconds = time.monotonic() - clock
            self.finished.set()

    def wait_for(self, n: int, check: Callable[[], None]) -> None:
        """Until the first n masks are staged; raises _Stopped if the mask pass ended without them."""
        while self.matte.written < n:
            if self.finished.wait(POLL_SECONDS) and self.matte.written < n:
                raise _Stopped()  # the mask pass failed (its error is the job's) or stopped
            check()

    def write_frame(self, frame: np.ndarray, alpha_out, alpha: np.ndarray | None) -> None:
        """One frame into the output (see _write_frame); counted once "erasing" has begun (else at its start)."""
        with self._progress:
            _write_frame(self.output, frame, alpha_out, alpha)
            if self._erasing:
                self._job_reporter.advance(outer=True)


def _write_frame(output, frame: np.ndarray, alpha_out, alpha: np.ndarray | None) -> None:
    """One finished frame into the output and, when the matte is the alpha, its alpha into the matte.

    After the frame: a stop in between leaves this matte frame a mask, which
    alpha_matte() converts; the other order would lose the mask before its frame.
    """
    index = output.written
    output.write(frame)
    if alpha_out is not None:
        alpha_out.replace(index, alpha, final=True)


def _timed(items: Iterable, timings: dict[str, float], part: str) -> Iterator:
    """`items`, adding the time spent producing each (not the time the consumer holds it) to timings[part]."""
    iterator = iter(items)
    while True:
        clock = time.monotonic()
        item = next(iterator, None)
        timings[part] += time.monotonic() - clock
        if item is None:
            return
        yield item


@dataclass
class _Decoded:
    """A window's own frames, read before its turn at the eraser (nothing here depends on the previous window)."""

    bounds: _Bounds
    source_frames: list[np.ndarray] | None  # full resolution, when kept for the compositor
    lr_new: list[np.ndarray]  # the same frames at working resolution
    masks_hr: list[np.ndarray]  # the object masks at source resolution
    objects: list[np.ndarray]  # the object masks at working resolution, not dilated


class _Stopped(Exception):
    """Raised in a stage thread when another stage failed: the first failure is the one reported."""


class _StageReporter:
    """The job's Reporter as the eraser, the upscaler and the stage threads see it.

    check(): the job's cancel and interrupt, and the stop of the other stages.
    advance(): only a check. Progress counts frames written to the output, once,
    by the writer (the upscalers also advance per frame they finish; counted as
    well, a window would count twice).
    """

    def __init__(self, reporter: Reporter, stop: threading.Event) -> None:
        self._reporter = reporter
        self._stop = stop

    def check(self) -> None:
        self._reporter.check()
        if self._stop.is_set():
            raise _Stopped()

    def advance(self, n: int = 1) -> None:
        self.check()

    def warn(self, message: str) -> None:
        self._reporter.warn(message)


class _StoppableReporter(_StageReporter):
    """The job's Reporter as the mask pass beside the erase pass sees it: its progress goes to the
    job (unlike a stage thread's), and check() also raises _Stopped once `stop` is set."""

    def stage(self, name: str, total: int, done: int = 0, *, outer: bool = False) -> None:
        self._reporter.stage(name, total, done, outer=outer)

    def advance(self, n: int = 1, *, outer: bool = False) -> None:
        self._reporter.advance(n, outer=outer)
        self.check()

    @property
    def state(self):
        return self._reporter.state


class _Handoff:
    """Bounded queues between stage threads that never wait past a cancel or another stage's failure."""

    def __init__(self, reporter: Reporter) -> None:
        self.stop = threading.Event()
        self.reporter = _StageReporter(reporter, self.stop)

    def put(self, into: queue.Queue, item: object) -> None:
        while True:
            self.reporter.check()
            try:
                into.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                pass

    def get(self, source: queue.Queue) -> object:
        while True:
            self.reporter.check()
            try:
                return source.get(timeout=POLL_SECONDS)
            except queue.Empty:
                pass

    def acquire(self, slots: threading.Semaphore) -> None:
        while not slots.acquire(timeout=POLL_SECONDS):
            self.reporter.check()


@dataclass
class _Window:
    """One eraser window: `known` finished frames, then source frames pos..end-1."""

    pos: int
    end: int
    known: int
    source_frames: list[np.ndarray] | None  # kept when small enough, else decoded again to composite
    lr_frames: np.ndarray  # (known + end - pos, h, w, 3) at working resolution
    lr_masks: np.ndarray  # holes at working resolution, dilated (empty for known)
    masks_hr: list[np.ndarray]  # the object masks at source resolution
