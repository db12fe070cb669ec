"""SynthesisInpainter: unit checks on generated images (real footage: test_eraser_static_holes.py)."""

from __future__ import annotations

import cv2
import numpy as np

from peanut_server.eraser.synthesis import SynthesisInpainter


def _stripes(height: int = 120, width: int = 200) -> np.ndarray:
    rows = np.arange(height)[:, None]
    band = ((rows // 10) % 2).astype(np.float32)  # horizontal stripes, 10 px
    noise = np.random.default_rng(0).normal(0, 4, (height, width)).astype(np.float32)
    gray = 70 + 120 * band + noise
    return np.clip(np.dstack([gray, gray * 0.9, gray * 0.6]), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    diff = a.astype(np.float64)[mask] - b.astype(np.float64)[mask]
    return float(10 * np.log10(255.0**2 / max(np.mean(diff**2), 1e-9)))


def test_stripes_are_continued_better_than_telea() -> None:
    image = _stripes()
    hole = np.zeros(image.shape[:2], bool)
    hole[40:80, 70:134] = True  # a 64x40 logo over four stripes
    damaged = image.copy()
    damaged[hole] = 0
    ours = SynthesisInpainter().fill(damaged, hole)
    telea = cv2.inpaint(damaged, hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    assert np.array_equal(ours[~hole], damaged[~hole])
    assert _psnr(ours, image, hole) >= _psnr(telea, image, hole) + 3.0


def test_tiny_holes_are_left_to_telea() -> None:
    image = _stripes()
    hole = np.zeros(image.shape[:2], bool)
    hole[50:55, 90:95] = True  # 25 px: no structure to continue
    damaged = image.copy()
    damaged[hole] = 0
    telea = cv2.inpaint(damaged, hole.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    assert np.array_equal(SynthesisInpainter().fill(damaged, hole), telea)


def test_a_hole_with_nothing_known_around_it_is_left_alone() -> None:
    image = _stripes(40, 40)
    hole = np.ones(image.shape[:2], bool)
    assert np.array_equal(SynthesisInpainter().fill(image, hole), image)
