"""Colour of a masked region: named colours, and the colour feature the CME memory keeps.

Without weights the feature is a colour histogram (hue x saturation, plus a
value histogram) with a square root applied, so that the cosine between two
features is the Bhattacharyya coefficient of the histograms: 1 for the same
colour distribution, near 0 for unrelated ones (memory.py). Learned backends
can put any L2-normalised vector into the same memory.
"""

from __future__ import annotations

import cv2
import numpy as np

from .prompt import COLOURS

H_BINS, S_BINS, V_BINS = 18, 4, 8


def colour_descriptor(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Square-rooted, L2-normalised HSV histogram of the masked pixels (zeros if none)."""
    m = mask.astype(np.uint8)
    if not m.any():
        return np.zeros(H_BINS * S_BINS + V_BINS, np.float32)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hs = cv2.calcHist([hsv], [0, 1], m, [H_BINS, S_BINS], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], m, [V_BINS], [0, 256]).ravel()
    feat = np.sqrt(np.concatenate([hs / max(hs.sum(), 1.0), 0.5 * v / max(v.sum(), 1.0)]))
    return (feat / max(float(np.linalg.norm(feat)), 1e-8)).astype(np.float32)


def colour_similarity(rgb: np.ndarray, mask: np.ndarray, anchor: np.ndarray) -> float:
    """How much the masked pixels look like an anchor's colour_descriptor: 1 for the same colours."""
    return float(colour_descriptor(rgb, mask) @ anchor)


def _colour_bands(hsv: np.ndarray) -> dict[str, np.ndarray]:
    """Bool arrays (same shape as hsv[..., 0]): which pixels fall in each named colour's HSV range."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chroma = (s >= 80) & (v >= 60)
    bands = {
        "red": (h < 8) | (h >= 170),
        "orange": (h >= 8) & (h < 20),
        "yellow": (h >= 20) & (h < 35),
        "green": (h >= 35) & (h < 85),
        "cyan": (h >= 85) & (h < 100),
        "blue": (h >= 100) & (h < 130),
        "purple": (h >= 130) & (h < 155),
        "pink": (h >= 155) & (h < 170),
    }
    out = {name: band & chroma for name, band in bands.items()}
    out["white"] = (s < 50) & (v >= 190)
    out["black"] = v < 60
    out["grey"] = (s < 50) & (v >= 60) & (v < 190)
    out["brown"] = (h >= 5) & (h < 25) & (s >= 80) & (v >= 30) & (v < 150)
    return out


def colour_pixels(rgb: np.ndarray, colour: str) -> np.ndarray:
    """(H, W) bool: the pixels of a named colour."""
    return _colour_bands(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int32))[colour]


def colour_fractions(rgb: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Fraction of the masked pixels that fall in each named colour's HSV range."""
    sel = mask.astype(bool)
    n = int(sel.sum())
    if n == 0:
        return {name: 0.0 for name in COLOURS}
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[sel].astype(np.int32)
    return {name: float(band.sum()) / n for name, band in _colour_bands(hsv).items()}
