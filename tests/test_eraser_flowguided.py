"""Flow-guided eraser: propagation, consistency, hallucination and the Eraser contract."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from peanut_server.eraser.base import EraserOptions
from peanut_server.eraser.flowguided import FlowGuidedEraser, fill_window
from peanut_server.eraser.flowguided.propagation import Consistency
from peanut_server.eraser.lama import Inpainter
from peanut_server.errors import JobCancelled
from peanut_server.models.cache import install_model_cache
from peanut_server.progress import Reporter

SHIFT = 3  # pixels per frame the camera pans (content moves right)


def _texture(height: int, width: int, seed: int = 0, grain: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height // grain, width // grain, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _pan(count: int = 12, height: int = 64, width: int = 96, shift: int = SHIFT, grain: int = 4):
    base = _texture(height, width + shift * count, grain=grain)
    start = shift * count
    frames = np.stack([base[:, start - shift * t : start - shift * t + width] for t in range(count)])
    forward = np.zeros((count - 1, height, width, 2), np.float32)
    forward[..., 0] = shift
    backward = -forward
    return frames, forward, backward


def _square_masks(count: int, height: int, width: int, box=(20, 44, 36, 60)) -> np.ndarray:
    masks = np.zeros((count, height, width), bool)
    masks[:, box[0] : box[1], box[2] : box[3]] = True
    return masks


def test_pure_pan_is_filled_exactly_from_neighbours() -> None:
    frames, forward, backward = _pan()
    masks = _square_masks(*frames.shape[:3])
    damaged = frames.copy()
    damaged[masks] = 0
    out, stats = fill_window(damaged, masks, forward, backward)
    assert stats.propagated == masks.sum() and stats.invented == 0
    assert np.abs(out.astype(int) - frames).max() <= 1


def test_subpixel_pan_through_long_chains() -> None:
    # 0.5 px a frame: an 8-px wide hole needs chains of up to 16 hops to reach known pixels.
    count, height, width = 40, 48, 64
    base = _texture(height, 4 * width)
    big = cv2.resize(base, (base.shape[1] * 2, height * 2), interpolation=cv2.INTER_LINEAR)
    frames = np.stack(
        [
            cv2.resize(big[:, 200 - t : 200 - t + 2 * width], (width, height), interpolation=cv2.INTER_AREA)
            for t in range(count)
        ]
    )
    forward = np.zeros((count - 1, height, width, 2), np.float32)
    forward[..., 0] = 0.5
    masks = _square_masks(count, height, width, (12, 36, 28, 36))
    # Propagation alone: the temporal filter's bilinear resampling softens this fine
    # texture by itself (mean error 2.86 without it, 2.92 with one pass, 3.19 with two).
    damaged = np.where(masks[..., None], 0, frames).astype(np.uint8)
    out, stats = fill_window(damaged, masks, forward, -forward, temporal_smoothing=0)
    # Every pixel comes from real content (directly, or carried from filled neighbours).
    assert stats.invented == 0 and stats.fallback == 0
    assert stats.propagated > 0.8 * masks.sum()
    err = np.abs(out.astype(float) - frames)[masks]
    assert err.mean() < 3.0


def _occluder_scene():
    frames, forward, backward = _pan(count=10, shift=2)
    frames[..., 0] //= 2  # no red in the background, so any red in the fill is the bar's
    count, height, width = frames.shape[:3]
    # A static red bar left of the hole, not masked: the background slides
    # behind it, so the flow of its pixels is zero while the background moves.
    bar = (slice(16, 48), slice(26, 36))
    frames[:, bar[0], bar[1]] = (255, 0, 0)
    forward[:, bar[0], bar[1]] = 0
    backward[:, bar[0], bar[1]] = 0
    masks = _square_masks(count, height, width, (20, 44, 36, 60))
    return frames, forward, backward, masks


def _red_pixels(out: np.ndarray, masks: np.ndarray) -> int:
    """Pure red pixels inside the holes (the texture itself has none: its red channel is damped)."""
    inside = out[masks].astype(int)
    return int(np.sum((inside[:, 0] > 200) & (inside[:, 1] < 60) & (inside[:, 2] < 60)))


def test_occluding_object_is_not_propagated() -> None:
    frames, forward, backward, masks = _occluder_scene()
    damaged = frames.copy()
    damaged[masks] = 0
    # Background hidden behind the bar in the frames between is invented (in
    # green, every frame a keyframe), never copied from the bar.
    out, _ = fill_window(damaged, masks, forward, backward, blend=False, step=1, inpainter=_CountingInpainter())
    assert _red_pixels(out, masks) == 0


def test_without_consistency_check_the_occluder_leaks() -> None:
    # The same scene with the check disabled shows the test above can fail.
    frames, forward, backward, masks = _occluder_scene()
    damaged = frames.copy()
    damaged[masks] = 0
    out, _ = fill_window(
        damaged,
        masks,
        forward,
        backward,
        blend=False,
        step=1,
        inpainter=_CountingInpainter(),
        consistency=Consistency(absolute=1e9),
    )
    assert _red_pixels(out, masks) > 50


class _CountingInpainter(Inpainter):
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        self.calls.append(int(hole.sum()))
        out = image.copy()
        out[hole] = (0, 200, 0)
        return out


def test_never_seen_pixels_invented_on_keyframes_and_carried() -> None:
    # A static camera: nothing behind the hole is ever visible.
    count, height, width = 12, 40, 60
    frames = np.repeat(_texture(height, width)[None], count, axis=0)
    flow = np.zeros((count - 1, height, width, 2), np.float32)
    masks = _square_masks(count, height, width, (10, 30, 20, 40))
    inpainter = _CountingInpainter()
    out, stats = fill_window(frames, masks, flow, flow, step=5, inpainter=inpainter)
    # Invented once on the first keyframe; then carried, not re-invented.
    assert inpainter.calls == [masks[0].sum()]
    assert stats.invented == masks[0].sum() and stats.fallback == 0
    assert np.all(out[masks] == (0, 200, 0))


def test_eraser_contract_with_dis_on_a_pan() -> None:
    frames, _, _ = _pan(count=10, grain=8)
    masks = _square_masks(*frames.shape[:3])
    damaged = frames.copy()
    damaged[masks] = 255  # a bright static object
    result = FlowGuidedEraser().erase(damaged, masks, EraserOptions(), Reporter())
    assert result.frames.shape == frames.shape and result.frames.dtype == np.uint8
    assert np.array_equal(result.frames[~masks], frames[~masks])
    assert result.flows is not None and result.flows.forward.shape == (9, 64, 96, 2)
    # The completed flow inside the hole is the pan, not the static object.
    inner = result.flows.forward[:, 24:40, 40:56]
    assert np.median(inner[..., 0]) == pytest.approx(SHIFT, abs=0.3)
    # Every hole pixel is seen within 4 frames; estimated flow (~0.2 px off)
    # leaves a small error, far below what the bright object would give (~150).
    err = np.abs(result.frames.astype(float) - frames)[masks]
    assert err.mean() < 6.0


def test_window_with_empty_masks_returns_frames() -> None:
    frames, _, _ = _pan(count=4)
    masks = np.zeros(frames.shape[:3], bool)
    result = FlowGuidedEraser().erase(frames, masks, EraserOptions(), Reporter())
    assert np.array_equal(result.frames, frames)


def test_cancel_stops_the_eraser() -> None:
    frames, _, _ = _pan(count=6)
    masks = _square_masks(*frames.shape[:3])
    event = threading.Event()
    event.set()
    with pytest.raises(JobCancelled):
        FlowGuidedEraser().erase(frames, masks, EraserOptions(), Reporter(cancel_event=event))


def _lama_state_dict() -> dict:
    import torch
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(0)
    return LaMa(in_nc=4, out_nc=3).state_dict()


def test_lama_loads_official_keys_and_fills_only_the_hole(tmp_path, monkeypatch, state_dir) -> None:
    import torch

    from peanut_server.eraser import lama
    from peanut_server.eraser.models import LAMA

    state = _lama_state_dict()
    # The original LaMa checkpoints name the generator "generator.model.*".
    official = {k.replace("model.model", "generator.model", 1): v for k, v in state.items()}
    assert any(k.startswith("generator.model.1.ffc.convl2l") for k in official)
    models = tmp_path / "models"
    (models / LAMA.id).mkdir(parents=True)
    torch.save(official, models / LAMA.id / LAMA.files[0].filename)
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models))
    install_model_cache(None)  # a fresh model cache: no LaMa from another test
    assert lama.lama_available() == (True, "")
    inpainter = lama.get_inpainter("auto")
    assert isinstance(inpainter, lama.LamaInpainter)
    image = _texture(40, 56)  # not a multiple of 8: padded by spandrel
    hole = np.zeros((40, 56), bool)
    hole[10:20, 20:30] = True
    out = inpainter.fill(image, hole)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], image[~hole])
    # One model cache: LaMa is loaded once, reused by the next job, and its bytes are counted there.
    from peanut_server.models.cache import estimate_bytes, model_cache

    assert lama.get_inpainter("auto", "cpu") is inpainter
    assert inpainter.placement.device == "cpu" and inpainter.placement.dtype == "float32"
    ((key, pools),) = model_cache().held()
    assert key[1] == LAMA.id and pools == {"cpu": estimate_bytes(inpainter.descriptor.model)} and pools["cpu"] > 0
    # Its memory estimate for a job grows with the keyframe's area.
    assert lama.lama_need((864, 480)).activation_bytes == 4 * lama.lama_need((432, 240)).activation_bytes


def test_lama_missing_falls_back_to_synthesis(tmp_path, monkeypatch, state_dir) -> None:
    from peanut_server.eraser import lama
    from peanut_server.eraser.synthesis import SynthesisInpainter
    from peanut_server.errors import ModelError

    monkeypatch.setenv("PEANUT_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    install_model_cache(None)  # a fresh model cache: no LaMa from another test
    assert isinstance(lama.get_inpainter("auto"), SynthesisInpainter)
    assert isinstance(lama.get_inpainter("opencv"), lama.OpenCVInpainter)
    with pytest.raises(ModelError):
        lama.get_inpainter("lama")
    with pytest.raises(ValueError, match="unknown inpainter"):
        lama.get_inpainter("lamma")
    with pytest.raises(ModelError):
        lama.LamaInpainter.from_state_dict({"not": np.zeros(1)})


def test_bilinear_sampling_shares_one_footprint():
    # Issue 15, point 15: sample, sample_known and visible_at used three copies of the footprint.
    from peanut_server.eraser.flowguided.propagation import sample, sample_known, visible_at

    rng = np.random.default_rng(3)
    frames = rng.random((2, 7, 9, 3)).astype(np.float32)
    px = rng.uniform(-1.5, 9.5, 200).astype(np.float32)
    py = rng.uniform(-1.5, 7.5, 200).astype(np.float32)
    # The reference: OpenCV's bilinear remap with the border replicated.
    expected = cv2.remap(frames[1], px[None], py[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
    assert np.allclose(sample(frames[1], px, py), expected, atol=1e-2)
    known = np.ones((2, 7, 9), bool)
    src = np.ones(200, np.int64)
    colours, ok = sample_known(frames, known, src, px, py)
    assert ok.all() and np.allclose(colours, sample(frames[1], px, py), atol=1e-5)
    known[1, :, :5] = False  # the left part of frame 1 is a hole
    colours, ok = sample_known(frames, known, src, px, py)
    inside = px < 3.0  # every corner in the hole
    assert not ok[inside].any() and not visible_at(known, src, px, py)[inside].any()
    assert (visible_at(known, src, px, py) == ok).all()
