"""DIS flow backend and the backend choice by name."""

from __future__ import annotations

import numpy as np
import pytest

from peanut_server.errors import InvalidRequest
from peanut_server.flow import get_estimator
from peanut_server.flow.dis import DISFlow


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height // 4, width // 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def test_dis_recovers_a_translation_both_ways() -> None:
    base = _texture(140, 220)
    frames = np.stack([base[10:130, 10 - 3 * t : 210 - 3 * t] for t in range(3)])  # content moves right 3 px
    forward, backward = DISFlow().window(frames)
    assert forward.shape == (2, 120, 200, 2) and forward.dtype == np.float32
    inner = (slice(1, 2), slice(20, 100), slice(20, 180))
    assert np.median(forward[inner][..., 0]) == pytest.approx(3.0, abs=0.2)
    assert np.median(backward[inner][..., 0]) == pytest.approx(-3.0, abs=0.2)
    assert np.abs(np.median(forward[inner][..., 1])) < 0.2


def test_auto_is_dis_and_unknown_name_refused() -> None:
    assert get_estimator("auto").name == "dis"
    with pytest.raises(InvalidRequest):
        get_estimator("farneback")
