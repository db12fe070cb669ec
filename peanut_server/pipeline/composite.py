"""Putting cleaned pixels back into the untouched source frame.

Outside the feathered mask the output is the source, bit for bit: alpha is
exactly 0 there and those pixels are copied, never blended.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ..media.sink import FrameSink


def working_size(width: int, height: int, working_height: int) -> tuple[int, int]:
    """(w, h) the eraser runs at: working_height lines (never more than the source), even sizes."""
    if working_height <= 0 or working_height >= height:
        return width, height
    h = working_height - working_height % 2
    w = int(round(width * h / height))
    w -= w % 2
    return max(w, 2), max(h, 2)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0 or not mask.any():
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def downscale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Any coverage of a low-resolution pixel counts, so the hole never shrinks."""
    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0


def feather_alpha(mask: np.ndarray, feather: int) -> np.ndarray:
    """1 on the mask, falling linearly to 0 over `feather` pixels outside it, 0 beyond."""
    if feather <= 0:
        return mask.astype(np.float32)
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(1.0 - distance / float(feather + 1), 0.0, 1.0).astype(np.float32)


def region_box(mask: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) around the mask's pixels grown by `pad`, clipped to the frame; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        max(0, int(rows[0]) - pad),
        min(height, int(rows[-1]) + 1 + pad),
        max(0, int(cols[0]) - pad),
        min(width, int(cols[-1]) + 1 + pad),
    )


def hole_region(mask: np.ndarray, hole_lr: np.ndarray) -> np.ndarray:
    """Source-resolution pixels the compositor replaces: the object's mask plus the eraser's hole.

    `hole_lr` is the (dilated) hole at working resolution; brought back to the
    source size it reaches past the object's mask, and the fill covers it all.
    """
    if hole_lr.shape == mask.shape:
        return hole_lr | mask
    height, width = mask.shape
    grown = cv2.resize(hole_lr.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return grown | mask


def composite_alpha(mask: np.ndarray, lr_size: tuple[int, int], mask_dilation: int, feather: int) -> np.ndarray:
    """The full-frame alpha the pipeline composites a frame with, from the object's mask alone.

    Same steps as the erase pass: hole at working resolution (downscaled, dilated),
    back at source resolution, then feathered. The matte is this alpha.
    """
    region = hole_region(mask, dilate(downscale_mask(mask, lr_size), mask_dilation))
    alpha = np.zeros(mask.shape, np.float32)
    box = region_box(region, feather + 1)
    if box is not None:
        y0, y1, x0, x1 = box
        alpha[y0:y1, x0:x1] = feather_alpha(region[y0:y1, x0:x1], feather)
    return alpha


def matte16(shape: tuple[int, int], box: tuple[int, int, int, int] | None, alpha_box: np.ndarray | None) -> np.ndarray:
    """A full-frame 16-bit matte from the alpha of a box (0 outside it), converted on the box only."""
    matte = np.zeros(shape, np.uint16)
    if box is not None and alpha_box is not None:
        y0, y1, x0, x1 = box
        matte[y0:y1, x0:x1] = np.rint(alpha_box * 65535.0).astype(np.uint16)
    return matte


def alpha_matte(
    matte: FrameSink, lr_size: tuple[int, int], mask_dilation: int, feather: int, upto: int | None = None
) -> None:
    """Turn a matte's staged object masks into the alphas their frames were composited with.

    The erase pass replaces each frame's mask by its alpha as it writes the
    frame; this catches any frame it did not (a stop between the two writes),
    so it must give the same alpha. In place (each frame replaced atomically)
    and idempotent: frames already holding a 16-bit alpha are left alone.
    Frames 0..upto-1 (default: every staged frame) are converted and then final
    (a video matte's encoder takes them in order).
    """
    count = matte.written if upto is None else upto

    def convert(k: int) -> int:
        if matte.staged_bit_depth(k) != 16:
            stored = matte.read(k)
            mask = (stored if stored.ndim == 2 else stored[..., 0]) > 127
            matte.replace(k, composite_alpha(mask, lr_size, mask_dilation, feather))
        return k

    # Reading, the distance transform and PNG writing release the GIL: frames overlap.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for k in pool.map(convert, range(count)):  # in order
            matte.mark_final(k + 1)


def composite(source: np.ndarray, filled: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend `filled` over `source` where alpha > 0; elsewhere copy the source exactly."""
    out = source.copy()
    inside = alpha > 0
    if not inside.any():
        return out
    # Where alpha is 1 (the hole itself, most of it) the blend below gives `filled` exactly
    # (source x 0 + filled x 1, in float32, integers): copied instead, 4x faster at 1080p.
    whole = alpha >= 1.0
    np.copyto(out, filled, where=whole[..., None])
    band = inside & ~whole  # the feather
    a = alpha[band][:, None]
    blended = source[band].astype(np.float32) * (1.0 - a) + filled[band].astype(np.float32) * a
    out[band] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class Crop:
    """A region at working resolution and the exact region it maps to at source resolution."""

    x0: int
    y0: int
    x1: int
    y1: int
    sx0: int
    sy0: int
    sx1: int
    sy1: int

    @property
    def source_size(self) -> tuple[int, int]:
        return self.sy1 - self.sy0, self.sx1 - self.sx0


def _grid(scale: Fraction) -> int:
    """Step at working resolution whose image at source resolution is a whole pixel."""
    return scale.limit_denominator(16).denominator


def crop_for(mask_lr: np.ndarray, lr_size: tuple[int, int], src_size: tuple[int, int], margin: int) -> Crop | None:
    """The bounding region of `mask_lr` plus a margin, snapped so both ends map to whole source pixels."""
    ys, xs = np.nonzero(mask_lr)
    if len(xs) == 0:
        return None
    w, h = lr_size
    width, height = src_size
    scale_x, scale_y = Fraction(width, w), Fraction(height, h)
    gx, gy = _grid(scale_x), _grid(scale_y)
    x0 = max(0, (int(xs.min()) - margin) // gx * gx)
    y0 = max(0, (int(ys.min()) - margin) // gy * gy)
    x1 = min(w, -(-(int(xs.max()) + 1 + margin) // gx) * gx)
    y1 = min(h, -(-(int(ys.max()) + 1 + margin) // gy) * gy)
    return Crop(
        x0,
        y0,
        x1,
        y1,
        int(round(x0 * scale_x)),
        int(round(y0 * scale_y)),
        int(round(x1 * scale_x)),
        int(round(y1 * scale_y)),
    )
