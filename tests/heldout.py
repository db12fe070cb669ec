"""Held-out clips for the no-weights tracker, and running it the way a user does.

The tracker was tuned on DAVIS tennis and bmx-trees and on the look-alikes of
tests/test_masker_lookalikes.py; the clips here were not looked at while tuning it, except
breakdance, whose failure the 2026-12-01 change was chosen on (see
tests/data/annotated/SOURCE.md). tests/test_masker_heldout.py and
benchmarks/masker_heldout.py share this module.

The masker is reached only through the command line, `peanut mask SRC ... -o OUT --local`
(called in this process through `peanut_server.cli.main`, which saves the start-up of a new
interpreter per run), so the masker package can be rebuilt under it without touching
these tests.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from tests.clips import box_of

DATA = Path(__file__).parent / "data"
ANNOTATED = DATA / "annotated"

# clip -> its footage (the masks are ANNOTATED / f"{clip}_mask").
CLIPS: dict[str, Path] = {
    "breakdance": ANNOTATED / "breakdance.mp4",
    "dance-twirl": ANNOTATED / "dance-twirl.mp4",
    "scooter-black": ANNOTATED / "scooter-black.mp4",
    "soapbox": ANNOTATED / "soapbox.mp4",
    "libby": ANNOTATED / "libby.mp4",
    "town_centre": DATA / "static_camera" / "town_centre.mp4",
    "hk_crossing": DATA / "static_camera" / "hk_crossing.mp4",
    # The second batch, added 2026-12-01 after the tracker had been changed while looking at
    # breakdance's failure (so breakdance no longer counts as unseen): five DAVIS 2016 clips
    # nobody here had looked at, under the same floors. Run twice: with a first version of the
    # change (whose losses here led to its size gate, chosen on DAVIS car-shadow), then as committed.
    "blackswan": ANNOTATED / "blackswan.mp4",
    "car-roundabout": ANNOTATED / "car-roundabout.mp4",
    "cows": ANNOTATED / "cows.mp4",
    "drift-chicane": ANNOTATED / "drift-chicane.mp4",
    "paragliding-launch": ANNOTATED / "paragliding-launch.mp4",
    # The third batch, added 2026-12-01: DAVIS 2016 training sequences set aside by name before
    # 23 others became tuning clips; run once, with the tracker as committed.
    "lucia": ANNOTATED / "lucia.mp4",
    "mallard-fly": ANNOTATED / "mallard-fly.mp4",
    "motocross-bumps": ANNOTATED / "motocross-bumps.mp4",
    "rhino": ANNOTATED / "rhino.mp4",
    "soccerball": ANNOTATED / "soccerball.mp4",
    "stroller": ANNOTATED / "stroller.mp4",
}


def read_video(path: Path) -> list[np.ndarray]:
    """Every frame of a clip, RGB uint8."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def read_masks(folder: Path) -> list[np.ndarray]:
    """A folder of mask PNGs in name order, as bool arrays (> 127 is the object)."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no masks in {folder}")
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in paths]


def truth(clip: str) -> list[np.ndarray]:
    return read_masks(ANNOTATED / f"{clip}_mask")


@dataclass
class MaskRun:
    masks: list[np.ndarray]
    seconds: float  # wall time of the whole command: decode, masking, PNG writing
    warnings: list[str]  # what the command printed on stderr

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(len(self.masks), 1)


def peanut_mask(source: Path, out: Path, *options: str) -> MaskRun:
    """`peanut mask SOURCE -o OUT --local OPTIONS...`; the masks it wrote, its time and warnings.

    A non-zero exit is an error here: these are prompts the masker must accept.
    """
    from peanut_server.cli import main

    out.parent.mkdir(parents=True, exist_ok=True)
    stdout, stderr = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["mask", str(source), "-o", str(out), "--local", "--overwrite", *options])
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"peanut mask {source.name} {' '.join(options)} exited {code}: {stderr.getvalue().strip()}")
    warnings = [line for line in stderr.getvalue().splitlines() if line.strip()]
    return MaskRun(read_masks(out), seconds, warnings)


def frames_to_check(warnings: list[str]) -> set[int]:
    """The frames a "check frames 3-5, 9: ..." warning names (none without one)."""
    named: set[int] = set()
    for warning in warnings:
        found = re.search(r"check frames ([0-9, -]+):", warning)
        for part in found.group(1).split(",") if found else []:
            first, _, last = part.strip().partition("-")
            named.update(range(int(first), int(last or first) + 1))
    return named


def box_option(mask: np.ndarray, frame: int = 0) -> str:
    """The --box a user would draw around `mask` on `frame`: F:X,Y,W,H."""
    x, y, w, h = box_of(mask)
    return f"{frame}:{x},{y},{w},{h}"


# (margin over repeat-frame-0, absolute J&F) a held-out run must reach; written on 2026-11-30,
# before the tracker was run on any held-out clip (see tests/test_masker_heldout.py).
FLOOR_FROM_MASK = (0.10, 0.50)
FLOOR_FROM_BOX = (0.05, 0.40)


def track_video_from_box(video: Path, first_mask: np.ndarray, out: Path, seed: int = 0) -> MaskRun:
    """From the box around the frame-0 mask; `seed` is the masker's (GrabCut's k-means start in
    the box's first cut)."""
    return peanut_mask(video, out, "--box", box_option(first_mask), "--seed", str(seed))


def track_video_from_mask(video: Path, first_mask_png: Path, out: Path) -> MaskRun:
    return peanut_mask(video, out, "--mask", str(first_mask_png), "--mask-frame", "0")


def track_from_box(clip: str, out: Path, seed: int = 0) -> MaskRun:
    return track_video_from_box(CLIPS[clip], truth(clip)[0], out, seed)


def track_from_mask(clip: str, out: Path) -> MaskRun:
    return track_video_from_mask(CLIPS[clip], ANNOTATED / f"{clip}_mask" / "00000.png", out)


def repeat_first(masks: list[np.ndarray]) -> list[np.ndarray]:
    """The do-nothing baseline: the true frame-0 mask on every frame."""
    return [masks[0]] * len(masks)


# -- look-alikes over held-out footage --------------------------------------------------


@dataclass(frozen=True)
class Ball:
    """A textured disc moving on a straight line (centre at the first and the last frame)."""

    colour: tuple[int, int, int]  # RGB
    start: tuple[float, float]
    end: tuple[float, float]
    radius: float
    seed: int


@dataclass(frozen=True)
class LookAlikeCase:
    clip: str  # background footage, one of CLIPS
    first: int  # first background frame
    balls: tuple[Ball, ...]
    prompt: str
    target: int  # index into balls


RED, BLUE, GREEN, PINK = (215, 40, 40), (40, 70, 200), (40, 170, 60), (230, 120, 170)
YELLOW, ORANGE = (235, 205, 40), (240, 130, 30)
LOOKALIKE_FRAMES = 24

# Written before any of them was run. The backgrounds hold real motion: a crowd in red behind a
# dancer in red, a handheld pan with traffic, a seated crowd under a panning camera, a crowd
# of pedestrians crossing.
LOOKALIKES: dict[str, LookAlikeCase] = {
    "breakdance red left": LookAlikeCase(
        "breakdance",
        0,
        (Ball(RED, (40, 60), (120, 95), 15, 21), Ball(RED, (392, 70), (310, 105), 15, 22)),
        "the red ball on the left",
        0,
    ),
    "scooter biggest blue": LookAlikeCase(
        "scooter-black",
        0,
        (
            Ball(BLUE, (60, 60), (200, 45), 20, 23),
            Ball(BLUE, (380, 50), (250, 75), 11, 24),
            Ball(YELLOW, (300, 200), (150, 185), 16, 25),
        ),
        "the biggest blue ball",
        0,
    ),
    "dance-twirl green bottom": LookAlikeCase(
        "dance-twirl",
        0,
        (
            Ball(GREEN, (60, 200), (250, 210), 14, 26),
            Ball(GREEN, (380, 40), (200, 60), 14, 27),
            Ball(PINK, (200, 120), (330, 150), 16, 28),
        ),
        "the green ball at the bottom",
        0,
    ),
    "hk smallest orange": LookAlikeCase(
        "hk_crossing",
        8,
        (Ball(ORANGE, (100, 200), (250, 150), 9, 29), Ball(ORANGE, (300, 90), (120, 100), 17, 30)),
        "the smallest orange ball",
        0,
    ),
}


def _ball_texture(ball: Ball) -> np.ndarray:
    """The ball's colour with a seeded, smooth grain (a flat disc would be too easy to segment)."""
    side = int(2 * ball.radius + 3)
    grain = cv2.GaussianBlur(np.random.default_rng(ball.seed).normal(0, 1, (side, side, 3)), (0, 0), 1.5)
    grain *= 16.0 / max(float(grain.std()), 1e-6)
    return np.clip(np.array(ball.colour, np.float64) + grain, 0, 255)


def composite_lookalikes(case: LookAlikeCase) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(frames, the target's visible mask per frame): the balls drawn over the clip in list
    order (a later ball hides an earlier one), LOOKALIKE_FRAMES frames from `case.first`."""
    background = read_video(CLIPS[case.clip])[case.first : case.first + LOOKALIKE_FRAMES]
    if len(background) < LOOKALIKE_FRAMES:
        raise ValueError(f"{case.clip} has too few frames after {case.first}")
    textures = [_ball_texture(b) for b in case.balls]
    frames, target_masks = [], []
    h, w = background[0].shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for t, image in enumerate(background):
        a = t / (LOOKALIKE_FRAMES - 1)
        frame = image.astype(np.float64)
        owner = np.full((h, w), -1)
        for k, (ball, texture) in enumerate(zip(case.balls, textures, strict=True)):
            cx = ball.start[0] + a * (ball.end[0] - ball.start[0])
            cy = ball.start[1] + a * (ball.end[1] - ball.start[1])
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= ball.radius**2
            # The texture moves with the ball: pixel (x, y) takes texel (x - left, y - top).
            left, top = int(round(cx - ball.radius)) - 1, int(round(cy - ball.radius)) - 1
            ty = np.clip(yy[disc] - top, 0, texture.shape[0] - 1)
            tx = np.clip(xx[disc] - left, 0, texture.shape[1] - 1)
            frame[disc] = texture[ty, tx]
            owner[disc] = k
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        target_masks.append(owner == case.target)
    return frames, target_masks


def write_frames(frames: list[np.ndarray], folder: Path) -> Path:
    """A PNG frame folder (the CLI's other kind of source)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        if not cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {folder / f'{i:05d}.png'}")
    return folder


def run_lookalike(case: LookAlikeCase, work: Path) -> tuple[MaskRun, list[np.ndarray]]:
    """Composite the case into work/frames, mask it from its prompt with --approximate."""
    frames, target = composite_lookalikes(case)
    source = write_frames(frames, work / "frames")
    return peanut_mask(source, work / "masks", "--prompt", case.prompt, "--approximate"), target


# -- strips -----------------------------------------------------------------------------


def strip(
    frames: list[np.ndarray], truth_masks: list[np.ndarray], rows: dict[str, list[np.ndarray]], count: int = 8
) -> np.ndarray:
    """BGR picture: `count` frames spread over the clip, one row per entry of `rows`, the
    true outline in green and that row's mask outline in red, frame number and per-frame J."""
    from peanut_server.metrics.masks import jaccard

    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    lines = []
    for name, masks in rows.items():
        tiles = []
        for i in picks:
            tile = cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR)
            for mask, colour in ((truth_masks[i], (0, 220, 0)), (masks[i], (0, 0, 255))):
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(tile, contours, -1, colour, 1)
            label = f"{name} {i} J={jaccard(masks[i], truth_masks[i]):.2f}"
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3)
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1)
            tiles.append(tile)
        lines.append(np.hstack(tiles))
    return np.vstack(lines)
