"""--include-effects: the object's shadow is found and removed with it.

Unit cases on generated frames (a moving object with an attached cast shadow
over a textured floor; a dark static stripe touching it that is no shadow),
and the real case the issue names: the tennis player's long low-sun shadow on
DAVIS tennis. The DAVIS masks of tennis (as shipped with ProPainter) cover
the player and a loose band around the shadow; the band is split off (the
mask's lowest rows right of the body) so the object-only mask is what a
masker would give, and the band is the ground truth of where the shadow is.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.eraser.base import EraserOptions
from peanut_server.eraser.effects import effects_mask, grow_to_effects
from peanut_server.eraser.flowguided import FlowGuidedEraser
from peanut_server.pipeline.spec import options_from_message
from peanut_server.progress import Reporter

from .test_eraser_quality import read_davis, read_masks

OUT = Path(__file__).resolve().parents[1] / "out"


def _floor(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, size).astype(np.float32), (0, 0), 2)
    base = 150 + 25 * noise / noise.std()
    return np.clip(np.dstack([base * 1.1, base * 0.8, base * 0.6]), 0, 255).astype(np.uint8)


def _scene(count: int = 30, static_stripe: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height, width = 120, 200
    floor = _floor((height, width))
    frames, objects, shadows = [], [], []
    for t in range(count):
        frame = floor.copy()
        obj = np.zeros((height, width), bool)
        shadow = np.zeros((height, width), bool)
        x = 30 + 4 * t
        shadow[78:86, x + 10 : x + 60] = True  # a low-sun shadow to the right of the feet
        obj[30:86, x : x + 14] = True  # a standing figure
        shadow &= ~obj
        frame[shadow] = (frame[shadow] * 0.55).astype(np.uint8)
        frame[obj] = (40, 200, 60)
        if static_stripe:
            frame[20:28, :] = (frame[20:28, :] * 0.45).astype(np.uint8)  # dark, static: part of the set
        frames.append(frame)
        objects.append(obj)
        shadows.append(shadow)
    return np.stack(frames), np.stack(objects), np.stack(shadows)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_cast_shadow_is_found() -> None:
    frames, objects, shadows = _scene()
    found = [effects_mask(frames, objects, t) for t in range(5, 25)]
    ious = [_iou(f, s) for f, s in zip(found, shadows[5:25])]
    assert np.mean(ious) >= 0.7, ious


def test_static_dark_region_is_not_a_shadow() -> None:
    frames, objects, shadows = _scene(static_stripe=True)
    grown = grow_to_effects(frames, objects)
    added = grown & ~objects
    assert not added[:, 20:28].any(), "a static dark stripe touching the object was taken for its shadow"
    assert (added & shadows).sum() >= 0.5 * shadows.sum()


def test_no_motion_means_no_guess() -> None:
    frames, objects, _ = _scene()
    still = np.repeat(frames[10:11], 20, axis=0)
    still_objects = np.repeat(objects[10:11], 20, axis=0)
    assert not (grow_to_effects(still, still_objects) & ~still_objects).any()


def test_option_travels_from_the_request() -> None:
    assert options_from_message(pb.Options(include_effects=True)).include_effects
    assert not options_from_message(pb.Options()).include_effects


def _split_shadow_band(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(object, shadow band): the band is the mask's lowest 25 rows right of the body above them."""
    ys, _ = np.nonzero(mask)
    bottom = ys.max()
    upper = mask.copy()
    upper[bottom - 25 :] = False
    right = np.nonzero(upper)[1].max() + 3
    band = mask.copy()
    band[: bottom - 25] = False
    band[:, :right] = False
    return mask & ~band, band


def _dark_in(frames: np.ndarray, region: np.ndarray) -> int:
    """Pixels of `region` darker than 0.8x their surround (a large median): what a shadow looks like."""
    count = 0
    for frame, where in zip(frames, region):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        ground = cv2.medianBlur(gray, 41).astype(np.float32)
        count += int(((gray.astype(np.float32) < 0.8 * ground) & where).sum())
    return count


@pytest.mark.slow
def test_tennis_shadow_is_removed_with_include_effects(shared_data: Path) -> None:
    frames = read_davis(shared_data / "davis" / "tennis", 40)
    given = read_masks(shared_data / "davis" / "tennis_mask", 40)
    objects, bands = zip(*(_split_shadow_band(m) for m in given))
    objects, bands = np.stack(objects), np.stack(bands)
    grown = grow_to_effects(frames, objects)
    added = grown & ~objects
    near = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0 for m in given])

    shadow_dark = _dark_in(frames, bands)
    left_dark = _dark_in(frames, bands & ~grown)
    stray = int((added & ~near).sum())
    print(
        f"\ntennis: shadow's dark pixels {shadow_dark}, left outside the grown mask {left_dark} "
        f"({1 - left_dark / shadow_dark:.0%} covered); added {int(added.sum())} px, {stray} of them "
        f"away from the shadow band (object area {int(objects.sum())} px)"
    )
    assert left_dark <= 0.7 * shadow_dark
    assert stray <= 0.25 * objects.sum()

    # The strips: the same eraser with the object mask, and with the grown one.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    plain = np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in objects])
    effects = np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in grown])
    without = FlowGuidedEraser().erase(frames, plain, EraserOptions(), Reporter()).frames
    with_effects = FlowGuidedEraser().erase(frames, effects, EraserOptions(), Reporter()).frames
    assert _dark_in(with_effects, bands) < _dark_in(without, bands)
    OUT.mkdir(exist_ok=True)
    rows = [np.concatenate([frames[t], without[t], with_effects[t]], axis=1) for t in (0, 20, 39)]
    cv2.imwrite(
        str(OUT / "eraser_tennis_source_plain_with_effects.png"),
        cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR),
    )


def test_cli_switch_sets_the_option() -> None:
    from peanut_server.cli import build_parser, options_from_args

    with_switch = build_parser().parse_args(["remove", "clip.mov", "-o", "out", "--include-effects"])
    without = build_parser().parse_args(["remove", "clip.mov", "-o", "out"])
    assert options_from_args(with_switch).get("include_effects") is True
    assert "include_effects" not in options_from_args(without)


def test_quality_preset_invents_everywhere() -> None:
    quality = options_from_message(pb.Options(preset=pb.PRESET_QUALITY)).eraser_options
    balanced = options_from_message(pb.Options()).eraser_options
    assert quality.invent_everywhere and quality.flow_completion == "background"
    assert not balanced.invent_everywhere and balanced.flow_completion == "membrane"
