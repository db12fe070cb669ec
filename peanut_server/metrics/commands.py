"""`peanut eval ...`: quality tables. Each metrics concern adds its sub-command
with `add_eval_command`, which creates the shared `eval` parser once.

`peanut eval completion FRAMES_DIR MASKS_DIR --gt FRAMES_DIR` scores completed
frames against the original ones (the eraser's table).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..errors import InvalidRequest, MediaError, MediaNotFound

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr")


def get_eval_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-parsers of `peanut eval`, created on first use, so every module that adds
    an eval command shares one `eval` parser.

    They are kept on the `subparsers` object itself. A module-level table keyed by
    id(subparsers) handed a dead parser's `eval` to a new parser that reused its
    address, and adding `completion` again then failed ("conflicting subparser").
    """
    sub = getattr(subparsers, "_peanut_eval", None)
    if sub is None:
        parser = subparsers.add_parser("eval", help="quality tables (completion, masks)")
        sub = parser.add_subparsers(dest="eval_command", metavar="TABLE")
        sub.required = True
        subparsers._peanut_eval = sub
    return sub


def add_eval_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    configure: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    help: str = "",
) -> argparse.ArgumentParser:
    """Add `peanut eval NAME`: `configure` adds its arguments, `run(args)` returns the exit code."""
    parser = get_eval_subparsers(subparsers).add_parser(name, help=help)
    configure(parser)
    parser.set_defaults(func=run)
    return parser


def read_image_folder(folder: str | Path, *, gray: bool = False) -> np.ndarray:
    """Every image of a folder, sorted by name: (T, H, W, 3) RGB or (T, H, W) grey uint8."""
    path = Path(folder)
    if not path.is_dir():
        raise MediaNotFound(f"{folder} is not a folder of images")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MediaNotFound(f"no images in {folder}")
    images = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError(f"cannot read {file}")
        images.append(image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise MediaError(f"images in {folder} differ in size: {sorted(shapes)}")
    return np.stack(images)


def _configure_completion(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("frames", metavar="FRAMES_DIR", help="completed frames (images, sorted by name)")
    parser.add_argument(
        "masks", metavar="MASKS_DIR", help="hole masks (255 = hole); one image = the same mask for every frame"
    )
    parser.add_argument("--gt", required=True, metavar="FRAMES_DIR", help="the original frames")
    parser.add_argument("--seconds", type=float, default=None, help="wall time of the run, for the s/frame column")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")


def _run_completion(args: argparse.Namespace) -> int:
    from .completion import evaluate, format_table, ground_truth_row

    frames = read_image_folder(args.frames)
    gt = read_image_folder(args.gt)
    masks = read_image_folder(args.masks, gray=True) > 127
    if frames.shape != gt.shape:
        raise InvalidRequest(
            f"{args.frames} has {frames.shape[0]} frames of {frames.shape[1:3]}, "
            f"{args.gt} has {gt.shape[0]} of {gt.shape[1:3]}"
        )
    if len(masks) == 1:
        masks = np.repeat(masks, len(frames), axis=0)
    if len(masks) != len(frames):
        raise InvalidRequest(f"{len(masks)} masks for {len(frames)} frames")
    if masks.shape[1:] != frames.shape[1:3]:
        size = (frames.shape[2], frames.shape[1])
        masks = np.stack([cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for m in masks])
    scores = evaluate(frames, gt, masks, seconds=args.seconds)
    if args.json:
        print(json.dumps(scores.as_dict(), indent=2))
    else:
        print(
            format_table([(Path(args.frames).name or "completed", scores), ("ground truth", ground_truth_row(scores))])
        )
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    add_eval_command(
        subparsers,
        "completion",
        _configure_completion,
        _run_completion,
        help="PSNR/SSIM/sharpness/blur/artefact/TC/Ewarp of completed frames against the originals",
    )
