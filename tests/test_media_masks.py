"""Masks in: static image, folder, video; count, aspect, emptiness checks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.errors import MaskError, MediaError, MediaNotFound
from peanut_server.media import MediaInfo, check_masks, open_masks, probe
from peanut_server.media.masks import mask_from_image
from tests.clips import make_object_clip


def _info(n: int = 10, w: int = 64, h: int = 48, path: str = "/src/clip.mp4") -> MediaInfo:
    return MediaInfo(path=path, width=w, height=h, frame_count=n, fps=Fraction(25), is_folder=False)


def _square(w: int, h: int, x0: int, y0: int, x1: int, y1: int, value: int = 255) -> np.ndarray:
    image = np.zeros((h, w), np.uint8)
    image[y0:y1, x0:x1] = value
    return image


def _mask_folder(path: Path, n: int, w: int = 64, h: int = 48) -> Path:
    path.mkdir()
    for i in range(n):
        # mask i covers column block i: tells which mask was used for which frame
        cv2.imwrite(str(path / f"m_{i}.png"), _square(w, h, i * w // 16, 0, (i + 1) * w // 16, h))
    return path


def _column(mask: np.ndarray) -> int:
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0] * 16 // mask.shape[1])


def test_static_image_scale_only_resized_nearest(tmp_path: Path) -> None:
    info = _info(10, 96, 64)
    path = tmp_path / "m.png"
    cv2.imwrite(str(path), _square(48, 32, 10, 5, 20, 15))  # half size, same aspect
    check = check_masks(str(path), info, 2, 7)
    assert (check.kind, check.count, check.size) == ("image", 1, (48, 32))
    masks = list(open_masks(str(path), info, 2, 7).frames())
    assert len(masks) == 5
    expected = np.zeros((64, 96), bool)
    expected[10:30, 20:40] = True  # nearest-neighbour: hard edges, exact doubling
    for mask in masks:
        assert mask.dtype == bool and mask.shape == (64, 96)
        assert np.array_equal(mask, expected)


def test_folder_indexed_by_range_or_by_source_frame(tmp_path: Path) -> None:
    info = _info(10)
    per_range = _mask_folder(tmp_path / "range", 4)
    masks = list(open_masks(str(per_range), info, 3, 7).frames())
    assert [_column(m) for m in masks] == [0, 1, 2, 3]
    per_clip = _mask_folder(tmp_path / "clip", 10)
    check = check_masks(str(per_clip), info, 3, 7)
    assert check.kind == "folder" and check.count == 10 and check.offset == 3
    masks = list(open_masks(str(per_clip), info, 3, 7).frames())
    assert [_column(m) for m in masks] == [3, 4, 5, 6]


def test_wrong_count_and_aspect(tmp_path: Path) -> None:
    info = _info(10)
    folder = _mask_folder(tmp_path / "seven", 7)
    with pytest.raises(MaskError, match=r"7 masks.*4 frames.*10"):
        check_masks(str(folder), info, 3, 7)
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), _square(64, 32, 0, 0, 10, 10))
    with pytest.raises(MaskError, match=r"64x32.*64x48.*aspect"):
        check_masks(str(wide), info, 0, 10)
    # Source 972x540 with a 432x240 mask (the shared data's case): same aspect, fine.
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), _square(432, 240, 0, 0, 10, 10))
    assert check_masks(str(ok), _info(3, 972, 540), 0, 3).size == (432, 240)


def test_empty_missing_unreadable(tmp_path: Path) -> None:
    info = _info(5)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((48, 64), 100, np.uint8))  # grey below threshold
    with pytest.raises(MaskError, match="mask is empty: nothing to remove"):
        check_masks(str(blank), info, 0, 5)
    with pytest.raises(MediaNotFound, match="gone.png"):
        check_masks(str(tmp_path / "gone.png"), info, 0, 5)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(MediaError, match="broken.png"):
        check_masks(str(broken), info, 0, 5)
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"")
    with pytest.raises(MediaError, match="0 bytes"):
        check_masks(str(zero), info, 0, 5)
    # A folder whose range masks are all empty, though another mask is not.
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), _square(64, 48, 0, 0, 5, 5, 255 if i == 0 else 0))
    with pytest.raises(MaskError, match="empty"):
        check_masks(str(folder), info, 1, 5)  # 5 masks = clip: indexed by source frame


def test_threshold_colour_and_alpha() -> None:
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[0, 0] = (0, 0, 200)  # red only: object
    bgr[1, 1] = (120, 120, 120)  # grey below threshold: background
    assert mask_from_image(bgr).sum() == 1 and mask_from_image(bgr)[0, 0]
    bgra = np.dstack([np.full((4, 4, 3), 255, np.uint8), np.zeros((4, 4), np.uint8)])
    bgra[2, 3, 3] = 255  # transparent everywhere but one pixel: alpha is the matte
    assert np.argwhere(mask_from_image(bgra)).tolist() == [[2, 3]]
    opaque = np.dstack([bgr, np.full((4, 4), 255, np.uint8)])
    assert np.array_equal(mask_from_image(opaque), mask_from_image(bgr))
    assert mask_from_image(np.full((2, 2), 40000, np.uint16)).all()


def test_mask_video_streams_and_matches_folder(tmp_path: Path, shared_data: Path) -> None:
    clip = make_object_clip(tmp_path / "obj", shared_data / "davis" / "tennis" / "00000.png", n_frames=8, size=(96, 64))
    info = probe(str(clip.frames))
    video = tmp_path / "masks.mkv"
    with av.open(str(video), "w") as out:  # lossless mask video, one per source frame
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "gray"
        for i in range(8):
            grey = cv2.imread(str(clip.masks / f"frame_{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
            for packet in stream.encode(av.VideoFrame.from_ndarray(grey, format="gray")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    check = check_masks(str(video), info, 2, 6)
    assert check.kind == "video" and check.count == 8 and check.offset == 2
    from_video = list(open_masks(str(video), info, 2, 6).frames())
    from_folder = list(open_masks(str(clip.masks), info, 2, 6).frames())
    assert len(from_video) == 4
    for a, b in zip(from_video, from_folder):
        assert a.any() and np.array_equal(a, b)
    assert not np.array_equal(from_video[0], from_video[3])  # the object moves
