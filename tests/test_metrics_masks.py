"""J, F, J&F, temporal IoU and connectivity on masks with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from peanut_server.metrics.masks import boundary, connectivity, evaluate, f_measure, jaccard


def square(h: int, w: int, x0: int, y0: int, side: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


def test_jaccard_known_values() -> None:
    a = square(50, 50, 0, 0, 10)
    b = square(50, 50, 5, 0, 10)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, b) == pytest.approx(50 / 150)
    assert jaccard(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert jaccard(a, np.zeros_like(a)) == 0.0


def test_boundary_is_one_pixel_ring() -> None:
    b = boundary(square(20, 20, 5, 5, 6))
    assert b.sum() == 6 * 4 - 4
    assert not b[7:9, 7:9].any()


def test_f_measure_tolerance_follows_the_davis_bound() -> None:
    h, w = 240, 432
    radius = math.ceil(0.008 * math.hypot(h, w))  # 4 px at DAVIS 480p/2
    gt = square(h, w, 100, 100, 60)
    inside = square(h, w, 100 + radius, 100, 60)  # edges shifted by exactly the tolerance
    outside = square(h, w, 100 + 3 * radius, 100, 60)
    assert f_measure(gt, gt) == 1.0
    assert f_measure(inside, gt) > 0.95
    assert f_measure(outside, gt) < 0.6
    assert f_measure(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    assert f_measure(gt, np.zeros_like(gt)) == 0.0


def test_connectivity() -> None:
    one = square(40, 40, 2, 2, 10)
    two = one | square(40, 40, 30, 30, 5)
    assert connectivity(one) == 1.0
    assert connectivity(two) == pytest.approx(100 / 125)
    assert connectivity(np.zeros((5, 5), bool)) == 1.0


def test_evaluate_sequence() -> None:
    gt = [square(60, 60, 10 + 2 * t, 10, 20) for t in range(5)]
    static = [gt[0]] * 5
    s = evaluate(gt, gt)
    assert s.JF == 1.0 and s.frames == 5 and s.connectivity == 1.0
    assert s.temporal_iou == pytest.approx(s.temporal_iou_gt)
    lazy = evaluate(static, gt)
    assert lazy.J < 1.0 and lazy.temporal_iou == 1.0 and lazy.temporal_iou_gt < 1.0
    assert lazy.JF == pytest.approx((lazy.J + lazy.F) / 2)
    with pytest.raises(ValueError):
        evaluate(gt[:3], gt)


def test_eval_masks_command(tmp_path, capsys, shared_data) -> None:
    import argparse
    import json

    import cv2

    from peanut_server.metrics.masks_command import register_masks_eval

    gt_dir = shared_data / "davis" / "tennis_mask"
    pred = tmp_path / "pred"
    pred.mkdir()
    names = sorted(p.name for p in gt_dir.iterdir())[:5]
    for k, name in enumerate(names):
        mask = cv2.imread(str(gt_dir / name), cv2.IMREAD_GRAYSCALE)
        if k == 4:
            mask[:] = 0  # one frame missed entirely
        cv2.imwrite(str(pred / name), mask)
    parser = argparse.ArgumentParser(prog="peanut")
    register_masks_eval(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "masks", str(pred), str(gt_dir), "--json"])
    assert args.func(args) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["frames"] == 5 and table["gt_frames"] == len(list(gt_dir.iterdir()))
    assert table["J"] == pytest.approx(0.8) and table["J&F"] == pytest.approx(0.8)
