"""Flow completion: the membrane fill recovers smooth background motion inside holes."""

from __future__ import annotations

import numpy as np

from peanut_server.flow.completion import complete_flow_fields, harmonic_fill


def _affine_field(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([0.5 + 0.01 * xx - 0.02 * yy, -1.0 + 0.005 * yy + 0.003 * xx], axis=-1)


def test_affine_flow_recovered_inside_holes() -> None:
    truth = _affine_field(120, 200)
    hole = np.zeros((120, 200), bool)
    hole[30:80, 50:120] = True  # a large hole
    hole[90:105, 150:190] = True  # a second component
    hole[10:13, 10:13] = True  # a tiny one (direct solve)
    corrupted = truth.copy()
    corrupted[hole] = 40.0  # the removed object's own motion
    filled = harmonic_fill(corrupted, hole)
    assert np.abs(filled - truth)[hole].max() < 0.05
    assert np.array_equal(filled[~hole], truth[~hole])  # known flow untouched


def test_smooth_nonlinear_flow_close_inside_hole() -> None:
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    # A harmonic, non-affine field (real part of a complex quadratic): exact target of the solver.
    truth = np.stack([0.002 * ((xx - 64) ** 2 - (yy - 48) ** 2), 0.004 * (xx - 64) * (yy - 48)], -1)
    hole = np.zeros((96, 128), bool)
    hole[30:70, 40:90] = True
    filled = harmonic_fill(np.where(hole[..., None], 0.0, truth), hole)
    assert np.abs(filled - truth)[hole].max() < 0.1


def test_hole_without_known_pixels_is_zero() -> None:
    field = np.full((8, 8, 2), 5.0, np.float32)
    assert np.all(harmonic_fill(field, np.ones((8, 8), bool)) == 0)


def test_window_completion_uses_each_grid_mask() -> None:
    truth = np.broadcast_to(_affine_field(60, 80), (3, 60, 80, 2)).copy()
    masks = np.zeros((4, 60, 80), bool)
    masks[0, 10:20, 10:20] = True  # forward[0] lives on frame 0
    masks[1, 30:40, 40:50] = True  # backward[0] lives on frame 1
    forward, backward = truth.copy(), truth.copy()
    forward[0, 10:20, 10:20] = 99.0
    backward[0, 30:40, 40:50] = 99.0
    fwd, bwd = complete_flow_fields(forward, backward, masks, dilation=0)
    assert np.abs(fwd - truth).max() < 0.05
    assert np.abs(bwd - truth).max() < 0.05
