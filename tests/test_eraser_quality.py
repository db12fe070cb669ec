"""Acceptance on real footage (../shared/data): the flow-guided eraser against the per-frame baseline.

Video completion (ground truth known): running_car with its two static masks,
and the davis clips with generated moving masks (5-12 % of the frame,
seeded). The flow-guided eraser must beat per-frame Telea inpainting by at
least 4 dB PSNR on average and never fall more than 1 dB below it on any one
case (a collapse on one case fails even when the mean holds), and its flow
warping error must stay within 1.3x of the ground truth video's own on every
case (issue 12's bars; benchmarks/eraser_moving_holes.py prints the figures).

Object removal on davis bmx-trees and tennis with their object masks: strips
(before | after) are written to out/ for people to look at; the test checks
that the filled region's colours are those of the background around it, not
those of the removed object.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.eraser.base import EraserOptions
from peanut_server.eraser.flowguided import FlowGuidedEraser
from peanut_server.metrics.completion import psnr, video_flows, warping_error
from peanut_server.progress import Reporter

try:
    from peanut_server.eraser.telea import TeleaEraser
except ImportError:  # the lead's baseline; the same per-frame cv2.inpaint otherwise
    TeleaEraser = None

pytestmark = pytest.mark.slow

SIZE = (432, 240)
FRAMES = 40
DAVIS_FRAMES = 30
DAVIS_SEEDS = (0, 1, 2, 3, 4, 5)
OUT = Path(__file__).resolve().parents[1] / "out"
MASK_DILATION = 4  # as the pipeline's default mask_dilation


def read_running_car(path: Path, count: int = FRAMES, start: int = 0) -> np.ndarray:
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i < start:
                continue
            frames.append(cv2.resize(frame.to_ndarray(format="rgb24"), SIZE, interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return np.stack(frames)


def read_davis(folder: Path, count: int = FRAMES) -> np.ndarray:
    files = sorted(folder.iterdir())[:count]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def read_masks(folder: Path, count: int = FRAMES) -> np.ndarray:
    files = sorted(folder.iterdir())[:count]
    return np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) > 127 for f in files])


def static_mask(path: Path, count: int) -> np.ndarray:
    mask = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), SIZE, interpolation=cv2.INTER_AREA) > 127
    return np.repeat(mask[None], count, axis=0)


def moving_masks(count: int, seed: int, shape: tuple[int, int] = (SIZE[1], SIZE[0])) -> np.ndarray:
    """A seeded ellipse covering 5-12 % of the frame, gliding along a straight line."""
    rng = np.random.default_rng(seed)
    height, width = shape
    area = rng.uniform(0.05, 0.12) * height * width
    aspect = rng.uniform(0.6, 1.6)
    ax = np.sqrt(area / np.pi * aspect)
    ay = area / np.pi / ax
    start = np.array([rng.uniform(ax, width - ax), rng.uniform(ay, height - ay)])
    end = np.array([rng.uniform(ax, width - ax), rng.uniform(ay, height - ay)])
    masks = np.zeros((count, height, width), np.uint8)
    for t in range(count):
        cx, cy = start + (end - start) * t / max(count - 1, 1)
        cv2.ellipse(masks[t], (int(round(cx)), int(round(cy))), (int(round(ax)), int(round(ay))), 0, 0, 360, 1, -1)
    return masks > 0


def baseline(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    if TeleaEraser is not None:
        return TeleaEraser().erase(frames, masks, EraserOptions(), Reporter()).frames
    out = frames.copy()
    for t in range(len(frames)):
        out[t] = cv2.inpaint(frames[t], masks[t].astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    return out


def _damaged(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    # The eraser must never use what is under the hole: wipe it.
    out = frames.copy()
    out[masks] = 0
    return out


def _cases(shared_data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    car = read_running_car(shared_data / "completion" / "running_car.mp4")
    bmx = read_davis(shared_data / "davis" / "bmx-trees", DAVIS_FRAMES)
    tennis = read_davis(shared_data / "davis" / "tennis", DAVIS_FRAMES)
    cases = {
        "running_car/square": (car, static_mask(shared_data / "completion" / "mask_square.png", len(car))),
        "running_car/logo": (car, static_mask(shared_data / "completion" / "mask_logo.png", len(car))),
    }
    # Several masks per clip: when a mask happens to sit on the moving rider or
    # player, the ground truth under it is that person, which no background
    # fill can match (gains of 0-2 dB there, 4-8 dB elsewhere); the average
    # over every seed ever tried (0-5, none left out) is the fair sample.
    for seed in DAVIS_SEEDS:
        cases[f"bmx-trees/moving{seed}"] = (bmx, moving_masks(len(bmx), seed=seed))
        cases[f"tennis/moving{seed}"] = (tennis, moving_masks(len(tennis), seed=seed))
    return cases


def test_completion_beats_per_frame_baseline(shared_data: Path) -> None:
    # Scored as the held-out cases below are (PSNR gain over Telea, Ewarp over the truth's own);
    # `benchmarks/eraser_moving_holes.py tuning --table` prints every metric (SSIM, TC...).
    scores = {}
    for name, (gt, masks) in _cases(shared_data).items():
        coverage = masks.mean()
        assert 0.05 <= coverage <= 0.12 or name.startswith("running_car"), (name, coverage)
        damaged = _damaged(gt, masks)
        ours = FlowGuidedEraser().erase(damaged, masks, EraserOptions(), Reporter()).frames
        assert np.array_equal(ours[~masks], gt[~masks]), "pixels outside the hole changed"
        scores[name] = gain_and_ewarp(ours, baseline(damaged, masks), gt)
        print(f"\n{name}: gain {scores[name][0]:+.2f} dB, Ewarp {scores[name][1]:.2f}x the truth's", end="")
    for name, (gain, ewarp_ratio) in scores.items():
        assert gain >= -1.0, (name, gain)
        assert ewarp_ratio <= 1.3, (name, ewarp_ratio)
    assert np.mean([gain for gain, _ in scores.values()]) >= 4.0, scores


# Held out: moving holes nobody tuned on (issue 12): seeds 6-8 on the two DAVIS clips and
# on the locked-off streets of tests/data/static_camera. The floors (every case >= +1.5 dB
# over Telea and Ewarp <= 1.3x the truth's own, mean >= +6 dB) were set by the eraser
# engineer of 2026-11-30 on their first run with a far-frames method that is not merged
# (branch eraser2: mean +7.79 dB there). Main's eraser on its first run here: mean +7.84 dB,
# gains +2.56 to +12.81 dB; bmx-trees/moving6 over the Ewarp bar (1.44x). With the looser
# forward-backward check chosen on the tuning cases above (2026-12-01): mean +8.51 dB,
# gains +2.71 to +12.95 dB, worst Ewarp 1.15x. With the main flow down to half resolution
# (eraser.ERASER_DIS, 2026-12-02): mean +10.64 dB, gains +2.62 to +21.41 dB, worst Ewarp 1.14x.
HELD_OUT_SEEDS = (6, 7, 8)
HELD_OUT_CLIPS = ("bmx-trees", "tennis", "town_centre", "hk_crossing")
HELD_OUT_MIN_GAIN = 1.5  # dB over per-frame Telea, every case
HELD_OUT_MEAN_GAIN = 6.0  # dB, mean over the 12 cases
HELD_OUT_EWARP = 1.3  # times the ground truth's own, every case
# {case: what was measured}; xfail(strict=True): when the eraser gets under the bar the mark must go.
HELD_OUT_FAILING: dict[str, str] = {}
HELD_OUT_NAMES = [f"{clip}/moving{seed}" for clip in HELD_OUT_CLIPS for seed in HELD_OUT_SEEDS]


def held_out_cases(shared_data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{case: (truth frames, moving masks)} for HELD_OUT_NAMES (also benchmarks/eraser_moving_holes.py)."""
    from tests.test_eraser_static_holes import read_clip

    clips = {
        "bmx-trees": read_davis(shared_data / "davis" / "bmx-trees", DAVIS_FRAMES),
        "tennis": read_davis(shared_data / "davis" / "tennis", DAVIS_FRAMES),
        "town_centre": read_clip("town_centre"),
        "hk_crossing": read_clip("hk_crossing"),
    }
    cases = {}
    for name in HELD_OUT_NAMES:
        clip, seed = name.split("/moving")
        cases[name] = (clips[clip], moving_masks(len(clips[clip]), seed=int(seed)))
    return cases


# The truth's flow, by the truth's bytes: the cases of one clip share their frames (0.3 s a clip).
_TRUTH_FLOWS: dict[bytes, tuple] = {}


def gain_and_ewarp(ours: np.ndarray, theirs: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(whole-frame PSNR of ours minus theirs in dB, averaged over frames; our Ewarp / the truth's)."""
    key = hashlib.blake2b(truth.tobytes(), digest_size=16).digest() + bytes(str(truth.shape), "ascii")
    if key not in _TRUTH_FLOWS:
        _TRUTH_FLOWS[key] = video_flows(truth)
    flows = _TRUTH_FLOWS[key]
    ours_psnr = np.mean([min(psnr(a, b), 100.0) for a, b in zip(ours, truth)])
    theirs_psnr = np.mean([min(psnr(a, b), 100.0) for a, b in zip(theirs, truth)])
    return float(ours_psnr - theirs_psnr), warping_error(ours, *flows) / warping_error(truth, *flows)


@pytest.fixture(scope="module")
def held_out_scores(shared_data: Path) -> dict[str, tuple[float, float]]:
    """{case: (PSNR gain over Telea in dB, Ewarp / the truth's)}, each case erased once."""
    scores = {}
    for name, (gt, masks) in held_out_cases(shared_data).items():
        damaged = _damaged(gt, masks)
        ours = FlowGuidedEraser().erase(damaged, masks, EraserOptions(), Reporter()).frames
        theirs = baseline(damaged, masks)
        assert np.array_equal(ours[~masks], gt[~masks]), f"{name}: pixels outside the hole changed"
        scores[name] = gain_and_ewarp(ours, theirs, gt)
        print(f"\n{name}: gain {scores[name][0]:+.2f} dB, Ewarp {scores[name][1]:.2f}x the truth's", end="")
    return scores


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=HELD_OUT_FAILING[n]))
        if n in HELD_OUT_FAILING
        else n
        for n in HELD_OUT_NAMES
    ],
)
def test_held_out_moving_hole(held_out_scores: dict[str, tuple[float, float]], name: str) -> None:
    gain, ewarp_ratio = held_out_scores[name]
    assert gain >= HELD_OUT_MIN_GAIN, (name, gain)
    assert ewarp_ratio <= HELD_OUT_EWARP, (name, ewarp_ratio)


def test_held_out_moving_holes_mean_gain(held_out_scores: dict[str, tuple[float, float]]) -> None:
    gains = [gain for gain, _ in held_out_scores.values()]
    print(f"\nheld-out mean gain {np.mean(gains):+.2f} dB")
    assert np.mean(gains) >= HELD_OUT_MEAN_GAIN, held_out_scores


def _strip(before: np.ndarray, after: np.ndarray, indices: list[int]) -> np.ndarray:
    rows = [np.concatenate([before[i], after[i]], axis=1) for i in indices]
    return cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("clip", ["bmx-trees", "tennis"])
def test_object_removal_leaves_background(shared_data: Path, clip: str) -> None:
    frames = read_davis(shared_data / "davis" / clip)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_DILATION + 1,) * 2)
    masks = np.stack(
        [cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in read_masks(shared_data / "davis" / f"{clip}_mask")]
    )
    out = FlowGuidedEraser().erase(frames, masks, EraserOptions(), Reporter()).frames
    OUT.mkdir(exist_ok=True)
    cv2.imwrite(
        str(OUT / f"eraser_{clip}_before_after.png"), _strip(frames, out, [0, len(frames) // 2, len(frames) - 1])
    )
    # No trace: inside the object's core (the mask eroded), few pixels keep the
    # object's colour. No seam: the gradient along the mask's edge is no
    # stronger than the gradient of the background just outside it.
    core_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_DILATION + 5,) * 2)
    band_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    kept, seam, band = [], [], []
    for t in range(len(frames)):
        core = cv2.erode(masks[t].astype(np.uint8), core_kernel) > 0
        if core.any():
            diff = np.abs(out[t].astype(int) - frames[t].astype(int)).max(axis=2)
            kept.append(np.mean(diff[core] <= 6))
        gray = cv2.cvtColor(out[t], cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        m = masks[t].astype(np.uint8)
        edge = (cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0) & ~(cv2.erode(m, np.ones((3, 3), np.uint8)) > 0)
        outside = (cv2.dilate(m, band_kernel) > 0) & ~(cv2.dilate(m, np.ones((5, 5), np.uint8)) > 0)
        seam.append(grad[edge].mean())
        band.append(grad[outside].mean())
    print(
        f"\n{clip}: object colour kept in {np.mean(kept):.1%} of the core; edge gradient "
        f"{np.mean(seam):.1f} vs background {np.mean(band):.1f}"
    )
    assert np.mean(kept) < 0.2
    assert np.mean(seam) < 1.25 * np.mean(band)
