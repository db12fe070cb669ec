"""`peanut demo`: a sample clip the project makes itself, cleaned end to end.

The clip is a slow camera pan over a textured landscape with a red ball
crossing it. The job is the product's main one: the prompt "the red ball"
becomes a mask on every frame (P-MASK), the ball is erased at working
resolution (NOF-Eraser) and the cleaned region is brought back to source
resolution (UR-Net). Because the clip is synthetic, the true mask and the
true background behind the ball are known, so the demo reports how well the
mask matches (J&F) and how close the fill came (PSNR inside the removed
region), besides writing the cleaned frames and a before/after strip.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FRAMES, FPS = 854, 480, 48, 25
PAN_PER_FRAME = 3
BALL_RADIUS = 34
PROMPT = "the red ball"
# Everything the demo writes into its folder; an earlier demo's are kept unless --overwrite.
OUTPUTS = ("sample.mp4", "true_masks", "cleaned", "cleaned_matte", "before_after.png")


def _texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth multi-octave colour noise with some structure (ridges), as a landscape stand-in."""
    out = np.zeros((height, width, 3), np.float32)
    for octave, weight in ((8, 0.55), (24, 0.25), (72, 0.12), (216, 0.08)):
        small = rng.random((max(2, height * octave // width), octave, 3)).astype(np.float32)
        out += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    sky = np.clip(1.2 - 2.5 * ys, 0, 1)[..., None] * np.array([0.55, 0.7, 0.95], np.float32)
    ground = out * np.array([0.55, 0.75, 0.45], np.float32)
    image = sky + (1 - np.clip(1.2 - 2.5 * ys, 0, 1))[..., None] * ground
    ridges = (np.sin(np.arange(width, dtype=np.float32) / 9.0) > 0.92)[None, :, None] * (ys > 0.45)[..., None]
    image = image * (1 - 0.35 * ridges)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def make_sample(folder: Path, seed: int = 7) -> tuple[Path, Path, list[np.ndarray]]:
    """Write sample.mp4 and true_masks/ (PNG per frame); return them and the true backgrounds."""
    import av

    rng = np.random.default_rng(seed)
    world = _texture(WIDTH + PAN_PER_FRAME * FRAMES + 8, HEIGHT, rng)
    folder.mkdir(parents=True, exist_ok=True)
    masks_dir = folder / "true_masks"
    masks_dir.mkdir(exist_ok=True)
    video_path = folder / "sample.mp4"
    backgrounds = []
    with av.open(str(video_path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for t in range(FRAMES):
            background = world[:, t * PAN_PER_FRAME : t * PAN_PER_FRAME + WIDTH].copy()
            backgrounds.append(background)
            frame = background.copy()
            cx = int(120 + t * (WIDTH - 240) / (FRAMES - 1))
            cy = int(HEIGHT * 0.62 + 40 * np.sin(t / 6.0))
            cv2.circle(frame, (cx, cy), BALL_RADIUS, (215, 30, 25), -1, cv2.LINE_AA)
            cv2.circle(frame, (cx - 10, cy - 12), 9, (250, 140, 130), -1, cv2.LINE_AA)
            mask = np.zeros((HEIGHT, WIDTH), np.uint8)
            cv2.circle(mask, (cx, cy), BALL_RADIUS + 3, 255, -1)
            cv2.imwrite(str(masks_dir / f"mask_{t:04d}.png"), mask)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return video_path, masks_dir, backgrounds


def _strip(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.concatenate([before, np.full((before.shape[0], 8, 3), 255, np.uint8), after], axis=1)


def run_demo(args: argparse.Namespace) -> int:
    from .api import peanut_pb2 as pb
    from .cli import EXIT_OK, ProgressPrinter, finish_job, follow, run_local
    from .client import PeanutClient
    from .errors import OutputExists
    from .media import frame_filename, open_source

    folder = Path(args.output_dir).resolve()
    earlier = [name for name in OUTPUTS if (folder / name).exists()]
    if earlier and not args.overwrite:
        raise OutputExists(
            f"{folder} holds an earlier demo's {', '.join(earlier)}; pass --overwrite to replace "
            "them, or -o another folder"
        )
    print(f"making a sample clip in {folder}", file=sys.stderr)
    video, masks_dir, backgrounds = make_sample(folder)
    output = folder / "cleaned"
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=str(video), start_frame=0),
        # "ball" is a noun the no-weights masker cannot check: the demo accepts the best match
        # on "red" (the job result names the ignored word); a learned masker reads it.
        mask=pb.MaskSpec(text=PROMPT, approximate=True),
        mode=pb.MODE_REMOVE,
        # The matte is scored against the true masks below: ask for the object's own mask.
        output=pb.OutputSpec(path=str(output), overwrite=args.overwrite, matte_mode=pb.MATTE_MODE_OBJECT),
        client="demo",
    )
    progress = ProgressPrinter(quiet=args.quiet)
    if args.server:
        with PeanutClient(args.server, state_dir=args.state_dir) as client:
            job = follow(client, client.submit_request(request), progress)
    else:
        job = run_local(request, progress)
    code = finish_job(job, as_json=False, progress=progress)
    if code != EXIT_OK:
        return code

    from .metrics.masks import evaluate

    matte = Path(job.result.matte_path)
    predicted = [cv2.imread(str(matte / frame_filename(t)), cv2.IMREAD_GRAYSCALE) > 127 for t in range(FRAMES)]
    truth = [cv2.imread(str(masks_dir / f"mask_{t:04d}.png"), cv2.IMREAD_GRAYSCALE) > 0 for t in range(FRAMES)]
    scores = evaluate(predicted, truth)
    errors, shown = [], None
    with open_source(str(video)) as source:
        for t, frame in enumerate(source.frames(0, FRAMES)):
            cleaned = cv2.cvtColor(cv2.imread(str(output / frame_filename(t))), cv2.COLOR_BGR2RGB)
            inside = truth[t]
            diff = cleaned[inside].astype(np.float64) - backgrounds[t][inside].astype(np.float64)
            errors.append(np.mean(diff**2))
            if t == FRAMES // 2:
                shown = _strip(frame, cleaned)
    psnr = 10 * np.log10(255.0**2 / max(np.mean(errors), 1e-9))
    strip_path = folder / "before_after.png"
    cv2.imwrite(str(strip_path), cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
    print(f"mask from the prompt {PROMPT!r} vs. the true mask: J&F {scores.JF:.3f}")
    print(f"PSNR inside the removed region vs. the true background: {psnr:.1f} dB")
    print(f"before/after: {strip_path}")
    return EXIT_OK
