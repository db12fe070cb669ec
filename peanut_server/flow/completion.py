"""Flow completion: the flow inside a hole belongs to the removed object; replace it
with the background's motion, interpolated from the flow around the hole.

The fill is the membrane (harmonic) interpolant: inside the hole the Laplacian
is zero and on its border the field equals the known flow, which is the
smoothest field that meets the background everywhere around the hole (an affine
camera motion is reproduced exactly). It is solved by a multigrid cascade:
known values are averaged down a pyramid until the hole vanishes, then each
level is upsampled as the start of Jacobi relaxation on the next finer one;
the coarsest level is solved exactly with a sparse LU. That costs a few
milliseconds per 432x240 field, for any number of components.

The membrane alone bends with whatever moves at the hole's rim: a person's arm
or feet outside a loose mask, a second mover passing, noise in the flow. Deep
inside a large hole that bend becomes a wrong motion, and the chains that carry
pixels over tens of frames along it smear them. With `background=True` (the
quality preset; see EraserOptions.flow_completion) the flow inside is the
background's own motion: one homography fitted (RANSAC) to the flow of the
known pixels near the hole, used where most of the rim moves with it, plus the
membrane's correction of the rim's residual, fading into the hole over a few
pixels so the field has no seam. Where the rim does not agree with one
homography (the hole lies on a surface that moves otherwise), the membrane is
kept.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg

# Jacobi sweeps per pyramid level: the coarser level already removed the
# long-wavelength error, so a few sweeps reach ~0.02 px accuracy.
RELAX_ITERATIONS = 8
# The object's motion leaks a few pixels beyond its mask through the flow's
# patches/regularisation, so the hole for flow completion is grown a little.
FLOW_MASK_DILATION = 3
# complete_flow solves at 1/COMPLETION_SCALE resolution (see there).
COMPLETION_SCALE = 2

# Levels below the working resolution; the coarsest is solved exactly.
PYRAMID_DEPTH = 3
# Holes up to this many pixels are solved exactly at once (a sparse LU costs ~1 ms).
DIRECT_SOLVE_MAX = 600
# Each coarser level loses up to one known block around the hole, so the crop
# keeps 2**(depth+1) known pixels around it.
CROP_MARGIN = 2 ** (PYRAMID_DEPTH + 1)

# The background model (see the module's docstring), in pixels at the field's resolution:
MODEL_RIM = 8  # the rim beyond the grown hole whose flow must agree with the model
MODEL_REACH = 48  # the known pixels within this distance of the hole are fitted
MODEL_TOLERANCE = 1.0  # a rim pixel agrees when its flow is this close to the model's (and RANSAC's threshold)
MODEL_AGREEMENT = 0.5  # share of the rim that must agree for the model to be used
MODEL_FADE = 8.0  # the membrane's correction of the rim's residual fades over this distance
MODEL_MAX_POINTS = 3000  # points given to RANSAC (a regular subsample beyond that)

_LAPLACE_KERNEL = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)


def harmonic_fill(values: np.ndarray, hole: np.ndarray, iterations: int = RELAX_ITERATIONS) -> np.ndarray:
    """A copy of `values` (H, W) or (H, W, C) float with `hole` replaced by the harmonic interpolant.

    Pixels outside `hole` are returned unchanged. Image borders act as
    reflecting (zero normal derivative). Without any known pixel the hole is 0.
    """
    out = np.array(values, dtype=np.float32, copy=True)
    hole = np.asarray(hole, dtype=bool)
    if not hole.any():
        return out
    if hole.all():
        out[...] = 0.0
        return out
    # Work on the hole's bounding box plus a margin of known pixels: the
    # solution depends only on the ring around the hole, but the coarse levels
    # need a few known blocks beyond it.
    ys, xs = np.nonzero(hole)
    m = CROP_MARGIN
    y0, y1 = max(ys.min() - m, 0), min(ys.max() + m + 1, hole.shape[0])
    x0, x1 = max(xs.min() - m, 0), min(xs.max() + m + 1, hole.shape[1])
    crop = out[y0:y1, x0:x1]
    squeeze = crop.ndim == 2
    if squeeze:
        crop = crop[..., None]
    filled = _multigrid(np.ascontiguousarray(crop), hole[y0:y1, x0:x1].copy(), iterations)
    out[y0:y1, x0:x1] = filled[..., 0] if squeeze else filled
    return out


def _multigrid(values: np.ndarray, hole: np.ndarray, iterations: int, depth: int = PYRAMID_DEPTH) -> np.ndarray:
    height, width = hole.shape
    known = ~hole
    if not known.any():
        return np.zeros_like(values)
    if depth == 0 or min(height, width) < 8 or hole.sum() <= DIRECT_SOLVE_MAX:
        return _direct_solve(values, hole)
    # Restrict: a 2x2 block is known on the coarser level only when all four
    # pixels are known, so its average is exact for a locally affine field
    # (a partial block would shift the value towards its known side).
    ph, pw = height + height % 2, width + width % 2
    v = np.pad(values, ((0, ph - height), (0, pw - width), (0, 0)), mode="edge")
    k = np.pad(known, ((0, ph - height), (0, pw - width)), mode="edge").astype(np.float32)
    ksum = k.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
    coarse = v.reshape(ph // 2, 2, pw // 2, 2, -1).mean(axis=(1, 3)).astype(np.float32)
    coarse_hole = ksum < 4
    if coarse_hole.all():
        return _direct_solve(values, hole)
    coarse = _multigrid(coarse, coarse_hole, iterations, depth - 1)
    up = cv2.resize(coarse, (pw, ph), interpolation=cv2.INTER_LINEAR)
    if up.ndim == 2:
        up = up[..., None]
    out = values.copy()
    out[hole] = up[:height, :width][hole]
    return _relax(out, hole, iterations)


def _direct_solve(values: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Exact 5-point Laplace solve over the hole pixels (small systems only)."""
    height, width = hole.shape
    ys, xs = np.nonzero(hole)
    count = len(ys)
    index = np.full(hole.shape, -1, np.int64)
    index[ys, xs] = np.arange(count)
    rows, cols = [], []
    degree = np.zeros(count)
    rhs = np.zeros((count, values.shape[-1]))
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        degree += inside  # a missing neighbour at the image border: reflecting boundary
        ny, nx = np.clip(ny, 0, height - 1), np.clip(nx, 0, width - 1)
        neighbour = index[ny, nx]
        unknown = inside & (neighbour >= 0)
        rows.append(np.nonzero(unknown)[0])
        cols.append(neighbour[unknown])
        fixed = inside & (neighbour < 0)
        np.add.at(rhs, np.nonzero(fixed)[0], values[ny[fixed], nx[fixed]])
    # A tiny diagonal term keeps a component without known neighbours solvable (it tends to 0).
    diag = np.arange(count)
    matrix = sparse.csc_matrix(
        (
            np.concatenate([degree + 1e-9] + [-np.ones(len(r)) for r in rows]),
            (np.concatenate([diag, *rows]), np.concatenate([diag, *cols])),
        ),
        shape=(count, count),
    )
    solution = splinalg.splu(matrix).solve(rhs)
    out = values.copy()
    out[ys, xs] = solution.astype(np.float32)
    return out


def _relax(values: np.ndarray, hole: np.ndarray, iterations: int) -> np.ndarray:
    hole3 = hole[..., None]
    for _ in range(iterations):
        avg = cv2.filter2D(values, -1, _LAPLACE_KERNEL, borderType=cv2.BORDER_REPLICATE)
        if avg.ndim == 2:
            avg = avg[..., None]
        values = np.where(hole3, avg, values)
    return values


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0 or not mask.any():
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def background_motion(flow: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
    """The background's motion around `hole` as a flow field (H, W, 2) from one
    homography, or None where fewer than MODEL_AGREEMENT of the rim follow it.
    Only the hole's surround (MODEL_REACH) is filled in; elsewhere the field is zero."""
    height, width = hole.shape
    # Distance to the hole (one transform instead of two large dilations).
    distance = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    rim = (distance > 0) & (distance <= MODEL_RIM)
    ys, xs = np.nonzero((distance > MODEL_RIM) & (distance <= MODEL_REACH))
    if len(ys) < 16 or not rim.any():
        return None
    if len(ys) > MODEL_MAX_POINTS:
        keep = np.linspace(0, len(ys) - 1, MODEL_MAX_POINTS).astype(int)
        ys, xs = ys[keep], xs[keep]
    source = np.stack([xs, ys], axis=1).astype(np.float32)
    homography, _ = cv2.findHomography(source, source + flow[ys, xs], cv2.RANSAC, MODEL_TOLERANCE)
    if homography is None:
        return None
    # The field is needed in the hole and on its rim; the membrane of the residual
    # also reads a margin beyond them, so the model covers everything fitted.
    rows, cols = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    y0, y1 = max(rows[0] - MODEL_REACH, 0), min(rows[-1] + 1 + MODEL_REACH, height)
    x0, x1 = max(cols[0] - MODEL_REACH, 0), min(cols[-1] + 1 + MODEL_REACH, width)
    grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    grid = np.stack([grid_x, grid_y], axis=-1)
    moved = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(grid.shape)
    model = np.zeros_like(flow, dtype=np.float32)
    model[y0:y1, x0:x1] = moved - grid
    if not np.isfinite(model).all():
        return None
    agree = np.linalg.norm(flow[rim] - model[rim], axis=1) <= MODEL_TOLERANCE
    return model if agree.mean() >= MODEL_AGREEMENT else None


def membrane(flow: np.ndarray, hole: np.ndarray, scale: int = COMPLETION_SCALE) -> np.ndarray:
    """Flow (H, W, 2) with `hole` filled by the membrane of its surround.

    With scale 2 the membrane is solved on the flow downsampled by 2 and
    upsampled into the hole: background motion is smooth, so this loses
    nothing visible and costs a quarter.
    """
    if scale <= 1 or not hole.any() or min(hole.shape) < 16 * scale:
        return harmonic_fill(flow, hole)
    height, width = hole.shape
    small_size = (width // scale, height // scale)
    small = cv2.resize(flow, small_size, interpolation=cv2.INTER_AREA) / scale
    small_hole = cv2.resize(hole.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) > 0
    filled = harmonic_fill(small, small_hole) * scale
    up = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
    out = flow.copy()
    out[hole] = up[hole]
    return out


def complete_flow(
    flow: np.ndarray,
    hole: np.ndarray,
    dilation: int = FLOW_MASK_DILATION,
    scale: int = COMPLETION_SCALE,
    background: bool = False,
) -> np.ndarray:
    """Flow (H, W, 2) with the (grown) hole filled by the membrane, or with
    background=True by the background's motion where the rim follows one homography."""
    hole = grow_mask(hole, dilation)
    if not hole.any():
        return flow.copy()
    model = background_motion(flow, hole) if background else None
    if model is None:
        return membrane(flow, hole, scale)
    correction = membrane(flow - model, hole, scale)
    fade = np.exp(-cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3) / MODEL_FADE)
    out = flow.copy()
    out[hole] = (model + correction * fade[..., None])[hole]
    return out


def complete_flow_fields(
    forward: np.ndarray,
    backward: np.ndarray,
    masks: np.ndarray,
    dilation: int = FLOW_MASK_DILATION,
    reporter=None,
    scale: int = 2,
    background: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Complete a window's flows: forward[t] lives on frame t's grid, backward[t] on frame t+1's."""
    fwd = np.empty_like(forward)
    bwd = np.empty_like(backward)
    for t in range(len(forward)):
        if reporter is not None:
            reporter.check()
        fwd[t] = complete_flow(forward[t], masks[t], dilation, scale, background)
        bwd[t] = complete_flow(backward[t], masks[t + 1], dilation, scale, background)
    return fwd, bwd
