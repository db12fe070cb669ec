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
their destinations and moved into place only when complete; a job interrupted
by a shutdown keeps its staging and resumes from the frames already written.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import JobInterrupted, MaskError, MediaError, MediaNotFound, PromptError
from ..masker.base import Masker, MaskReport
from ..masker.external import ExternalMasker
from ..masker.prompt import PromptNotUnderstood, check_frame_prompts, refusal_message
from ..media import MediaInfo, check_masks, check_output, frame_filename, open_sink, open_source, probe, validate_range
from ..progress import Reporter
from .backends import Choice, choose
from .composite import (Crop, alpha_matte, composite, crop_for, dilate, downscale_mask, feather_alpha, hole_region,
                        matte16, region_box, working_size)
from ..eraser.effects import grow_to_effects
from .spec import RemovalSpec

log = logging.getLogger(__name__)

# Full-resolution frames of one window kept in memory up to this size; beyond
# it (4K and long windows) the compositor decodes them a second time instead.
KEEP_SOURCE_BYTES = 512 * 1024 * 1024


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
    ignored_words: list[str] = field(default_factory=list)   # prompt words the masker could not check
    seconds: float = 0.0
    # Wall time per part ("masking", "decode", "erase", "upscale", "composite"), for benchmarks.
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


def _mask_to_png(mask: np.ndarray) -> np.ndarray:
    grey = mask.astype(np.uint8) * 255
    return np.repeat(grey[:, :, None], 3, axis=2)


class Pipeline:
    """Composes a masker, an eraser and an upscaler; keeps their instances (and models) loaded."""

    def __init__(self, instances: MutableMapping[tuple[str, str], object] | None = None) -> None:
        # The daemon passes a ModelCache (daemon/budget.py) that unloads least
        # recently used backends past its memory budget; --local keeps a dict.
        self._instances: MutableMapping[tuple[str, str], object] = {} if instances is None else instances

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
        check_frame_prompts(spec.prompt.frame_prompts, info.width, info.height, start, end,
                            mask_given=spec.prompt.tracked_mask_frame is not None)
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

    # -- the job -----------------------------------------------------------

    def run(self, spec: RemovalSpec, reporter: Reporter, job_id: str = "local") -> RemovalResult:
        started = time.monotonic()
        info, start, end = self.validate(spec)
        count = end - start
        result = RemovalResult(output_path=spec.output_path, matte_path=spec.matte_path, frame_count=count)
        masker_choice = self.masker_choice(spec)
        sinks = []
        try:
            with open_source(spec.source_path) as source:
                matte = open_sink(
                    spec.matte_path, info, start, count,
                    overwrite=spec.overwrite, staging_dir=staging_path(spec.matte_path, job_id),
                )
                sinks.append(matte)
                clock = time.monotonic()
                report = self._mask_pass(source, start, end, spec, masker_choice, matte, reporter)
                result.timings["masking"] = time.monotonic() - clock
                result.backends.append(StageRun("masker", masker_choice.cls.name, masker_choice.note))
                result.chosen_object, result.chosen_score = report.chosen_object, report.score
                result.warnings.extend(report.warnings)
                result.ignored_words = list(report.ignored_words)
                if not spec.matte_only:
                    output = open_sink(
                        spec.output_path, info, start, count,
                        overwrite=spec.overwrite, alpha=spec.patch_layer,
                        staging_dir=staging_path(spec.output_path, job_id), audio_from=info,
                    )
                    sinks.append(output)
                    result.backends.extend(
                        self._erase_pass(source, info, start, count, spec, matte, output, reporter, result.timings,
                                         alpha_out=matte if spec.matte_mode == "alpha" else None)
                    )
                    if spec.matte_mode == "alpha":
                        # The matte is the exact alpha each frame was composited with: the erase
                        # pass wrote it; this converts any frame a stop left as a mask.
                        clock = time.monotonic()
                        opts = spec.options
                        alpha_matte(matte, working_size(info.width, info.height, opts.working_height),
                                    opts.mask_dilation, opts.feather)
                        result.timings["matte"] = time.monotonic() - clock
            reporter.stage("writing", count, outer=True)
            # The cleaned frames land before the matte: an editor who sees the
            # matte can rely on the frames being there.
            for sink in reversed(sinks):
                sink.commit()
            reporter.advance(count, outer=True)
        except JobInterrupted:
            raise  # staging stays for Resume
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        result.seconds = time.monotonic() - started
        return result

    def _mask_pass(self, source, start, end, spec, choice, matte, reporter) -> MaskReport:
        count = end - start
        masker: Masker = choice.cls()
        if matte.written >= count:
            masker.report.chosen_object = "(masks from the interrupted run)"
            return masker.report
        reporter.stage("masking", count, done=matte.written, outer=True)
        height, width = source.info.height, source.info.width
        produced = 0
        any_mask = False
        for index, mask in enumerate(masker.masks(source, start, end, spec.prompt, spec.options.masker_options, reporter)):
            if mask.shape != (height, width):
                raise MaskError(f"masker {masker.name} returned a {mask.shape[1]}x{mask.shape[0]} mask for a {width}x{height} clip")
            produced += 1
            any_mask = any_mask or bool(mask.any())
            if index < matte.written:
                continue  # resumed: this frame's mask is already on disk
            matte.write(_mask_to_png(mask))
            reporter.advance(outer=True)
        if produced != count:
            raise MaskError(f"masker {masker.name} gave {produced} masks for {count} frames")
        if not any_mask and matte.written == count and not spec.prompt.mask_path:
            raise PromptError(f"nothing matching {spec.prompt.text!r} was found in frames {start}..{end - 1}")
        return masker.report

    def _erase_pass(self, source, info: MediaInfo, start, count, spec, matte, output, reporter,
                    timings: dict[str, float], alpha_out=None) -> list[StageRun]:
        """Erase, upscale and composite the clip window by window (see _ErasePlan).

        alpha_out: the matte sink, when the matte is the composite's alpha: each
        frame's object mask there is replaced by its alpha as the frame is written.
        """
        plan, runs = self._erase_plan(info, start, count, spec)
        pos = output.written
        # Frames finished by the previous window (or, resumed, the last frames
        # already written) seed the next one with an empty mask, so content
        # carries across window borders without a seam in time.
        tail = [plan.to_lr(output.read(i)[..., :3]) for i in range(max(0, pos - plan.overlap), pos)] if plan.overlap else []
        reporter.stage("erasing", count, done=pos, outer=True)
        for part in ("decode", "erase", "upscale", "composite"):
            timings.setdefault(part, 0.0)
        while pos < count:
            clock = time.monotonic()
            window = self._load_window(source, matte, plan, pos, tail, reporter)
            timings["decode"] += time.monotonic() - clock
            clock = time.monotonic()
            result = plan.eraser.erase(window.lr_frames, window.lr_masks, plan.options.eraser_options, reporter)
            timings["erase"] += time.monotonic() - clock
            clock = time.monotonic()
            crop, upscaled = self._upscale_window(plan, window, result, reporter)
            timings["upscale"] += time.monotonic() - clock
            clock = time.monotonic()
            self._composite_window(source, plan, window, result.frames, crop, upscaled, spec.patch_layer, output,
                                   reporter, alpha_out)
            timings["composite"] += time.monotonic() - clock
            more = window.end < count and plan.overlap
            tail = [result.frames[i] for i in range(max(0, len(result.frames) - plan.overlap), len(result.frames))] if more else []
            pos = window.end
        checkpoint = getattr(plan.upscaler, "ran_model_id", "")
        if checkpoint:  # name the weights that ran, e.g. "auto; weights basicvsrpp-reds4"
            runs[-1].note = f"{runs[-1].note}; weights {checkpoint}"
        return runs

    def _erase_plan(self, info: MediaInfo, start: int, count: int, spec) -> tuple["_ErasePlan", list[StageRun]]:
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
            start=start, count=count, size=(width, height), lr_size=lr_size, options=opts,
            eraser=self._instance("eraser", eraser_choice.cls), upscaler=upscaler,
            # The crop margin must hold the feather (source pixels) plus context for the upscaler.
            margin=int(math.ceil(opts.feather / scale)) + 8,
            window=window, overlap=min(opts.window_overlap, window // 2),
        )
        return plan, runs

    def _load_window(self, source, matte, plan: "_ErasePlan", pos: int, tail: list[np.ndarray],
                     reporter: Reporter) -> "_Window":
        """Source frames pos.. (after the tail) and their masks, at working resolution."""
        opts = plan.options
        known = len(tail)
        end = min(plan.count, pos - known + plan.window)
        width, height = plan.size
        keep = width * height * 3 * (end - pos) <= KEEP_SOURCE_BYTES
        source_frames = list(source.frames(plan.start + pos, plan.start + end)) if keep else None
        new = source_frames if keep else source.frames(plan.start + pos, plan.start + end)
        lr_frames = np.stack(tail + [plan.to_lr(f) for f in new])
        masks_hr = [_mask_from_matte(matte.read(i), plan.start + i) for i in range(pos, end)]
        objects = np.stack([np.zeros(plan.lr_size[::-1], bool)] * known + [downscale_mask(m, plan.lr_size) for m in masks_hr])
        if opts.include_effects:
            # Before dilation: the shadow must touch the object itself.
            objects = grow_to_effects(lr_frames, objects, check=reporter.check)
        lr_masks = np.stack([m if t < known else dilate(m, opts.mask_dilation) for t, m in enumerate(objects)])
        return _Window(pos=pos, end=end, known=known, source_frames=source_frames,
                       lr_frames=lr_frames, lr_masks=lr_masks, masks_hr=masks_hr)

    @staticmethod
    def _upscale_window(plan: "_ErasePlan", window: "_Window", result,
                        reporter: Reporter) -> tuple[Crop | None, np.ndarray | None]:
        """The filled frames' crop around every hole of the window, at source resolution."""
        if plan.upscaler is None:
            return None, None
        union = np.logical_or.reduce(window.lr_masks[window.known:])
        crop = crop_for(union, plan.lr_size, plan.size, plan.margin)
        if crop is None:
            return None, None
        flows = None
        if result.flows is not None:
            flows = type(result.flows)(
                forward=result.flows.forward[:, crop.y0:crop.y1, crop.x0:crop.x1],
                backward=result.flows.backward[:, crop.y0:crop.y1, crop.x0:crop.x1],
            )
        upscaled = plan.upscaler.upscale(
            result.frames[:, crop.y0:crop.y1, crop.x0:crop.x1], crop.source_size, flows,
            plan.options.upscaler_options, reporter,
        )
        return crop, upscaled

    def _composite_window(self, source, plan: "_ErasePlan", window: "_Window", filled: np.ndarray,
                          crop: Crop | None, upscaled: np.ndarray | None, patch_layer: bool, output,
                          reporter: Reporter, alpha_out=None) -> None:
        """Each new frame of the window: the cleaned pixels inside the feathered mask, the source elsewhere."""
        opts = plan.options
        width, height = plan.size
        scaled = plan.upscaler is not None
        frames = window.source_frames if window.source_frames is not None else \
            source.frames(plan.start + window.pos, plan.start + window.end)
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
                patch = self._cleaned_patch(frame, filled[j], box, crop, None if upscaled is None else upscaled[j], scaled)
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
            output.write(out)
            if alpha_out is not None:
                # After the frame: a stop in between leaves this matte frame a mask, which
                # alpha_matte() converts; the other order would lose the mask before its frame.
                alpha_out.replace(window.pos + j - window.known, matte16((height, width), box, alpha_box))
            reporter.advance(outer=True)

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
                patch[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = \
                    upscaled[iy0 - crop.sy0:iy1 - crop.sy0, ix0 - crop.sx0:ix1 - crop.sx0]
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
            masker = choice.cls()
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

    start: int                     # first source frame of the range
    count: int                     # frames in the range
    size: tuple[int, int]          # source (width, height)
    lr_size: tuple[int, int]       # working (width, height)
    options: object                # PipelineOptions
    eraser: object
    upscaler: object | None        # None when the working size is the source size
    margin: int                    # working pixels of context around the upscaled crop
    window: int                    # frames per eraser window, tail included
    overlap: int                   # finished frames carried into the next window

    def to_lr(self, frame: np.ndarray) -> np.ndarray:
        return frame if self.lr_size == self.size else cv2.resize(frame, self.lr_size, interpolation=cv2.INTER_AREA)


@dataclass
class _Window:
    """One eraser window: `known` finished frames, then source frames pos..end-1."""

    pos: int
    end: int
    known: int
    source_frames: list[np.ndarray] | None   # kept when small enough, else decoded again to composite
    lr_frames: np.ndarray                    # (known + end - pos, h, w, 3) at working resolution
    lr_masks: np.ndarray                     # holes at working resolution, dilated (empty for known)
    masks_hr: list[np.ndarray]               # the object masks at source resolution
