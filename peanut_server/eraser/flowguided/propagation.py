"""Flow-guided propagation of known pixels into holes, across a whole window.

Every hole pixel is traced along the completed flow to the nearest frame (in
each direction) where the scene point is visible, one frame at a time: a
pixel of frame t steps to frame t-1 (forward pass) or t+1 (backward pass); if
it lands on a known pixel there, that is its source; if it lands on another
hole pixel, it inherits that pixel's pointer (source frame and position, plus
the sub-pixel offset of the step). So one sequential pass per direction links
each hole pixel to a real pixel any number of frames away, and the colour is
read once, with one bilinear sample, instead of being resampled at every hop
(which would blur it).

A step is taken only when the forward and backward flows agree there
(forward-backward consistency): where they do not, the point is occluded in
the neighbour frame, or the flow is unreliable, and the chain is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Consistency:
    """Forward-backward consistency (Sundaram et al. 2010): a step along the flow
    is trusted where |f + b|^2 < relative * (|f|^2 + |b|^2) + absolute (pixels^2).

    Sundaram's thresholds (0.01, 0.5) were set for variational flow. DIS on real
    footage (motion blur, grass, a panning camera) misses them on much of the
    background, which cut chains that were right and left a third of a moving
    hole to per-frame Telea on DAVIS bmx-trees; see EraserOptions for the
    measured defaults.
    """

    relative: float = 0.1
    absolute: float = 2.0

    def holds(self, mismatch: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return mismatch < self.relative * scale + self.absolute


DEFAULT_CONSISTENCY = Consistency()


@dataclass
class Pointers:
    """For the target pixels (ys, xs) of one frame: where their colour comes from."""

    ys: np.ndarray  # (N,) int32 target rows
    xs: np.ndarray  # (N,) int32 target columns
    src: np.ndarray  # (N,) int32 source frame, -1 = none found
    px: np.ndarray  # (N,) float32 source column
    py: np.ndarray  # (N,) float32 source row

    @classmethod
    def empty(cls, ys: np.ndarray, xs: np.ndarray) -> Pointers:
        n = len(ys)
        return cls(ys, xs, np.full(n, -1, np.int32), np.zeros(n, np.float32), np.zeros(n, np.float32))


def bilinear_corners(
    px: np.ndarray, py: np.ndarray, width: int, height: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The four pixels (y, x) around each float position, clamped at the border, with their
    bilinear weights: the one footprint that sampling, known-only sampling and visibility share."""
    x0 = np.clip(np.floor(px), 0, width - 1).astype(np.int32)
    y0 = np.clip(np.floor(py), 0, height - 1).astype(np.int32)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = np.clip(px - x0, 0.0, 1.0)
    fy = np.clip(py - y0, 0.0, 1.0)
    return [(y0, x0, (1 - fx) * (1 - fy)), (y0, x1, fx * (1 - fy)), (y1, x0, (1 - fx) * fy), (y1, x1, fx * fy)]


def sample(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Bilinear samples of `image` (H, W, C) at float positions, clamped at the border."""
    height, width = image.shape[:2]
    total = sum(image[yy, xx] * w[:, None] for yy, xx, w in bilinear_corners(px, py, width, height))
    return np.asarray(total, np.float32)


def sample_known(
    frames: np.ndarray, known: np.ndarray, src: np.ndarray, px: np.ndarray, py: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear colours from frames[src] at (px, py), using only known corners.

    Returns (colours (N, 3) float32, ok (N,) bool). A corner inside a hole
    would mix the removed object's colour into the fill, so its weight is
    dropped and the others renormalised.
    """
    height, width = frames.shape[1:3]
    total = np.zeros((len(src), frames.shape[3]), np.float32)
    weight = np.zeros(len(src), np.float32)
    for yy, xx, w in bilinear_corners(px, py, width, height):
        w = w * known[src, yy, xx]
        total += frames[src, yy, xx] * w[:, None]
        weight += w
    ok = weight > 1e-3
    total[ok] /= weight[ok, None]
    return total, ok


def visible_at(known: np.ndarray, src: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Whether any pixel of the bilinear footprint at (px, py) in known[src] is known."""
    height, width = known.shape[1:3]
    share = sum(known[src, yy, xx] * w for yy, xx, w in bilinear_corners(px, py, width, height))
    return share > 1e-3


def step_pointers(
    target: Pointers,
    flow_to_neighbour: np.ndarray,
    flow_from_neighbour: np.ndarray,
    neighbour: int,
    neighbour_known: np.ndarray,
    neighbour_index: np.ndarray | None,
    neighbour_pointers: Pointers | None,
    known_stack: np.ndarray | None = None,
    consistency: Consistency = DEFAULT_CONSISTENCY,
) -> Pointers:
    """One hop: point the still unresolved targets of a frame into its neighbour frame.

    flow_to_neighbour lives on this frame's grid, flow_from_neighbour on the
    neighbour's. neighbour_index (H, W) maps the neighbour's pixels to rows of
    neighbour_pointers (-1 elsewhere), so chains continue through its holes.
    known_stack (T, H, W) bool, when given, keeps chained positions on pixels
    their source frame shows.
    """
    todo = np.nonzero(target.src < 0)[0]
    if len(todo) == 0:
        return target
    height, width = neighbour_known.shape
    ys, xs = target.ys[todo], target.xs[todo]
    motion = flow_to_neighbour[ys, xs]
    px = xs + motion[:, 0]
    py = ys + motion[:, 1]
    inside = (px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)
    # Every pixel of the landing footprint must move back consistently, not
    # just their interpolation: at an occlusion boundary the interpolated flow
    # can look consistent while one corner belongs to the occluder.
    ok = inside.copy()
    x0 = np.clip(np.floor(px), 0, width - 1).astype(np.int32)
    y0 = np.clip(np.floor(py), 0, height - 1).astype(np.int32)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx, fy = px - x0, py - y0
    motion_sq = np.sum(motion**2, axis=1)
    for cy, cx, weight in (
        (y0, x0, (1 - fx) * (1 - fy)),
        (y0, x1, fx * (1 - fy)),
        (y1, x0, (1 - fx) * fy),
        (y1, x1, fx * fy),
    ):
        back = flow_from_neighbour[cy, cx]
        mismatch = np.sum((motion + back) ** 2, axis=1)
        scale = motion_sq + np.sum(back**2, axis=1)
        ok &= (weight <= 1e-6) | consistency.holds(mismatch, scale)
    # Anchor where the whole bilinear footprint is known. Targets include a
    # ring of known pixels around each hole, so a chain that reaches the hole's
    # edge continues through the ring's pointers with a sub-pixel offset
    # instead of snapping to the nearest known pixel.
    known_share = sample(neighbour_known.astype(np.float32)[..., None], px, py)[:, 0]
    anchored = ok & (known_share > 0.999)
    sel = todo[anchored]
    target.src[sel] = neighbour
    target.px[sel] = px[anchored]
    target.py[sel] = py[anchored]
    if neighbour_pointers is None or neighbour_index is None:
        return target
    rest = np.nonzero(ok & ~anchored)[0]
    if len(rest) == 0:
        return target
    # Otherwise continue the chain of a footprint corner that has a source:
    # its source position plus the offset from that corner to the landing
    # point (exact for a locally translating background), from the nearest
    # corner whose offset position is visible in its source frame.
    qx, qy = px[rest], py[rest]
    x0 = np.clip(np.floor(qx), 0, width - 1).astype(np.int32)
    y0 = np.clip(np.floor(qy), 0, height - 1).astype(np.int32)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx, fy = qx - x0, qy - y0
    corners = ((y0, x0, (1 - fx) * (1 - fy)), (y0, x1, fx * (1 - fy)), (y1, x0, (1 - fx) * fy), (y1, x1, fx * fy))
    best = np.zeros(len(rest), np.float32)  # the chosen corner's bilinear weight
    best_src = np.full(len(rest), -1, np.int32)
    best_x = np.zeros(len(rest), np.float32)
    best_y = np.zeros(len(rest), np.float32)
    for cy, cx, weight in corners:
        row = neighbour_index[cy, cx]
        has = (row >= 0) & (weight > 1e-6)
        has[has] = neighbour_pointers.src[row[has]] >= 0
        if not has.any():
            continue
        idx = np.nonzero(has)[0]
        r = row[idx]
        src = neighbour_pointers.src[r]
        sx = neighbour_pointers.px[r] + (qx[idx] - cx[idx])
        sy = neighbour_pointers.py[r] + (qy[idx] - cy[idx])
        score = weight[idx].astype(np.float32)
        if known_stack is not None:
            # Not visible there: the point is hidden in that source frame too,
            # so this corner's chain does not apply.
            score = np.where(visible_at(known_stack, src, sx, sy), score, 0.0)
        better = score > best[idx]
        pick = idx[better]
        best[pick] = score[better]
        best_src[pick] = src[better]
        best_x[pick] = sx[better]
        best_y[pick] = sy[better]
    linked = best_src >= 0
    sel = todo[rest[linked]]
    target.src[sel] = best_src[linked]
    target.px[sel] = best_x[linked]
    target.py[sel] = best_y[linked]
    return target


def index_map(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    index = np.full(shape, -1, np.int32)
    index[ys, xs] = np.arange(len(ys), dtype=np.int32)
    return index


def trace(
    targets: list[tuple[np.ndarray, np.ndarray]],
    known: np.ndarray,
    forward: np.ndarray,
    backward: np.ndarray,
    direction: int,
    check=None,
    consistency: Consistency = DEFAULT_CONSISTENCY,
) -> list[Pointers]:
    """One sequential pass over the window.

    direction=+1 looks back in time (frame t takes from t-1, t-2, ...: content
    carried forward); direction=-1 looks ahead (t takes from t+1, t+2, ...).
    targets[t] = (ys, xs) of the pixels to resolve in frame t.
    """
    count = len(targets)
    shape = known.shape[1:]
    result: list[Pointers] = [Pointers.empty(*targets[t]) for t in range(count)]
    order = range(1, count) if direction > 0 else range(count - 2, -1, -1)
    previous_index = None
    for t in order:
        if check is not None:
            check()
        n = t - direction
        if direction > 0:
            to_n, from_n = backward[t - 1], forward[t - 1]
        else:
            to_n, from_n = forward[t], backward[t]
        if previous_index is None:
            previous_index = index_map(shape, *targets[n])
        if len(result[t].ys):
            step_pointers(result[t], to_n, from_n, n, known[n], previous_index, result[n], known, consistency)
        previous_index = index_map(shape, *targets[t])
    return result
