"""DIS flow backend and the backend choice by name."""

from __future__ import annotations

import numpy as np
import pytest

from peanut_server.eraser.flowguided.eraser import ERASER_DIS, FlowGuidedEraser
from peanut_server.errors import InvalidRequest
from peanut_server.flow import get_estimator
from peanut_server.flow.dis import DISFlow, DISOptions
from peanut_server.masker.motion.segment import FlowEstimator, TrackingFlowEstimator


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


def test_dis_takes_its_settings_by_name_and_the_eraser_asks_for_its_own() -> None:
    settings = DISOptions(preset="medium", finest_scale=1)
    assert get_estimator("dis", dis_options=settings).options == settings
    assert get_estimator("auto").options == DISOptions()  # OpenCV's preset when none are given
    eraser = FlowGuidedEraser()
    assert eraser._estimator("auto").options == eraser._estimator("dis").options == ERASER_DIS


@pytest.mark.parametrize(
    "make",
    [lambda: DISFlow().pair, lambda: DISFlow(DISOptions("ultrafast")).pair, FlowEstimator, TrackingFlowEstimator],
)
def test_a_small_image_leaves_later_flow_as_a_fresh_estimator_gives_it(make) -> None:
    """OpenCV's DIS adapts its patch size and scales to a small image and kept them for every
    later call: after one 16x24 image, full frames got other flow (the daemon's warm-up did
    this to every job's eraser). The eraser's DIS, its guide round's, and the masker's two (the
    tracker's has its own settings, which a remade object must get again)."""
    import cv2

    base = _texture(140, 220, seed=3)
    first, second = base[10:130, 10:210], base[12:132, 6:206]  # content moves 4 px left, 2 px up
    if make in (FlowEstimator, TrackingFlowEstimator):
        first, second = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), cv2.cvtColor(second, cv2.COLOR_RGB2GRAY)
    fresh = make()(first, second)
    used = make()
    tiny = np.ascontiguousarray(first[:16, :24])
    used(tiny, tiny)
    assert np.array_equal(used(first, second), fresh)


def test_the_trackers_flow_runs_with_its_own_settings() -> None:
    """The tracker's DIS goes down to full resolution with its own stride and refinement: on the
    same pair its flow is not the preset's."""
    import cv2

    base = _texture(260, 452, seed=5)
    first, second = (
        cv2.cvtColor(base[10:250, 10:442], cv2.COLOR_RGB2GRAY),
        cv2.cvtColor(base[11:251, 7:439], cv2.COLOR_RGB2GRAY),
    )
    assert TrackingFlowEstimator().settings == (0, 4, 2)
    assert not np.array_equal(TrackingFlowEstimator()(first, second), FlowEstimator()(first, second))


def test_the_eraser_after_a_tiny_clip_erases_as_a_fresh_one(shared_data) -> None:
    """The daemon's warm-up erases a 3-frame 32x48 clip with the eraser every job then uses."""
    import cv2

    from peanut_server.eraser.base import EraserOptions
    from peanut_server.eraser.flowguided import FlowGuidedEraser
    from peanut_server.progress import Reporter

    folder = shared_data / "davis" / "bmx-trees"
    files = sorted(folder.iterdir())[:8]
    frames = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    masks = np.zeros(frames.shape[:3], bool)
    for t in range(len(frames)):
        cv2.ellipse(masks[t].view(np.uint8), (150 + 8 * t, 120), (40, 60), 0, 0, 360, 1, -1)
    fresh = FlowGuidedEraser().erase(frames, masks, EraserOptions(), Reporter()).frames
    warmed = FlowGuidedEraser()
    rng = np.random.default_rng(0)
    tiny_masks = np.zeros((3, 32, 48), bool)
    tiny_masks[:, 10:20, 15:30] = True
    warmed.erase(rng.integers(0, 255, (3, 32, 48, 3), dtype=np.uint8), tiny_masks, EraserOptions(), Reporter())
    assert np.array_equal(warmed.erase(frames, masks, EraserOptions(), Reporter()).frames, fresh)
