"""PriorTracker on an object whose parts move unlike its median: a rolling wheel.

A wheel that rolls without slipping moves at twice its centre's speed at the top and not at
all where it touches the ground: its lower rim moves like the (static) background. A
tracker that compares every pixel's flow with one median flow for the whole object reads
that rim as background and carves it out frame after frame (issue 11: a planted foot, a
swinging leg, a goat the camera follows). The wheel's texture is drawn from the same
colours as the ground's, so colour cannot save it: motion and the prior decide.
"""

from __future__ import annotations

import cv2
import numpy as np

from peanut_server.masker.motion.flowtrack import PriorTracker, PriorTrackerOptions

SIZE = (240, 160)  # width, height
RADIUS = 32
SPEED = 3.0  # px/frame of the centre; the wheel turns SPEED / RADIUS rad/frame
FRAMES = 14


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.2) * 1.8 - 100, 0, 255).astype(np.uint8)


def rolling_wheel(seed: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    width, height = SIZE
    ground = _texture(rng, height, width)
    wheel = _texture(rng, 2 * RADIUS + 1, 2 * RADIUS + 1)
    disc = np.zeros((2 * RADIUS + 1, 2 * RADIUS + 1), np.uint8)
    cv2.circle(disc, (RADIUS, RADIUS), RADIUS, 1, -1)
    frames, masks = [], []
    for t in range(FRAMES):
        cx, cy = 60.0 + SPEED * t, height / 2
        turn = np.degrees(SPEED * t / RADIUS)
        # Rotate the wheel's texture about its centre (clockwise when it rolls right), then place it.
        rotation = cv2.getRotationMatrix2D((RADIUS, RADIUS), -turn, 1.0)
        rotation[:, 2] += (cx - RADIUS, cy - RADIUS)
        spun = cv2.warpAffine(wheel, rotation, (width, height), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(disc, rotation, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
        frame = ground.copy()
        frame[inside] = spun[inside]
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        masks.append(inside)
    return frames, masks


def _track(options: PriorTrackerOptions) -> list[float]:
    frames, masks = rolling_wheel()
    tracker = PriorTracker(options=options)
    tracker.reset(frames[0], masks[0])
    scores = []
    for frame, truth in zip(frames[1:], masks[1:]):
        mask = tracker.step(frame)
        scores.append((mask & truth).sum() / max(int((mask | truth).sum()), 1))
    return scores


def test_keeps_the_part_of_a_rolling_wheel_that_moves_like_the_ground() -> None:
    ours = _track(PriorTrackerOptions())
    # The baseline: the same tracker comparing each pixel with the whole wheel's median flow
    # (the tracker before the local object flow: J 0.90 falling to 0.71 by frame 13).
    median_only = _track(PriorTrackerOptions(local_motion_sigma=0, motion_max_log=10))
    print("\nJ per frame, local flow:", " ".join(f"{s:.2f}" for s in ours))
    print("J per frame, median only:", " ".join(f"{s:.2f}" for s in median_only))
    # The lower rim still erodes a little (about 0.77 by frame 13): flow this close to the
    # ground is the ground's and the wheel's mixed. The bars: the wheel is never mostly lost,
    # and the local flow keeps clearly more of it than the median.
    assert min(ours) >= 0.73, ours
    assert np.mean(ours) >= np.mean(median_only) + 0.04, (ours, median_only)
