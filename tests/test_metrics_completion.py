"""Completion metrics against values computed by hand."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest

from peanut_server.metrics import completion as m
from peanut_server.metrics.commands import add_eval_command, get_eval_subparsers, register_cli


def test_psnr_hand_value() -> None:
    a = np.zeros((4, 5, 3), np.uint8)
    b = np.full((4, 5, 3), 10, np.uint8)
    assert m.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert m.psnr(a, a) == math.inf


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    a = np.full((32, 32, 3), 100, np.uint8)
    b = np.full((32, 32, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert m.ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-6)
    assert m.ssim(a, a) == pytest.approx(1.0)


def test_sobel_sharpness_of_a_ramp() -> None:
    # grey = 2x: the Sobel x kernel sums 1+2+1 rows of a central difference 2*2 -> gx = 16, gy = 0.
    ramp = np.tile((2 * np.arange(100)).astype(np.uint8), (20, 1))
    frame = np.repeat(ramp[..., None], 3, axis=2)
    assert m.sobel_sharpness(frame) == pytest.approx(256.0)
    assert m.sobel_sharpness(np.full((10, 10, 3), 7, np.uint8)) == 0.0


def _sinusoid(period: float, size: int = 64) -> np.ndarray:
    x = np.arange(size)
    return np.tile(128 + 100 * np.cos(2 * np.pi * x / period), (size, 1))


def test_fft_blur_and_artefact_shares() -> None:
    coarse = _sinusoid(16)  # 0.0625 cycles/px: all energy below BLUR_RADIUS
    middle = _sinusoid(4)  # 0.25: between the two radii
    checker = np.indices((64, 64)).sum(axis=0) % 2 * 255.0  # (0.5, 0.5): radius 0.71
    assert m.fft_blur(coarse) == pytest.approx(1.0) and m.fft_artefact(coarse) == pytest.approx(0.0)
    assert m.fft_blur(middle) == pytest.approx(0.0, abs=1e-12) and m.fft_artefact(middle) == pytest.approx(
        0.0, abs=1e-12
    )
    assert m.fft_artefact(checker) == pytest.approx(1.0) and m.fft_blur(checker) == pytest.approx(0.0, abs=1e-12)


def test_temporal_consistency() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    assert m.temporal_consistency(np.stack([a, a, a])) == pytest.approx(1.0)
    assert m.temporal_consistency(np.stack([a, b])) == pytest.approx(m.ssim(a, b))


def test_warping_error_hand_values() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 200, (20, 30, 3), dtype=np.uint8)
    zero = np.zeros((2, 20, 30, 2), np.float32)
    brightening = np.stack([base, base + 10, base + 20])
    assert m.warping_error(brightening, zero, zero) == pytest.approx((10 / 255) ** 2, rel=1e-5)
    # Content moving right 2 px with the matching flow: no error where it is visible.
    wide = rng.integers(0, 255, (20, 40, 3), dtype=np.uint8)
    moving = np.stack([wide[:, 10 - 2 * t : 40 - 2 * t] for t in range(3)])
    forward = np.zeros((2, 20, 30, 2), np.float32)
    forward[..., 0] = 2
    assert m.warping_error(moving, forward, -forward) == pytest.approx(0.0, abs=1e-10)
    # With a wrong (zero) flow the error is large.
    assert m.warping_error(moving, zero, zero) > 0.01


def test_evaluate_identical_and_damaged() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 255, (4, 32, 48, 3), dtype=np.uint8)
    masks = np.zeros((4, 32, 48), bool)
    masks[:, 8:16, 8:24] = True
    same = m.evaluate(gt, gt, masks)
    assert same.psnr == 100.0 and same.ssim == pytest.approx(1.0) and same.ewarp == pytest.approx(same.gt_ewarp)
    damaged = gt.copy()
    damaged[masks] = 0
    scores = m.evaluate(damaged, gt, masks, seconds=2.0)
    assert scores.psnr < 30 and scores.ssim < 1.0 and scores.seconds_per_frame == pytest.approx(0.5)
    table = m.format_table([("damaged", scores), ("ground truth", m.ground_truth_row(scores))])
    assert "PSNR" in table and "damaged" in table and "ground truth" in table


def test_eval_parser_shared_between_tables() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register_cli(sub)
    add_eval_command(sub, "masks", lambda p: p.add_argument("pred"), lambda a: 7)
    assert get_eval_subparsers(sub) is get_eval_subparsers(sub)
    args = parser.parse_args(["eval", "masks", "x"])
    assert args.func(args) == 7
    args = parser.parse_args(["eval", "completion", "a", "b", "--gt", "c"])
    assert args.gt == "c"


def test_cli_prints_table(tmp_path, capsys) -> None:
    from peanut_server.cli import main

    rng = np.random.default_rng(3)
    for name in ("out", "gt", "masks"):
        (tmp_path / name).mkdir()
    gt = rng.integers(0, 255, (3, 24, 32, 3), dtype=np.uint8)
    out = gt.copy()
    out[:, 4:10, 4:12] = 128
    for t in range(3):
        cv2.imwrite(str(tmp_path / "gt" / f"{t:05d}.png"), gt[t])
        cv2.imwrite(str(tmp_path / "out" / f"{t:05d}.png"), out[t])
    mask = np.zeros((24, 32), np.uint8)
    mask[4:10, 4:12] = 255
    cv2.imwrite(str(tmp_path / "masks" / "mask.png"), mask)
    code = main(["eval", "completion", str(tmp_path / "out"), str(tmp_path / "masks"), "--gt", str(tmp_path / "gt")])
    text = capsys.readouterr().out
    assert code == 0
    assert "PSNR" in text and "Ewarp" in text and "ground truth" in text
    expected = np.mean([m.psnr(out[t], gt[t]) for t in range(3)])
    assert f"{expected:.2f}" in text


def test_cli_parser_can_be_built_again_and_again() -> None:
    # The `eval` sub-parsers were kept in a table keyed by id(subparsers): once a parser was
    # freed, a new one at the same address got the old `eval` and adding `completion` again
    # raised "conflicting subparser" (seen in a full test run). Building it 50 times, with the
    # garbage collected in between, reproduced that every time. In a fresh interpreter: a full
    # collection in this one, after hundreds of tests, takes 0.4 s.
    loop = """
import gc
from peanut_server.cli import build_parser
for _ in range(50):
    parser = build_parser()
    assert parser.parse_args(["eval", "completion", "a", "b", "--gt", "c"]).gt == "c"
    del parser
    gc.collect()
"""
    done = subprocess.run([sys.executable, "-c", loop], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
