"""Drive BasicVSR++ over a window in bounded memory: temporal chunks x spatial tiles.

The network keeps five feature maps per frame (spatial + four branches) for
the whole sequence it sees, so memory grows with frames x area. We cut the
window into temporal chunks (with a few frames of overlap each side, whose
output is thrown away, so every kept frame has propagation context in both
directions) and each chunk into spatial tiles (padded by `tile_pad` pixels of
context, also thrown away). Peak memory is then set by chunk and tile size,
not by the window or the crop.

Flow reuse: PEANUT's FlowFields are forward[t] = flow on frame t pointing into
t + 1, backward[t] = flow on frame t + 1 pointing into t. In BasicVSR++ terms
that is flows_backward = FlowFields.forward and flows_forward =
FlowFields.backward (see network.py); both are in pixels of the low-resolution
frames, which is also the feature resolution of the x4 models, so they are
only resized when the eraser's flow has another size than the crop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ...errors import InvalidRequest
from ..base import FlowFields
from .network import BasicVSRPlusPlus

log = logging.getLogger(__name__)

# Budget for the per-chunk feature maps (5 per frame) when choosing chunk length.
_FEATURE_BUDGET_BYTES = {"cpu": 768 << 20, "cuda": 4096 << 20}


@dataclass(frozen=True)
class RunSettings:
    device: torch.device
    tile: int  # tile size at low resolution (0 = whole frame)
    tile_pad: int  # context pixels around each tile, discarded
    chunk: int  # frames kept per chunk
    chunk_overlap: int  # context frames each side of a chunk, discarded
    half: bool  # autocast in `dtype` (the device policy allows it on CUDA only)
    dtype: str = "float16"


def resolve_device(name: str) -> torch.device:
    """The job's device through the daemon's device policy ("" / "auto": CUDA, then MPS, then CPU)."""
    from ...models.device import resolve_device as policy_device

    return torch.device(policy_device(None if name in ("", "auto") else name))


def choose_settings(
    h: int,
    w: int,
    mid_channels: int,
    device: torch.device,
    tile: int = 0,
    chunk: int = 0,
    dtype: str | None = None,
) -> RunSettings:
    """Fill in tile and chunk sizes (0 = auto) for a crop of h x w at low resolution.

    `dtype` is the device policy's precision for BasicVSR++ (None: ask it).
    """
    if dtype is None:
        from ...models.device import select

        dtype = select("basicvsrpp", str(device)).dtype
    on_gpu = device.type == "cuda"
    if tile <= 0:
        # Tiles big enough that the discarded padding costs < 30 % extra work.
        tile = 384 if on_gpu else 192
    tile_pad = 16 if on_gpu else 12
    tile_h = min(h, tile + 2 * tile_pad)
    tile_w = min(w, tile + 2 * tile_pad)
    overlap = 4 if on_gpu else 3
    if chunk <= 0:
        bytes_per_frame = 5 * mid_channels * tile_h * tile_w * 4
        budget = _FEATURE_BUDGET_BYTES["cuda" if on_gpu else "cpu"]
        chunk = max(4, min(60, budget // bytes_per_frame - 2 * overlap))
    return RunSettings(
        device,
        tile,
        tile_pad,
        chunk,
        overlap,
        half=dtype != "float32",
        dtype=dtype if dtype != "float32" else "float16",
    )


def activation_bytes(h: int, w: int, settings: RunSettings, mid_channels: int, scale: int = 4) -> int:
    """Peak working memory of one chunk x tile: an estimate from the architecture, not a measurement.

    Features (spatial + 4 branches) of every frame of the chunk and its
    context, the two flow fields, the outputs at 4x, and one frame's
    reconstruction at 2x and 4x (64 channels).
    """
    tile_h = min(h, settings.tile + 2 * settings.tile_pad) if settings.tile else h
    tile_w = min(w, settings.tile + 2 * settings.tile_pad) if settings.tile else w
    frames = min(settings.chunk, 10_000) + 2 * settings.chunk_overlap
    area = tile_h * tile_w
    feature_bytes = 2 if settings.half else 4
    features = frames * 5 * mid_channels * area * feature_bytes
    flows = 2 * frames * 2 * area * 4
    outputs = frames * 3 * scale * scale * area * 4
    reconstruction = 64 * (4 + scale * scale) * area * 4
    return features + flows + outputs + reconstruction


def network_flows(flows: FlowFields, t: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """FlowFields -> (flows_forward, flows_backward) as (t - 1, 2, h, w) float32 arrays."""
    pairs = []
    for name, field in (("backward", flows.backward), ("forward", flows.forward)):
        field = np.asarray(field, dtype=np.float32)
        if field.ndim != 4 or field.shape[0] != t - 1 or field.shape[3] != 2:
            raise InvalidRequest(f"flows.{name} has shape {field.shape}, expected ({t - 1}, h, w, 2) for {t} frames")
        fh, fw = field.shape[1:3]
        if (fh, fw) != (h, w):
            # Resample the field and rescale its vectors to the crop's pixels.
            scale = np.array([w / fw, h / fh], dtype=np.float32)
            field = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) * scale for f in field])
        pairs.append(np.ascontiguousarray(field.transpose(0, 3, 1, 2)))
    return pairs[0], pairs[1]


def _spans(length: int, size: int, pad: int) -> list[tuple[int, int, int, int]]:
    """[(keep_start, keep_end, read_start, read_end)] covering range(length)."""
    if size <= 0 or size >= length:
        return [(0, length, 0, length)]
    spans = []
    for start in range(0, length, size):
        end = min(start + size, length)
        spans.append((start, end, max(0, start - pad), min(length, end + pad)))
    return spans


def _to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0).unsqueeze(0)


def iter_upscaled(
    model: BasicVSRPlusPlus,
    frames: np.ndarray,
    flows: FlowFields | None,
    settings: RunSettings,
    check: Callable[[], None] = lambda: None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first frame index, (n, 4h, 4w, 3) uint8) chunk by chunk, in order.

    `flows` given: used for alignment instead of SPyNet. `check` is called
    between tiles so a cancel takes effect within one tile.
    """
    t, h, w, _ = frames.shape
    scale = model.scale
    net_flows = network_flows(flows, t, h, w) if flows is not None else None
    time_spans = _spans(t, settings.chunk, settings.chunk_overlap)
    y_spans = _spans(h, settings.tile, settings.tile_pad)
    x_spans = _spans(w, settings.tile, settings.tile_pad)
    log.debug(
        "BasicVSR++ %d frames %dx%d: %d chunks x %d tiles on %s",
        t,
        w,
        h,
        len(time_spans),
        len(y_spans) * len(x_spans),
        settings.device,
    )
    for keep0, keep1, read0, read1 in time_spans:
        out = np.empty((keep1 - keep0, h * scale, w * scale, 3), dtype=np.uint8)
        for ky0, ky1, ry0, ry1 in y_spans:
            for kx0, kx1, rx0, rx1 in x_spans:
                check()
                piece = frames[read0:read1, ry0:ry1, rx0:rx1]
                tile_flows = None
                if net_flows is not None:
                    tile_flows = tuple(f[read0 : read1 - 1, :, ry0:ry1, rx0:rx1] for f in net_flows)
                sr = _run(model, piece, tile_flows, settings)
                out[:, ky0 * scale : ky1 * scale, kx0 * scale : kx1 * scale] = sr[
                    keep0 - read0 : keep1 - read0,
                    (ky0 - ry0) * scale : (ky1 - ry0) * scale,
                    (kx0 - rx0) * scale : (kx1 - rx0) * scale,
                ]
        yield keep0, out


@torch.inference_mode()
def _run(
    model: BasicVSRPlusPlus,
    frames: np.ndarray,
    flows: tuple[np.ndarray, np.ndarray] | None,
    settings: RunSettings,
) -> np.ndarray:
    """One chunk x tile through the network: (n, h, w, 3) uint8 -> (n, 4h, 4w, 3) uint8."""
    n = frames.shape[0]
    if n == 1:
        # The network propagates between frames; a lone frame is paired with
        # itself under zero motion, which is the still-image case.
        frames = np.concatenate([frames, frames])
        if flows is not None:
            flows = tuple(np.zeros((1, 2) + frames.shape[1:3], np.float32) for _ in range(2))
    lqs = _to_tensor(frames, settings.device)
    torch_flows = None
    if flows is not None:
        torch_flows = tuple(torch.from_numpy(f).to(settings.device).unsqueeze(0) for f in flows)
    with torch.autocast(settings.device.type, dtype=getattr(torch, settings.dtype), enabled=settings.half):
        sr = model(lqs, torch_flows)
    sr = sr[0, :n].float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return sr.permute(0, 2, 3, 1).cpu().numpy()


def expected_tiles(h: int, w: int, settings: RunSettings) -> int:
    """Number of tiles per chunk (for progress estimates and the benchmark)."""
    return math.prod(len(_spans(n, settings.tile, settings.tile_pad)) for n in (h, w))
