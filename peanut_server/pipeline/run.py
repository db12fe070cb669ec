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
from ..media import MediaInfo, check_masks, check_output, frame_filename, open_sink, open_source, probe, validate_range
from ..progress import Reporter
from .backends import Choice, choose
from .composite import (Crop, alpha_matte, composite, crop_for, dilate, downscale_mask, feather_alpha, hole_region,
                        matte16, region_box, working_size)
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
        self.masker_choice(spec)
        check_output(spec.output_path, spec.source_path, spec.overwrite)
        if not spec.matte_only:
            check_output(spec.matte_path, spec.source_path, spec.overwrite)
            choose("eraser", spec.options.eraser)
            if working_size(info.width, info.height, spec.options.working_height) != (info.width, info.height):
                choose("upscaler", spec.options.upscaler)
        return info, start, end

    def masker_choice(self, spec: RemovalSpec) -> Choice:
        if spec.prompt.mask_path:
            return Choice(ExternalMasker, "mask file given")
        from ..masker import BACKENDS

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
                if not spec.matte_only:
                    output = open_sink(
                        spec.output_path, info, start, count,
                        overwrite=spec.overwrite, alpha=spec.patch_layer,
                        staging_dir=staging_path(spec.output_path, job_id), audio_from=info,
                    )
                    sinks.append(output)
                    matte_dir = matte.staging
                    result.backends.extend(
                        self._erase_pass(source, info, start, count, spec, matte_dir, output, reporter, result.timings,
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
            reporter.stage("writing", 1)
            # The cleaned frames land before the matte: an editor who sees the
            # matte can rely on the frames being there.
            for sink in reversed(sinks):
                sink.commit()
            reporter.advance()
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
        reporter.stage("masking", count, done=matte.written)
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
            reporter.advance()
        if produced != count:
            raise MaskError(f"masker {masker.name} gave {produced} masks for {count} frames")
        if not any_mask and matte.written == count and not spec.prompt.mask_path:
            raise PromptError(f"nothing matching {spec.prompt.text!r} was found in frames {start}..{end - 1}")
        return masker.report

    def _erase_pass(self, source, info: MediaInfo, start, count, spec, matte_dir, output, reporter,
                    timings: dict[str, float], alpha_out=None) -> list[StageRun]:
        opts = spec.options
        width, height = info.width, info.height
        lr_size = working_size(width, height, opts.working_height)
        scaled = lr_size != (width, height)
        eraser_choice = choose("eraser", opts.eraser)
        eraser = self._instance("eraser", eraser_choice.cls)
        runs = [StageRun("eraser", eraser_choice.cls.name, eraser_choice.note)]
        upscaler = None
        if scaled:
            upscaler_choice = choose("upscaler", opts.upscaler)
            upscaler = self._instance("upscaler", upscaler_choice.cls)
            runs.append(StageRun("upscaler", upscaler_choice.cls.name, upscaler_choice.note))
        else:
            runs.append(StageRun("upscaler", "none", "working resolution equals the source"))

        scale = width / lr_size[0]
        # The crop margin must hold the feather (source pixels) plus context for the upscaler.
        margin = int(math.ceil(opts.feather / scale)) + 8
        window = max(2, opts.subvideo_length)
        overlap = min(opts.window_overlap, window // 2)

        def read_mask(i: int) -> np.ndarray:
            path = os.path.join(matte_dir, frame_filename(start + i))
            image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise MaskError(f"mask for frame {start + i} is missing from {matte_dir}")
            return image > 127

        def to_lr(frame: np.ndarray) -> np.ndarray:
            return frame if not scaled else cv2.resize(frame, lr_size, interpolation=cv2.INTER_AREA)

        pos = output.written
        tail: list[np.ndarray] = []
        if pos > 0 and overlap:
            # Resumed: the last frames already written seed the next window.
            for i in range(max(0, pos - overlap), pos):
                image = cv2.imread(os.path.join(output.staging, frame_filename(start + i)), cv2.IMREAD_COLOR)
                tail.append(to_lr(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
        reporter.stage("erasing", count, done=pos)
        for part in ("decode", "erase", "upscale", "composite"):
            timings.setdefault(part, 0.0)
        while pos < count:
            clock = time.monotonic()
            known = len(tail)
            a = pos - known
            b = min(count, a + window)
            keep = width * height * 3 * (b - pos) <= KEEP_SOURCE_BYTES
            source_frames = list(source.frames(start + pos, start + b)) if keep else None
            lr_frames = tail + [to_lr(f) for f in (source_frames if keep else source.frames(start + pos, start + b))]
            masks_hr = [read_mask(i) for i in range(pos, b)]
            masks_lr = [np.zeros(lr_size[::-1], bool)] * known + [
                dilate(downscale_mask(m, lr_size), opts.mask_dilation) for m in masks_hr
            ]
            timings["decode"] += time.monotonic() - clock
            clock = time.monotonic()
            result = eraser.erase(np.stack(lr_frames), np.stack(masks_lr), opts.eraser_options, reporter)
            timings["erase"] += time.monotonic() - clock
            clock = time.monotonic()
            filled = result.frames
            crop, upscaled = None, None
            if scaled:
                union = np.logical_or.reduce(masks_lr[known:])
                crop = crop_for(union, lr_size, (width, height), margin)
                if crop is not None:
                    flows = None
                    if result.flows is not None:
                        flows = type(result.flows)(
                            forward=result.flows.forward[:, crop.y0:crop.y1, crop.x0:crop.x1],
                            backward=result.flows.backward[:, crop.y0:crop.y1, crop.x0:crop.x1],
                        )
                    upscaled = upscaler.upscale(
                        filled[:, crop.y0:crop.y1, crop.x0:crop.x1], crop.source_size, flows,
                        opts.upscaler_options, reporter,
                    )
            timings["upscale"] += time.monotonic() - clock
            clock = time.monotonic()
            hr_iter = iter(source_frames) if keep else source.frames(start + pos, start + b)
            for j, frame in enumerate(hr_iter, start=known):
                region = hole_region(masks_hr[j - known], masks_lr[j])
                box = region_box(region, opts.feather + 1)
                out = frame  # decoded for this loop only: composited in place
                alpha_box = None
                if box is not None:
                    y0, y1, x0, x1 = box
                    # Everything below works on the box around the mask (plus the feather):
                    # at 4K/8K a full-frame float alpha and a copied frame per frame add up.
                    alpha_box = feather_alpha(region[y0:y1, x0:x1], opts.feather)
                    patch = self._cleaned_patch(frame, filled[j], box, crop,
                                                None if upscaled is None else upscaled[j], scaled)
                    if spec.patch_layer:
                        # Straight alpha: the layer's colour is the cleaned pixels, so that
                        # source x (1 - alpha) + layer x alpha is the composited output.
                        out[y0:y1, x0:x1] = np.where(alpha_box[..., None] > 0, patch, frame[y0:y1, x0:x1])
                    else:
                        out[y0:y1, x0:x1] = composite(frame[y0:y1, x0:x1], patch, alpha_box)
                if spec.patch_layer:
                    alpha = np.zeros((height, width), np.uint8)
                    if alpha_box is not None:
                        alpha[y0:y1, x0:x1] = np.rint(alpha_box * 255).astype(np.uint8)
                    out = np.dstack([out, alpha])
                output.write(out)
                if alpha_out is not None:
                    # After the frame: a stop in between leaves this matte frame a mask, which
                    # alpha_matte() converts; the other order would lose the mask before its frame.
                    alpha_out.replace(pos + j - known, matte16((height, width), box, alpha_box))
                reporter.advance()
            timings["composite"] += time.monotonic() - clock
            tail = [filled[i] for i in range(max(0, len(filled) - overlap), len(filled))] if overlap and b < count else []
            pos = b
        checkpoint = getattr(upscaler, "ran_model_id", "")
        if checkpoint:  # name the weights that ran, e.g. "auto; weights basicvsrpp-reds4"
            runs[-1].note = f"{runs[-1].note}; weights {checkpoint}"
        return runs

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
            if choice.cls is ExternalMasker:
                masker = ExternalMasker()
                mask = next(iter(masker.masks(source, frame, frame + 1, spec.prompt, spec.options.masker_options, reporter)))
                return mask, masker.report
            masker = choice.cls()
            mask, report = masker.preview(source, frame, spec.prompt, spec.options.masker_options, reporter)
            return mask, report
