"""Generated clips with known masks: textured objects composited over real footage.

Used by the masker's tests and benchmarks. Objects move on straight paths
(seeded textures, so runs repeat exactly); the background can pan, so the
camera-motion estimate is exercised too. Ground truth is each object's
visible region after occlusion by the objects drawn above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from peanut_server.errors import RangeError
from peanut_server.media.types import MediaInfo, VideoSource


class ArraySource(VideoSource):
    """A VideoSource over frames held in memory (tests, benchmarks)."""

    def __init__(self, frames: np.ndarray | list[np.ndarray], path: str = "<memory>") -> None:
        self._frames = frames
        h, w = frames[0].shape[:2]
        self.info = MediaInfo(path=path, width=w, height=h, frame_count=len(frames), fps=Fraction(25), is_folder=True)

    def frames(self, start: int, end: int) -> Iterator[np.ndarray]:
        if not 0 <= start <= end <= len(self._frames):
            raise RangeError(f"frames [{start}, {end}) outside the clip of {len(self._frames)}")
        for i in range(start, end):
            yield np.asarray(self._frames[i])


@dataclass
class MovingObject:
    colour: tuple[int, int, int]  # RGB
    start: tuple[float, float]  # centre at frame 0 (x, y)
    end: tuple[float, float]  # centre at the last frame
    radius: float = 20.0  # disc radius, or half side of a square
    shape: str = "disc"  # "disc" | "square"
    texture: float = 18.0  # std of the seeded texture, grey levels
    seed: int = 0
    visible: tuple[int, int] | None = None  # [first, last) frames on screen; None = all
    hidden: tuple[int, int] | None = None  # [first, last) frames off screen (re-appears after)


def _texture(obj: MovingObject) -> np.ndarray:
    size = int(2 * obj.radius + 3)
    rng = np.random.default_rng(obj.seed)
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    noise *= obj.texture / max(float(noise.std()), 1e-6)
    return np.clip(np.array(obj.colour, np.float32) + noise, 0, 255)


def _footprint(obj: MovingObject) -> np.ndarray:
    size = int(2 * obj.radius + 3)
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    if obj.shape == "square":
        return (np.abs(xx - c) <= obj.radius) & (np.abs(yy - c) <= obj.radius)
    return (xx - c) ** 2 + (yy - c) ** 2 <= obj.radius**2


def composite_clip(
    background: np.ndarray | list[np.ndarray],
    objects: list[MovingObject],
    n_frames: int,
    size: tuple[int, int],
    pan: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(frames (T, H, W, 3) uint8, [visible masks (T, H, W) bool per object]).

    `background` is one image (panned by `pan` px per frame) or a real clip, a sequence of at
    least n_frames images (resized to `size`; its own camera and movers are the background
    motion the objects are put over). Objects are drawn in list order: later ones pass in
    front of earlier ones.
    """
    w, h = size
    clip = None if isinstance(background, np.ndarray) and background.ndim == 3 else list(background)
    if clip is not None and len(clip) < n_frames:
        raise ValueError(f"the background clip has {len(clip)} frames, {n_frames} asked for")
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    masks = [np.zeros((n_frames, h, w), bool) for _ in objects]
    textures = [_texture(o) for o in objects]
    prints = [_footprint(o) for o in objects]
    for t in range(n_frames):
        a = t / max(n_frames - 1, 1)
        # Sub-pixel pan through an affine warp of the background.
        if clip is not None:
            frame = cv2.resize(clip[t], (w, h), interpolation=cv2.INTER_AREA)
        else:
            m = np.float32([[1, 0, -pan[0] * t], [0, 1, -pan[1] * t]])
            frame = cv2.warpAffine(background, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = frame.astype(np.float32)
        drawn = np.zeros((len(objects), h, w), bool)
        for k, (obj, tex, fp) in enumerate(zip(objects, textures, prints)):
            if obj.visible is not None and not obj.visible[0] <= t < obj.visible[1]:
                continue
            if obj.hidden is not None and obj.hidden[0] <= t < obj.hidden[1]:
                continue
            cx = obj.start[0] + a * (obj.end[0] - obj.start[0])
            cy = obj.start[1] + a * (obj.end[1] - obj.start[1])
            size_px = fp.shape[0]
            x0, y0 = int(round(cx - (size_px - 1) / 2)), int(round(cy - (size_px - 1) / 2))
            fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + size_px), min(h, y0 + size_px)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            sub = fp[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
            frame[fy0:fy1, fx0:fx1][sub] = tex[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0][sub]
            drawn[k, fy0:fy1, fx0:fx1] = sub
            drawn[:k, fy0:fy1, fx0:fx1] &= ~sub  # occludes what is below
        for k in range(len(objects)):
            masks[k][t] = drawn[k]
        frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    return frames, masks
