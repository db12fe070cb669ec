"""Flow completion: the membrane fill recovers smooth background motion inside holes,
and the background model keeps it when something else moves at the hole's rim."""

from __future__ import annotations

import cv2
import numpy as np

from peanut_server.flow.completion import background_motion, complete_flow, complete_flow_fields, harmonic_fill


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


def _homography_field(height: int, width: int) -> np.ndarray:
    """A camera pan with a little zoom and perspective: flow of one homography."""
    homography = np.array([[1.01, 0.002, 1.5], [-0.003, 1.008, -0.7], [2e-5, -1e-5, 1.0]])
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.float32)
    moved = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(height, width, 2)
    return (moved - grid).astype(np.float32)


def _person_hole(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A tall hole (a walking person's mask) and, below it, the feet the mask missed."""
    hole = np.zeros((height, width), bool)
    hole[40:200, 120:190] = True
    feet = np.zeros_like(hole)
    feet[200:215, 125:150] = True  # outside the mask, on its rim, moving with the person
    return hole, feet


def test_background_model_keeps_camera_motion_when_the_rim_holds_a_mover() -> None:
    height, width = 240, 320
    truth = _homography_field(height, width)
    hole, feet = _person_hole(height, width)
    observed = truth.copy()
    observed[hole] = 0.0  # the person's own flow (walking on the spot)
    observed[feet] = (-4.0, 1.0)  # the feet, stepping
    core = cv2.erode(hole.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0  # deeper than the fade
    model = complete_flow(observed, hole, dilation=2, background=True)
    plain = complete_flow(observed, hole, dilation=2)
    model_error = np.linalg.norm(model - truth, axis=-1)[core]
    plain_error = np.linalg.norm(plain - truth, axis=-1)[core]
    # Chains carry pixels along this flow for tens of frames: 0.1 px a frame is 3 px in 30.
    assert model_error.max() < 0.1, model_error.max()
    # The membrane bends towards the feet; the same test fails for it.
    assert plain_error.max() > 0.3, plain_error.max()
    outside = cv2.dilate(hole.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0  # beyond the grown hole
    assert np.array_equal(model[outside], observed[outside])


def test_background_model_declined_where_the_rim_moves_otherwise() -> None:
    # A hole on a turning wheel: its rim follows no one homography of the
    # (static) background, so the membrane of the rim's flow is used instead.
    height, width = 200, 260
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    flow = np.zeros((height, width, 2), np.float32)
    wheel = (xx - 130) ** 2 + (yy - 100) ** 2 < 70**2
    flow[wheel] = np.stack([-(yy - 100), xx - 130], axis=-1)[wheel] * 0.05  # rotation
    hole = (xx - 130) ** 2 + (yy - 100) ** 2 < 40**2
    assert background_motion(flow, hole) is None
    assert np.array_equal(complete_flow(flow, hole, dilation=0, background=True), complete_flow(flow, hole, dilation=0))
