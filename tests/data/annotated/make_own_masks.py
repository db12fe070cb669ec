"""Rebuild the hand-checked masks of our own clips (see SOURCE.md, "Own clips").

    python tests/data/annotated/make_own_masks.py [--strips DIR]

The footage is the two locked-off clips of tests/data/static_camera (40 frames, 432x240).
For each clip one walker is the object. Masks are built semi-automatically, then checked
by eye and corrected here, so the whole recipe is in this file:

1. Boxes placed by hand on keyframes (read off zoomed crops with a 10-pixel grid), linearly
   interpolated between keyframes and grown by MARGIN pixels: where the walker is.
2. The empty street: per pixel, the median over the frames whose box does not cover it
   (the walker never stands still long enough to leak into it).
3. In the box, pixels that differ from the street by more than DIFF (max over RGB) are
   "probably the walker", the rest of the box "probably street", outside the box "street";
   OpenCV's GrabCut (5 iterations) settles the border from the colours, and the pixels
   that differ from the street are added back (GrabCut drops grey legs on grey asphalt).
   Shadows (the street darker, same colour, same texture) do not count as differing: the
   shadow is not the object.
4. The largest piece and the pieces within 3 pixels of it are kept (holes filled); pieces of other walkers that touch the box
   are cut off by the box or by the polygons in REMOVE.
5. Corrections after looking at the strips (--strips writes them): REMOVE / ADD polygons
   per frame, in source pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).parent
# Pixels added around the boxes: wide where the walker is alone (his trailing leg reaches
# well out of the keyframe boxes), narrow where other walkers pass close by.
MARGIN = {"town_centre": 4, "hk_crossing": 10}
DIFF = 28

# clip -> {frame: (x, y, w, h)} of the walker, placed by hand on keyframes.
KEYBOXES: dict[str, dict[int, tuple[int, int, int, int]]] = {
    # The man in the black coat walking up and to the right, left of centre; a couple in
    # light blue and grey walks close behind him on the left.
    "town_centre": {
        0: (52, 103, 27, 56),
        3: (56, 102, 25, 55),
        6: (61, 99, 23, 51),
        9: (65, 97, 23, 53),
        12: (68, 96, 25, 53),
        18: (75, 91, 21, 50),
        24: (81, 89, 25, 51),
        27: (84, 89, 25, 51),
        30: (88, 86, 23, 49),
        33: (92, 83, 20, 50),
        36: (95, 83, 24, 50),
        39: (99, 82, 21, 50),
    },
    # The man in the green shirt crossing down the right-hand side; he walks out of the
    # bottom of the picture at frame 31 (no object from frame 32 on, the masks are empty).
    "hk_crossing": {
        0: (358, 53, 46, 61),
        4: (356, 73, 50, 52),
        8: (353, 96, 51, 55),
        12: (351, 117, 54, 41),
        16: (355, 140, 53, 53),
        20: (354, 162, 59, 43),
        24: (353, 186, 62, 44),
        28: (360, 211, 63, 29),
        30: (374, 222, 54, 18),
        31: (379, 232, 53, 8),
    },
}
# clip -> {frame: [polygon, ...]}: corrections after the eye check (source pixels).
# hk_crossing: the walker's shadow falls down-left of him; where it crosses the yellow
# stripes (19, 24, 25) or the dark asphalt at the bottom edge (26, 27) the shadow test above
# misses pieces of it, cut here. Read off 4x crops with a 10-pixel grid.
REMOVE: dict[str, dict[int, list[list[tuple[int, int]]]]] = {
    "hk_crossing": {
        19: [[(356, 177), (371, 177), (371, 186), (356, 186)]],
        24: [[(362, 212), (372, 212), (371, 222), (368, 230), (362, 230)]],
        25: [[(356, 212), (366, 212), (366, 226), (356, 226)]],
        26: [[(340, 223), (371, 223), (371, 240), (340, 240)], [(386, 227), (420, 227), (420, 240), (386, 240)]],
        27: [[(340, 225), (370, 225), (370, 240), (340, 240)]],
    }
}
ADD: dict[str, dict[int, list[list[tuple[int, int]]]]] = {}


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def boxes_per_frame(keys: dict[int, tuple[int, int, int, int]], n: int) -> list[tuple[int, int, int, int] | None]:
    """The keyframe boxes interpolated linearly; None outside the first..last keyframe."""
    frames = sorted(keys)
    out: list[tuple[int, int, int, int] | None] = [None] * n
    for i in range(n):
        if i < frames[0] or i > frames[-1]:
            continue
        after = next(f for f in frames if f >= i)
        before = max(f for f in frames if f <= i)
        t = 0.0 if after == before else (i - before) / (after - before)
        a, b = np.array(keys[before], float), np.array(keys[after], float)
        out[i] = tuple(int(round(v)) for v in (1 - t) * a + t * b)
    return out


def box_mask(box: tuple[int, int, int, int] | None, shape: tuple[int, int], margin: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    if box is not None:
        x, y, w, h = box
        m[max(y - margin, 0) : y + h + margin, max(x - margin, 0) : x + w + margin] = True
    return m


def empty_street(frames: list[np.ndarray], covered: list[np.ndarray]) -> np.ndarray:
    stack = np.stack(frames).astype(np.float32)
    hidden = np.stack(covered)[..., None]
    street = np.nanmedian(np.where(hidden, np.nan, stack), axis=0)
    return np.where(np.isnan(street), np.median(stack, axis=0), street)


def polygons(shape: tuple[int, int], polys: list[list[tuple[int, int]]]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for poly in polys:
        cv2.fillPoly(m, [np.array(poly, np.int32)], 1)
    return m.astype(bool)


def shadow(frame: np.ndarray, street: np.ndarray) -> np.ndarray:
    """Cast shadow: the street darkened (brightness ratio 0.4-0.92), its colour unchanged
    (chromaticity within 0.07: skylight tints a shadow on the yellow stripes) and its texture still there (local normalised correlation of
    the grey levels with the empty street's over 7x7 pixels above 0.5: a leg or a bag in
    the shadow hides the asphalt's texture). The walker is the object, his shadow is not."""
    f = frame.astype(np.float32) + 1
    s = street.astype(np.float32) + 1
    ratio = f.sum(axis=2) / s.sum(axis=2)
    chroma = np.abs(f / f.sum(axis=2, keepdims=True) - s / s.sum(axis=2, keepdims=True)).max(axis=2)
    a, b = f.mean(axis=2), s.mean(axis=2)

    def local_mean(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, (7, 7))

    cov = local_mean(a * b) - local_mean(a) * local_mean(b)
    var_a = np.maximum(local_mean(a * a) - local_mean(a) ** 2, 1e-3)
    var_b = np.maximum(local_mean(b * b) - local_mean(b) ** 2, 1e-3)
    texture_kept = cov / np.sqrt(var_a * var_b) > 0.5
    return (ratio > 0.4) & (ratio < 0.92) & (chroma < 0.07) & texture_kept


def walker_mask(frame: np.ndarray, street: np.ndarray, area: np.ndarray, seed: int) -> np.ndarray:
    if not area.any():
        return np.zeros(area.shape, bool)
    moved = (np.abs(frame.astype(np.float32) - street).max(axis=2) > DIFF) & ~shadow(frame, street)
    labels = np.full(area.shape, cv2.GC_BGD, np.uint8)
    labels[area] = cv2.GC_PR_BGD
    labels[area & moved] = cv2.GC_PR_FGD
    if not (area & moved).any():
        return np.zeros(area.shape, bool)
    cv2.setRNGSeed(seed)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), labels, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    # GrabCut drops thin grey legs over grey asphalt; the camera is locked off, so what
    # differs from the empty street inside the box is the walker too (specks opened away).
    moved_clean = cv2.morphologyEx((area & moved).astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    fg = (fg | (moved_clean > 0)).astype(np.uint8)
    count, comp, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return np.zeros(area.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    # Pieces within 3 pixels of the largest belong to it (a foot cut off by a thin ankle).
    near = cv2.dilate((comp == largest).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    keep = np.unique(comp[near & (comp > 0)])
    piece = np.isin(comp, keep).astype(np.uint8)
    # Fill holes: everything not reachable from outside the piece's contour.
    contours, _ = cv2.findContours(piece, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(piece)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def build(clip: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    frames = read_frames(HERE.parent / "static_camera" / f"{clip}.mp4")
    shape = frames[0].shape[:2]
    boxes = boxes_per_frame(KEYBOXES[clip], len(frames))
    areas = [box_mask(b, shape, MARGIN[clip]) for b in boxes]
    street = empty_street(frames, [box_mask(b, shape, MARGIN[clip] + 4) for b in boxes])
    masks = []
    for i, (frame, area) in enumerate(zip(frames, areas, strict=True)):
        mask = walker_mask(frame, street, area, seed=i)
        mask |= polygons(shape, ADD.get(clip, {}).get(i, []))
        mask &= ~polygons(shape, REMOVE.get(clip, {}).get(i, []))
        masks.append(mask)
    return frames, masks


def strip(frames: list[np.ndarray], masks: list[np.ndarray], crop: tuple[int, int, int, int], scale: int = 3):
    """Every frame's crop around the walker, enlarged, mask outline in red, frame number."""
    x0, y0, x1, y1 = crop
    tiles = []
    for i, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        big = cv2.resize(bgr[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        m = cv2.resize(mask[y0:y1, x0:x1].astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(big, contours, -1, (0, 0, 255), 1)
        cv2.putText(big, str(i), (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
        tiles.append(big)
    while len(tiles) % 8:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[k : k + 8]) for k in range(0, len(tiles), 8)])


# Crops for the eye check: the region the walker crosses.
CROPS = {"town_centre": (40, 72, 130, 165), "hk_crossing": (330, 40, 432, 240)}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=Path, help="also write <clip>_check.png here")
    args = parser.parse_args()
    for name in KEYBOXES:
        clip_frames, clip_masks = build(name)
        out = HERE / f"{name}_mask"
        out.mkdir(exist_ok=True)
        for k, m in enumerate(clip_masks):
            cv2.imwrite(str(out / f"{k:05d}.png"), m.astype(np.uint8) * 255)
        if args.strips:
            args.strips.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.strips / f"{name}_check.png"), strip(clip_frames, clip_masks, CROPS[name]))
        print(name, len(clip_masks), "masks; empty:", [k for k, m in enumerate(clip_masks) if not m.any()])
