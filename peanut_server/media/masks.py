"""Masks in: one image (static), a folder of images, or a mask video.

A mask pixel is "object" when any colour channel is above 127 (grey or colour
mattes), or, for images with transparency, when its alpha is above 127. Masks
may be smaller or larger than the source as long as the aspect ratio matches;
they are resized with nearest-neighbour so edges stay hard.

Counting: a folder or video with as many masks as the requested range is
indexed by range position; one with as many masks as the whole clip is indexed
by source frame (mask start+i for output frame i).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..errors import MaskError, MediaError, MediaNotFound
from .source import IMAGE_EXTENSIONS, list_images, open_source, probe, to_uint8, validate_range
from .types import MediaInfo

log = logging.getLogger(__name__)

MaskKind = Literal["image", "folder", "video"]


@dataclass(frozen=True)
class MaskCheck:
    kind: MaskKind
    count: int  # masks available (1 for a static image)
    size: tuple[int, int]  # (width, height) of the masks as stored
    offset: int = 0  # mask index of output frame 0 (start when indexed by source frame)


def mask_from_image(image: np.ndarray) -> np.ndarray:
    """Binary (H, W) bool mask from an image as OpenCV reads it (grey, BGR or BGRA, any depth)."""
    image = to_uint8(image)
    if image.ndim == 2:
        return image > 127
    if image.shape[2] == 4:
        alpha = image[..., 3]
        # Transparency carries the matte; a fully opaque alpha says nothing, use colour.
        if alpha.min() < 255:
            return alpha > 127
        image = image[..., :3]
    return (image > 127).any(axis=2)


def read_mask(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise MediaNotFound(f"{path}: mask file not found")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path}: mask file is empty (0 bytes)")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise MediaError(f"{path}: mask is not a readable image")
    return mask_from_image(image)


def _is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _check_aspect(path: str, size: tuple[int, int], info: MediaInfo) -> None:
    mw, mh = size
    # Same aspect ratio up to one pixel of rounding in the scaled mask.
    scaled_h = mw * info.height / info.width
    if abs(scaled_h - mh) > max(1.0, 0.01 * mh):
        raise MaskError(
            f"{path}: mask is {mw}x{mh} but the source is {info.width}x{info.height}; "
            "the aspect ratios differ (a mask may differ only in scale)"
        )


def check_masks(path: str, info: MediaInfo, start: int, end: int | None) -> MaskCheck:
    """Check that masks fit the source range, without keeping them in memory.

    Raises MediaNotFound / MediaError for missing or unreadable files and MaskError
    for a count, aspect ratio or content (all empty) that cannot be used.
    """
    path = str(path)
    start, end = validate_range(info, start, end)
    n = end - start
    if not os.path.exists(path):
        raise MediaNotFound(f"{path}: mask not found")
    if os.path.isdir(path):
        names = list_images(path)
        if not names:
            raise MediaError(f"{path}: mask folder has no images")
        kind: MaskKind = "folder"
        count = len(names)
        first = read_mask(os.path.join(path, names[0]))
        size = (first.shape[1], first.shape[0])
    elif _is_image_file(path):
        kind, count = "image", 1
        first = read_mask(path)
        size = (first.shape[1], first.shape[0])
    else:
        mask_info = probe(path)
        kind, count, size = "video", mask_info.frame_count, (mask_info.width, mask_info.height)
    if kind == "image":
        offset = 0
    elif count == n:
        offset = 0
    elif count == info.frame_count:
        offset = start
    else:
        raise MaskError(
            f"{path}: {count} masks, but the range {start}..{end} has {n} frames and "
            f"the clip {info.frame_count}; give one mask per range frame or per clip frame"
        )
    _check_aspect(path, size, info)
    check = MaskCheck(kind=kind, count=count, size=size, offset=offset)
    # Stop at the first non-empty mask: usually the first one.
    for mask in _raw_masks(path, check, n):
        if mask.any():
            break
    else:
        raise MaskError(f"{path}: mask is empty: nothing to remove")
    return check


def _raw_masks(path: str, check: MaskCheck, n: int) -> Iterator[np.ndarray]:
    """The n masks of the range at stored resolution, streaming."""
    if check.kind == "image":
        mask = read_mask(path)
        for _ in range(n):
            yield mask
    elif check.kind == "folder":
        names = list_images(path)
        for name in names[check.offset : check.offset + n]:
            mask = read_mask(os.path.join(path, name))
            if (mask.shape[1], mask.shape[0]) != check.size:
                raise MaskError(
                    f"{os.path.join(path, name)}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                    f"other masks are {check.size[0]}x{check.size[1]}"
                )
            yield mask
    else:
        with open_source(path) as video:
            for frame in video.frames(check.offset, check.offset + n):
                yield (frame > 127).any(axis=2)


class MaskSource:
    """Binary masks at source resolution, one per frame of the range, streamed."""

    def __init__(self, path: str, info: MediaInfo, start: int, end: int | None) -> None:
        self.path = str(path)
        self.info = info
        self.start, self.end = validate_range(info, start, end)
        self.check = check_masks(self.path, info, self.start, self.end)

    def __len__(self) -> int:
        return self.end - self.start

    def frames(self) -> Iterator[np.ndarray]:
        """bool (H, W) at source resolution for frames start..end-1."""
        target = (self.info.width, self.info.height)
        resized_static: np.ndarray | None = None
        for mask in _raw_masks(self.path, self.check, len(self)):
            if self.check.kind == "image":
                if resized_static is None:
                    resized_static = _resize(mask, target)
                    resized_static.flags.writeable = False  # one array shared by every frame
                yield resized_static
            else:
                yield _resize(mask, target)


def _resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    out = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return out.astype(bool)


def open_masks(path: str, info: MediaInfo, start: int, end: int | None) -> MaskSource:
    """Check the masks (see check_masks) and open them for streaming."""
    return MaskSource(path, info, start, end)
