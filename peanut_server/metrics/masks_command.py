"""`peanut eval masks PRED GT`: the masker's quality table (J, F, J&F, temporal IoU, connectivity).

PRED and GT are mask folders (one image per frame, any value above half-range
is object) compared frame by frame in name order; the first min(len) frames
are scored when the counts differ, and the output says so. Hook it into the
CLI with `register_masks_eval(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator

import cv2
import numpy as np

from ..errors import MaskError, MediaNotFound

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr")


def _mask_files(path: str) -> list[str]:
    from ..media.source import list_images

    if os.path.isdir(path):
        names = list_images(path)
        if not names:
            raise MediaNotFound(f"no mask images in {path}")
        return [os.path.join(path, n) for n in names]
    if os.path.isfile(path) and path.lower().endswith(_IMAGE_EXT):
        return [path]
    raise MediaNotFound(f"{path} is neither a folder of masks nor a mask image")


def _masks(files: list[str], size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    from ..media.masks import read_mask

    for file in files:
        mask = read_mask(file)
        if size is not None and (mask.shape[1], mask.shape[0]) != size:
            # Predictions made at another resolution are compared at the ground truth's.
            mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        yield mask.astype(bool)


def evaluate_folders(pred: str, gt: str) -> dict[str, float]:
    from ..metrics.masks import evaluate

    pred_files, gt_files = _mask_files(pred), _mask_files(gt)
    n = min(len(pred_files), len(gt_files))
    first = next(_masks(gt_files[:1]))
    size = (first.shape[1], first.shape[0])
    try:
        scores = evaluate(_masks(pred_files[:n], size), _masks(gt_files[:n]))
    except ValueError as exc:
        raise MaskError(f"cannot compare {pred} with {gt}: {exc}") from exc
    table = scores.as_dict()
    table["pred_frames"], table["gt_frames"] = len(pred_files), len(gt_files)
    return table


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="folder of predicted masks (or one mask image)")
    parser.add_argument("gt", metavar="GT", help="folder of ground-truth masks (or one mask image)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def _run(args: argparse.Namespace) -> int:
    table = evaluate_folders(args.pred, args.gt)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    if table["pred_frames"] != table["gt_frames"]:
        print(
            f"note: {table['pred_frames']} predicted vs {table['gt_frames']} ground-truth frames; "
            f"scored the first {table['frames']}"
        )
    for key in ("frames", "J&F", "J", "F", "J_recall", "temporal_iou", "temporal_iou_gt", "connectivity"):
        value = table[key]
        print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return 0


def register_masks_eval(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `peanut eval masks PRED GT` to the CLI's top-level subparsers."""
    from ..metrics.commands import add_eval_command

    return add_eval_command(
        subparsers,
        "masks",
        _configure,
        _run,
        help="score predicted masks against ground truth (J, F, J&F, temporal IoU)",
    )
