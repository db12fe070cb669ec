"""The eraser's table: how well a completed video matches the original, and how stable it is.

Columns (as in the method's eraser table):
- PSNR (dB) and SSIM, mean and standard deviation over frames, of whole
  frames against the ground truth (pixels outside the hole are identical, so
  differences in dB are the same as over the hole alone).
- Sobel sharpness: mean squared gradient magnitude (Sobel 3x3, grey levels
  0..255) over the interior of the hole's bounding box; a smeared fill scores
  lower than the original.
- FFT blur score: the share of the spectral energy (DC removed) below
  BLUR_RADIUS cycles/pixel, over the hole's bounding box; higher = blurrier.
- FFT artefact score: the share above ARTEFACT_RADIUS cycles/pixel (blocking,
  ringing, noise live near the Nyquist frequency); higher = more artefacts.
- TC, temporal consistency: mean SSIM between consecutive frames of the
  video (1 = frozen); reported beside the ground truth's own TC.
- Ewarp, flow warping error (Lai et al., ECCV 2018): the mean over frame pairs
  of the squared difference (RGB in 0..1, averaged over channels) between
  frame t and frame t+1 warped back along the flow, over the pixels where
  forward and backward flow agree (not occluded). The flow comes from the
  ground truth when it is given, so every video is judged on the same motion.
- runtime in seconds per frame, when the caller timed the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from skimage.metrics import structural_similarity

BLUR_RADIUS = 0.125  # cycles per pixel (Nyquist is 0.5)
ARTEFACT_RADIUS = 0.375
OCCLUSION_REL = 0.01  # forward-backward check, as in the eraser
OCCLUSION_ABS = 0.5


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM (Wang et al. 2004) with Gaussian windows, sigma 1.5, as in the paper."""
    return float(
        structural_similarity(
            a,
            b,
            data_range=data_range,
            channel_axis=-1 if a.ndim == 3 else None,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return frame.astype(np.float64)


def sobel_sharpness(frame: np.ndarray) -> float:
    """Mean of gx^2 + gy^2 (Sobel 3x3) over the pixels not on the border."""
    g = _gray(frame)
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3)[1:-1, 1:-1]
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3)[1:-1, 1:-1]
    return float(np.mean(gx**2 + gy**2))


def _spectrum_shares(frame: np.ndarray) -> tuple[float, float]:
    g = _gray(frame)
    g = g - g.mean()
    power = np.abs(np.fft.fft2(g)) ** 2
    fy = np.fft.fftfreq(g.shape[0])[:, None]
    fx = np.fft.fftfreq(g.shape[1])[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    total = power[radius > 0].sum()
    if total <= 0:
        return 0.0, 0.0
    return float(power[(radius > 0) & (radius < BLUR_RADIUS)].sum() / total), float(
        power[radius > ARTEFACT_RADIUS].sum() / total
    )


def fft_blur(frame: np.ndarray) -> float:
    """Share of spectral energy below BLUR_RADIUS cycles/pixel (1 = only coarse content)."""
    return _spectrum_shares(frame)[0]


def fft_artefact(frame: np.ndarray) -> float:
    """Share of spectral energy above ARTEFACT_RADIUS cycles/pixel."""
    return _spectrum_shares(frame)[1]


def temporal_consistency(frames: np.ndarray) -> float:
    """Mean SSIM between consecutive frames."""
    if len(frames) < 2:
        return 1.0
    return float(np.mean([ssim(frames[t], frames[t + 1]) for t in range(len(frames) - 1)]))


def warp_back(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """frame (of time t+1) sampled at x + flow(x): brought onto frame t's grid."""
    height, width = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(frame, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def non_occluded(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose forward flow is confirmed by the backward flow of t+1."""
    back = warp_back(backward, forward)
    mismatch = np.sum((forward + back) ** 2, axis=-1)
    scale = np.sum(forward**2, axis=-1) + np.sum(back**2, axis=-1)
    height, width = forward.shape[:2]
    gx, gy = np.meshgrid(np.arange(width), np.arange(height))
    tx, ty = gx + forward[..., 0], gy + forward[..., 1]
    inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
    return inside & (mismatch < OCCLUSION_REL * scale + OCCLUSION_ABS)


def warping_error(frames: np.ndarray, forward: np.ndarray, backward: np.ndarray) -> float:
    """Ewarp of `frames` (T, H, W, 3) uint8 along the given flows (T-1, H, W, 2)."""
    errors = []
    for t in range(len(frames) - 1):
        valid = non_occluded(forward[t], backward[t])
        if not valid.any():
            continue
        a = frames[t].astype(np.float32) / 255.0
        b = warp_back(frames[t + 1].astype(np.float32) / 255.0, forward[t])
        errors.append(float(np.mean(((a - b) ** 2)[valid])))
    return float(np.mean(errors)) if errors else 0.0


def video_flows(frames: np.ndarray, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    from ..flow import get_estimator

    return get_estimator(method).window(frames)


@dataclass
class CompletionScores:
    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    sharpness: float
    blur: float
    artefact: float
    tc: float
    ewarp: float
    seconds_per_frame: float | None = None
    gt_tc: float | None = None
    gt_ewarp: float | None = None
    gt_sharpness: float | None = None
    gt_blur: float | None = None
    gt_artefact: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def hole_box(masks: np.ndarray | None, shape: tuple[int, int], margin: int = 4) -> tuple[slice, slice]:
    """Bounding box of all holes (plus a margin), or the whole frame without masks."""
    if masks is None or not np.any(masks):
        return slice(0, shape[0]), slice(0, shape[1])
    ys, xs = np.nonzero(np.any(masks, axis=0))
    return (
        slice(max(ys.min() - margin, 0), min(ys.max() + margin + 1, shape[0])),
        slice(max(xs.min() - margin, 0), min(xs.max() + margin + 1, shape[1])),
    )


def evaluate(
    frames: np.ndarray,
    gt: np.ndarray,
    masks: np.ndarray | None = None,
    *,
    seconds: float | None = None,
    flows: tuple[np.ndarray, np.ndarray] | None = None,
) -> CompletionScores:
    """Score completed frames (T, H, W, 3) uint8 against the ground truth.

    `flows` (forward, backward) of the ground truth may be passed to avoid
    recomputing them; otherwise DIS flow of the ground truth is used.
    """
    if frames.shape != gt.shape:
        raise ValueError(f"completed frames {frames.shape} and ground truth {gt.shape} differ")
    # Identical frames have infinite PSNR; cap at 100 dB so means stay finite.
    psnrs = [min(psnr(a, b), 100.0) for a, b in zip(frames, gt)]
    ssims = [ssim(a, b) for a, b in zip(frames, gt)]
    box = hole_box(masks, frames.shape[1:3])
    crop = frames[:, box[0], box[1]]
    gt_crop = gt[:, box[0], box[1]]
    shares = [_spectrum_shares(f) for f in crop]
    gt_shares = [_spectrum_shares(f) for f in gt_crop]
    forward, backward = flows if flows is not None else video_flows(gt)
    return CompletionScores(
        psnr=float(np.mean(psnrs)),
        psnr_std=float(np.std(psnrs)),
        ssim=float(np.mean(ssims)),
        ssim_std=float(np.std(ssims)),
        sharpness=float(np.mean([sobel_sharpness(f) for f in crop])),
        blur=float(np.mean([s[0] for s in shares])),
        artefact=float(np.mean([s[1] for s in shares])),
        tc=temporal_consistency(frames),
        ewarp=warping_error(frames, forward, backward),
        seconds_per_frame=None if seconds is None else seconds / max(len(frames), 1),
        gt_tc=temporal_consistency(gt),
        gt_ewarp=warping_error(gt, forward, backward),
        gt_sharpness=float(np.mean([sobel_sharpness(f) for f in gt_crop])),
        gt_blur=float(np.mean([s[0] for s in gt_shares])),
        gt_artefact=float(np.mean([s[1] for s in gt_shares])),
    )


COLUMNS = (
    ("PSNR", "psnr", "{:.2f}"),
    ("±", "psnr_std", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("±", "ssim_std", "{:.4f}"),
    ("sharp", "sharpness", "{:.0f}"),
    ("blur", "blur", "{:.3f}"),
    ("artef", "artefact", "{:.4f}"),
    ("TC", "tc", "{:.4f}"),
    ("Ewarp*1e3", "ewarp", "{:.3f}"),
    ("s/frame", "seconds_per_frame", "{:.3f}"),
)


def format_table(rows: Sequence[tuple[str, CompletionScores]]) -> str:
    """A plain-text table, one row per (name, scores); Ewarp shown x1000."""
    header = ["method"] + [c[0] for c in COLUMNS]
    lines = []
    for name, scores in rows:
        cells = [name]
        for _, attr, fmt in COLUMNS:
            value = getattr(scores, attr)
            if value is None:
                cells.append("-")
            else:
                cells.append(fmt.format(value * 1000 if attr == "ewarp" else value))
        lines.append(cells)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt_row = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt_row(header), fmt_row(["-" * w for w in widths]), *map(fmt_row, lines)])


def ground_truth_row(scores: CompletionScores) -> CompletionScores:
    """The ground truth's own TC / Ewarp / sharpness as a table row."""
    return CompletionScores(
        psnr=math.inf,
        psnr_std=0.0,
        ssim=1.0,
        ssim_std=0.0,
        sharpness=scores.gt_sharpness or 0.0,
        blur=scores.gt_blur or 0.0,
        artefact=scores.gt_artefact or 0.0,
        tc=scores.gt_tc or 0.0,
        ewarp=scores.gt_ewarp or 0.0,
    )
