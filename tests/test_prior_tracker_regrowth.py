"""PriorTracker on two motions that lost the object before 2026-12-01 (issue 11, DAVIS breakdance).

- Limbs that swing faster than the flow can follow: the carried mask drops them, and the prior
  (sure of the carried edge) never lets the colours bring them back. While the carried mask is
  smaller than the object was, the tracker now raises the prior on the moving regions that touch
  it and lets the colour and motion evidence decide there (`moving_prior`, `regrow_below`).
- An object that moved fast and then turns on the spot: nothing under its mask moves at half its
  old speed any more, which the tracker took for "hidden", and it carried the mask on at the old
  speed, off the object. It now coasts only when most of the mask's pixels stopped moving unlike
  the camera (`coast_movers`).

The first test runs the bare tracker on the first 14 frames of the real breakdance clip (the
clip these changes were chosen on, so it guards the mechanism and is no quality floor; the
held-out floors are in tests/test_masker_heldout.py). The second is synthetic: a disc drawn
from the background's own colours, so that only motion and the prior can hold it.
"""

from __future__ import annotations

import cv2
import numpy as np

from peanut_server.masker.motion.flowtrack import PriorTracker, PriorTrackerOptions
from tests.heldout import CLIPS, read_video, truth

WIDTH, HEIGHT = 240, 180


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(int((a | b).sum()), 1))


def _track(frames: list[np.ndarray], masks: list[np.ndarray], options: PriorTrackerOptions) -> list[float]:
    tracker = PriorTracker(options=options)
    tracker.reset(frames[0], masks[0])
    return [_iou(tracker.step(frame), truth) for frame, truth in zip(frames[1:], masks[1:])]


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.uniform(0, 1, (*shape, 3)).astype(np.float32), (0, 0), 1.2)
    noise = (noise - noise.min()) / max(float(noise.max() - noise.min()), 1e-6)
    low, high = np.array((20, 90, 110), np.float32), np.array((90, 170, 200), np.float32)
    return (low + noise * (high - low)).astype(np.uint8)


def turning_after_running(seed: int = 7, radius: int = 30) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured disc that runs right at 8 px a frame for 5 frames, then turns on the spot at
    8 degrees a frame (its rim moves about 4.2 px a frame) for 12; the same colours as the ground."""
    rng = np.random.default_rng(seed)
    ground = _texture(rng, (HEIGHT, WIDTH))
    skin = _texture(rng, (2 * radius + 1, 2 * radius + 1))
    disc = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
    cv2.circle(disc, (radius, radius), radius, 1, -1)
    frames, masks = [], []
    for t in range(18):
        place = cv2.getRotationMatrix2D((radius, radius), 8.0 * max(t - 5, 0), 1.0)
        place[:, 2] += (40 + 8 * min(t, 5) - radius, HEIGHT / 2 - radius)
        spun = cv2.warpAffine(skin, place, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(disc, place, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST).astype(bool)
        frame = ground.copy()
        frame[inside] = spun[inside]
        frames.append(frame)
        masks.append(inside)
    return frames, masks


def test_the_dancers_swinging_legs_are_grown_back() -> None:
    frames = read_video(CLIPS["breakdance"])[:14]
    masks = [m.astype(bool) for m in truth("breakdance")[:14]]
    ours = _track(frames, masks, PriorTrackerOptions())
    no_regrowth = _track(frames, masks, PriorTrackerOptions(moving_prior=0))
    old_coasting = _track(frames, masks, PriorTrackerOptions(coast_movers=1.0))
    for name, scores in (("ours", ours), ("no regrowth", no_regrowth), ("old coasting", old_coasting)):
        print(f"\nJ per frame, {name}:", " ".join(f"{s:.2f}" for s in scores))
    # Measured (2-core CPU): 0.53 mean against 0.23 without regrowth (the legs dropped from frame 2,
    # J 0.00 by frame 12) and 0.35 with the old coasting (carried off him from frame 7).
    assert np.mean(ours) >= np.mean(no_regrowth) + 0.2, (ours, no_regrowth)
    assert np.mean(ours) >= np.mean(old_coasting) + 0.1, (ours, old_coasting)
    assert min(ours) >= 0.25, ours  # never lost


def test_an_object_turning_on_the_spot_is_not_coasted_off() -> None:
    frames, masks = turning_after_running()
    ours = _track(frames, masks, PriorTrackerOptions())
    old_coasting = _track(frames, masks, PriorTrackerOptions(coast_movers=1.0))
    print("\nJ per frame:", " ".join(f"{s:.2f}" for s in ours))
    print("J per frame, the old coasting:", " ".join(f"{s:.2f}" for s in old_coasting))
    # Measured: ours never under 0.9 here (seeds 1, 2, 3, 8, 9: it ends at 0.82-0.91); the old rule ends at
    # 0.0 on each of them.
    assert min(ours) >= 0.7, ours
    assert old_coasting[-1] < 0.2, old_coasting  # a case the old rule loses, so the test can fail
