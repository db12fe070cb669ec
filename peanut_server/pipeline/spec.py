"""What one removal job asks for, as plain dataclasses the pipeline runs on.

The daemon builds a RemovalSpec from a SubmitRequest (`spec_from_request`);
`--local` builds the same request and so the same spec. Presets set defaults;
explicit options win.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..api import peanut_pb2 as pb
from ..eraser.base import EraserOptions
from ..errors import InvalidRequest
from ..masker.base import FramePrompt, MaskerOptions, MaskPrompt, PointPrompt
from ..upscaler.base import UpscalerOptions

# Lines the eraser works at, by preset. Sources smaller than this are not upscaled.
PRESET_WORKING_HEIGHT = {
    pb.PRESET_DRAFT: 360,
    pb.PRESET_BALANCED: 432,
    pb.PRESET_QUALITY: 720,
}
PRESET_NEIGHBOR_STRIDE = {pb.PRESET_DRAFT: 10, pb.PRESET_BALANCED: 5, pb.PRESET_QUALITY: 3}
PRESET_STEP = {pb.PRESET_DRAFT: 20, pb.PRESET_BALANCED: 10, pb.PRESET_QUALITY: 5}

MAX_WORKING_HEIGHT = 2160
MAX_WINDOW = 400
# Linux PATH_MAX: a longer path can only fail later, with a less helpful message.
MAX_PATH_BYTES = 4096


@dataclass
class PipelineOptions:
    masker: str = "auto"
    eraser: str = "auto"
    upscaler: str = "auto"
    working_height: int = 432  # 0 = the source's own height
    mask_dilation: int = 4  # pixels at working resolution
    feather: int = 3  # pixels at source resolution
    subvideo_length: int = 80  # frames per eraser window
    window_overlap: int = 10  # frames shared by consecutive windows
    include_effects: bool = False  # grow the masks to the object's shadow (eraser/effects.py)
    device: str = ""  # learned backends: "" = the daemon's device policy; cpu, cuda[:N], mps
    eraser_options: EraserOptions = field(default_factory=EraserOptions)
    masker_options: MaskerOptions = field(default_factory=MaskerOptions)
    upscaler_options: UpscalerOptions = field(default_factory=UpscalerOptions)


@dataclass
class RemovalSpec:
    source_path: str
    start: int
    end: int | None  # exclusive; None = to the end
    prompt: MaskPrompt
    output_path: str
    matte_path: str
    matte_only: bool = False
    overwrite: bool = False
    patch_layer: bool = False
    # "alpha": the matte is the exact alpha of the composite; "object": the object's hard mask.
    matte_mode: str = "alpha"
    options: PipelineOptions = field(default_factory=PipelineOptions)


def default_matte_path(output_path: str) -> str:
    """<output>_matte beside the output (a folder, whatever the output's kind)."""
    stem, ext = os.path.splitext(output_path.rstrip("/\\"))
    return stem + "_matte" if ext else output_path.rstrip("/\\") + "_matte"


def _backend_name(value: str) -> str:
    return (value or "auto").strip().lower()


def _positive(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidRequest(f"option {name}={value} is outside {low}..{high}")
    return value


def options_from_message(message: pb.Options) -> PipelineOptions:
    preset = message.preset or pb.PRESET_BALANCED
    opts = PipelineOptions(
        masker=_backend_name(message.masker),
        eraser=_backend_name(message.eraser),
        upscaler=_backend_name(message.upscaler),
        working_height=PRESET_WORKING_HEIGHT[preset],
        eraser_options=EraserOptions(
            neighbor_stride=PRESET_NEIGHBOR_STRIDE[preset],
            step=PRESET_STEP[preset],
            flow=_backend_name(message.flow),
            # Exemplar synthesis for every never-seen gap, not only lasting ones:
            # steadier (Ewarp) and +0.2 dB on moving holes, several times slower.
            invent_everywhere=preset == pb.PRESET_QUALITY,
            # The background's homography inside holes: +1 dB on moving holes and
            # no smear across large ones, ~35 % slower (EraserOptions.flow_completion).
            flow_completion="background" if preset == pb.PRESET_QUALITY else "membrane",
        ),
    )
    opts.include_effects = message.include_effects
    if message.device:
        from ..models.device import check_device_name

        # One device for every learned stage of the job.
        opts.device = check_device_name(message.device)
        opts.masker_options.device = opts.device
        opts.eraser_options.device = opts.device
        opts.upscaler_options.device = opts.device
    if message.HasField("working_height"):
        opts.working_height = _positive("working_height", message.working_height, 0, MAX_WORKING_HEIGHT)
        if 0 < opts.working_height < 64:
            raise InvalidRequest("option working_height must be 0 (source) or at least 64 lines")
    if message.HasField("mask_dilation"):
        opts.mask_dilation = _positive("mask_dilation", message.mask_dilation, 0, 256)
    if message.HasField("feather"):
        opts.feather = _positive("feather", message.feather, 0, 256)
    if message.HasField("neighbor_stride"):
        opts.eraser_options.neighbor_stride = _positive("neighbor_stride", message.neighbor_stride, 1, 100)
    if message.HasField("step"):
        opts.eraser_options.step = _positive("step", message.step, 1, 1000)
    if message.HasField("subvideo_length"):
        opts.subvideo_length = _positive("subvideo_length", message.subvideo_length, 2, MAX_WINDOW)
        opts.window_overlap = min(opts.window_overlap, opts.subvideo_length // 4)
    if message.HasField("mask_threshold"):
        if not 0.0 < message.mask_threshold < 1.0:
            raise InvalidRequest(f"option mask_threshold={message.mask_threshold} must be between 0 and 1")
        opts.masker_options.threshold = message.mask_threshold
    if message.HasField("clip_window"):
        opts.masker_options.clip_window = _positive("clip_window", message.clip_window, 1, 1000)
    if message.HasField("reuse_flow"):
        opts.upscaler_options.reuse_flow = message.reuse_flow
    if message.HasField("seed"):
        opts.masker_options.seed = int(message.seed) & 0xFFFFFFFF
    return opts


def prompt_from_message(message: pb.MaskSpec) -> MaskPrompt:
    return MaskPrompt(
        text=message.text.strip(),
        mask_path=message.mask_path,
        frame_prompts=[
            FramePrompt(
                frame=fp.frame,
                points=[PointPrompt(p.x, p.y, p.positive) for p in fp.points],
                box=(fp.box.x0, fp.box.y0, fp.box.x1, fp.box.y1) if fp.HasField("box") else None,
            )
            for fp in message.frame_prompts
        ],
        approximate=message.approximate,
    )


def _numbers(text: str, count: int, option: str, syntax: str) -> tuple[int, list[float]]:
    """`F:A,B,...` -> (F, [A, B, ...]); InvalidRequest naming the option and its syntax otherwise."""
    frame, sep, rest = text.strip().partition(":")
    values = rest.split(",")
    try:
        if not sep or len(values) != count:
            raise ValueError
        number = int(frame)
        numbers = [float(v) for v in values]
    except ValueError:
        raise InvalidRequest(f"bad {option} {text!r}: expected {syntax} (source frame, source pixels)") from None
    if number < 0 or not all(math.isfinite(v) for v in numbers):
        raise InvalidRequest(f"bad {option} {text!r}: the frame must be >= 0 and the numbers finite")
    return number, numbers


def parse_frame_prompts(
    boxes: list[str],
    points: list[str],
    exclude_points: list[str],
    names: tuple[str, str, str] = ("--box", "--point", "--exclude-point"),
) -> list[pb.FramePrompt]:
    """Boxes `F:X,Y,W,H` and points `F:X,Y` (source frame, source pixels) as proto frame prompts,
    one per frame. `names` are what the user typed them as (CLI options, OTIO metadata keys)."""
    by_frame: dict[int, pb.FramePrompt] = {}

    def on(frame: int) -> pb.FramePrompt:
        return by_frame.setdefault(frame, pb.FramePrompt(frame=frame))

    for text in boxes:
        frame, (x, y, w, h) = _numbers(text, 4, names[0], "F:X,Y,W,H")
        if w <= 0 or h <= 0:
            raise InvalidRequest(f"bad {names[0]} {text!r}: width and height must be positive")
        if on(frame).HasField("box"):
            raise InvalidRequest(f"two boxes on frame {frame}: give one box per frame")
        on(frame).box.CopyFrom(pb.Box(x0=x, y0=y, x1=x + w, y1=y + h))
    for option, texts, positive in ((names[1], points, True), (names[2], exclude_points, False)):
        for text in texts:
            frame, (x, y) = _numbers(text, 2, option, "F:X,Y")
            on(frame).points.append(pb.Point(x=x, y=y, positive=positive))
    return [by_frame[f] for f in sorted(by_frame)]


def absolute_path(path: str, what: str) -> str:
    """A request's path, checked for shape only (non-empty, no NUL, not too long, absolute), normalised."""
    if not path:
        raise InvalidRequest(f"{what} path is empty")
    if "\x00" in path:
        raise InvalidRequest(f"{what} path contains a NUL character")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidRequest(f"{what} path is longer than {MAX_PATH_BYTES} bytes")
    if not os.path.isabs(path):
        raise InvalidRequest(f"{what} path must be absolute: {path!r}")
    return os.path.normpath(path)


def spec_from_request(request: pb.SubmitRequest) -> RemovalSpec:
    """Check the request's shape (not its files) and turn it into a RemovalSpec."""
    source_path = absolute_path(request.source.path, "source")
    output_path = absolute_path(request.output.path, "output")
    start = request.source.start_frame
    end = request.source.end_frame if request.source.HasField("end_frame") else None
    if start < 0:
        raise InvalidRequest(f"start frame {start} is negative")
    if end is not None and end <= start:
        raise InvalidRequest(f"frame range [{start}, {end}) is empty or reversed")
    prompt = prompt_from_message(request.mask)
    if prompt.mask_path:
        prompt.mask_path = absolute_path(prompt.mask_path, "mask")
    if not (prompt.text or prompt.mask_path or prompt.frame_prompts):
        raise InvalidRequest("nothing to remove: give a text prompt, a mask file, or points/boxes")
    if len(prompt.text) > 1000:
        raise InvalidRequest("text prompt is longer than 1000 characters")
    matte_path = request.output.matte_path
    matte_path = absolute_path(matte_path, "matte") if matte_path else default_matte_path(output_path)
    matte_only = request.mode == pb.MODE_MATTE_ONLY
    # A matte-only job writes its masks to the output path itself (the daemon stores that in
    # the request's matte_path, so a queued mask job reads back with the two equal).
    if matte_path == output_path and not matte_only:
        raise InvalidRequest("matte path and output path are the same")
    matte_mode = request.output.matte_mode
    if matte_mode not in pb.MatteMode.values():
        raise InvalidRequest(f"unknown matte mode {matte_mode}")
    if matte_only and matte_mode == pb.MATTE_MODE_ALPHA:
        raise InvalidRequest("a matte-only job writes the object's mask; there is no composite alpha to write")
    return RemovalSpec(
        source_path=source_path,
        start=start,
        end=end,
        prompt=prompt,
        # Matte-only jobs write the masks to the output path itself.
        output_path=output_path,
        matte_path=output_path if matte_only else matte_path,
        matte_only=matte_only,
        overwrite=request.output.overwrite,
        patch_layer=request.output.patch_layer,
        matte_mode="object" if matte_only or matte_mode == pb.MATTE_MODE_OBJECT else "alpha",
        options=options_from_message(request.options),
    )
