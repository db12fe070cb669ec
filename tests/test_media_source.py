"""Frame accuracy and bad input for peanut_server.media.source."""

from __future__ import annotations

import random
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.errors import MediaError, MediaNotFound, RangeError
from peanut_server.media import open_source, probe, validate_range
from tests.clips import decode_index, index_frame, make_index_clip, make_index_folder, remux_cut

N = 40
GOP = 12
# Starts at a keyframe, just before/after one, and inside GOPs; lengths 1..rest.
STARTS = [0, 1, 5, 11, 12, 13, 17, 23, 25, 36, N - 1]


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001
        return False


def _check_ranges(path: Path, n: int = N) -> None:
    info = probe(str(path))
    assert info.frame_count == n
    with open_source(str(path)) as src:
        for start in STARTS:
            for end in (start + 1, min(start + 4, n), n):
                got = [decode_index(f) for f in src.frames(start, end)]
                assert got == list(range(start, end)), (path.name, start, end, got)
        # Random access in shuffled order (each read is a fresh seek).
        order = list(range(n))
        random.Random(0).shuffle(order)
        for i in order[:15]:
            assert decode_index(src.read(i)) == i
        # Consecutive reads continue one decode run and stay exact.
        assert [decode_index(src.read(i)) for i in range(7, 16)] == list(range(7, 16))


def _open_gop_present(path: Path) -> bool:
    """True when a keyframe is followed, in decode order, by a frame shown before it."""
    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
    for k, (pts, key) in enumerate(packets):
        if key and k > 0 and any(p < pts for p, _ in packets[k + 1 : k + 4]):
            return True
    return False


CLIPS = {
    "h264_bframes_open_gop.mp4": dict(codec="libx264", bframes=3, open_gop=True),
    "h264_bframes.mov": dict(codec="libx264", bframes=2),
    "h264_start_pts.mp4": dict(codec="libx264", bframes=2, start_pts=5000),
    "h264_start_pts.mov": dict(codec="libx264", bframes=2, start_pts=777),
    "h264.ts": dict(codec="libx264", bframes=2),  # MPEG-TS starts at 1.4 s by default
    "prores.mov": dict(codec="prores_ks"),
}


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_frame_accuracy_video(tmp_path: Path, name: str) -> None:
    path = make_index_clip(tmp_path / name, N, gop=GOP, **CLIPS[name])
    _check_ranges(path)


@pytest.mark.skipif(not _has_encoder("libx265"), reason="this FFmpeg build has no HEVC encoder")
def test_frame_accuracy_hevc_open_gop(tmp_path: Path) -> None:
    path = make_index_clip(tmp_path / "hevc.mkv", N, codec="libx265", gop=GOP, bframes=3, open_gop=True)
    assert _open_gop_present(path), "clip should have open-GOP leading frames"
    _check_ranges(path)
    mp4 = make_index_clip(tmp_path / "hevc.mp4", N, codec="libx265", gop=GOP, bframes=3, open_gop=True)
    _check_ranges(mp4)


def test_edit_list_cut_hides_leading_frames(tmp_path: Path) -> None:
    # A stream-copy cut mid-GOP: the decoder needs frames 12..16, but the clip starts at 17.
    src = make_index_clip(tmp_path / "src.mp4", N, gop=GOP, bframes=2)
    cut = remux_cut(src, tmp_path / "cut.mp4", 17)
    with av.open(str(cut)) as c:
        assert any(p.is_discard for p in c.demux(video=0) if p.size)  # an edit list is in play
    info = probe(str(cut))
    assert info.frame_count == N - 17
    with open_source(str(cut)) as src_:
        assert [decode_index(f) for f in src_.frames(0, 6)] == list(range(17, 23))
        assert [decode_index(src_.read(i)) for i in (20, 0, 9)] == [37, 17, 26]


def test_interleaved_readers_refused_not_wrong(tmp_path: Path) -> None:
    path = make_index_clip(tmp_path / "c.mp4", 20, gop=5)
    with open_source(str(path)) as src:
        a = src.frames(0, 10)
        assert decode_index(next(a)) == 0
        b = src.frames(12, 15)
        assert [decode_index(f) for f in b] == [12, 13, 14]
        with pytest.raises(RuntimeError, match="took over"):
            next(a)
        assert decode_index(src.read(3)) == 3  # a fresh call works again


def test_first_pts_not_zero_is_frame_zero(tmp_path: Path) -> None:
    for name in ("s.mov", "s.mp4", "s.ts"):
        path = make_index_clip(tmp_path / name, 10, gop=5, start_pts=3000)
        info = probe(str(path))
        assert info.start_pts > 0
        with open_source(str(path)) as src:
            assert decode_index(src.read(0)) == 0


def test_frame_folder_natural_order(tmp_path: Path) -> None:
    folder = make_index_folder(tmp_path / "frames", 12)
    (folder / "notes.txt").write_text("not a frame")
    info = probe(str(folder))
    assert info.is_folder and info.frame_count == 12 and (info.width, info.height) == (64, 48)
    assert info.frame_files[:3] == ("frame_0.png", "frame_1.png", "frame_2.png")
    assert info.frame_files.index("frame_10.png") == 10
    with open_source(str(folder)) as src:
        assert [decode_index(f) for f in src.frames(3, 12)] == list(range(3, 12))
        frame = src.read(5)
        assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
        assert np.array_equal(frame, index_frame(5))  # PNG: exact, RGB order


def test_frame_folder_jpg_alpha_16bit(tmp_path: Path) -> None:
    jpg = make_index_folder(tmp_path / "jpg", 5, ext="jpg")
    with open_source(str(jpg)) as src:
        assert [decode_index(f) for f in src.frames(0, 5)] == list(range(5))
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    for i in range(3):
        bgr = cv2.cvtColor(index_frame(i), cv2.COLOR_RGB2BGR)
        bgra = np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)])
        cv2.imwrite(str(rgba / f"f{i}.png"), bgra)
        cv2.imwrite(str(rgba / f"g{i}.tif"), bgr.astype(np.uint16) * 257)
    with open_source(str(rgba)) as src:
        frames = list(src.frames(0, 6))
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert [decode_index(f) for f in frames] == [0, 1, 2, 0, 1, 2]
    assert np.array_equal(frames[1], index_frame(1)) and np.array_equal(frames[4], index_frame(1))


def test_ten_bit_alpha_odd_size_rotation(tmp_path: Path) -> None:
    ten = make_index_clip(tmp_path / "ten.mp4", 8, gop=4, pix_fmt="yuv420p10le")
    info = probe(str(ten))
    assert info.pix_fmt == "yuv420p10le->rgb24"
    with open_source(str(ten)) as src:
        assert [decode_index(f) for f in src.frames(2, 8)] == list(range(2, 8))

    alpha = make_index_clip(tmp_path / "alpha.mov", 6, codec="prores_ks", pix_fmt="yuva444p10le")
    with open_source(str(alpha)) as src:
        frame = src.read(3)
    assert frame.shape == (48, 64, 3) and decode_index(frame) == 3

    odd = make_index_clip(tmp_path / "odd.mkv", 6, size=(67, 49), codec="ffv1")
    info = probe(str(odd))
    assert (info.width, info.height) == (67, 49)
    with open_source(str(odd)) as src:
        assert np.array_equal(src.read(4), index_frame(4, (67, 49)))  # FFV1 bgr0: exact

    rot = make_index_clip(tmp_path / "rot.mp4", 6, gop=3, rotation=90)
    info = probe(str(rot))
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)
    with open_source(str(rot)) as src:
        frame = src.read(5)
    assert frame.shape == (64, 48, 3)
    assert decode_index(np.rot90(frame, k=-1)) == 5


def test_validate_range() -> None:
    info = probe_stub(30)
    assert validate_range(info, 0, None) == (0, 30)
    assert validate_range(info, 29, 30) == (29, 30)
    for start, end in [(-1, 5), (0, 31), (5, 5), (6, 5), (30, None)]:
        with pytest.raises(RangeError, match="30 frames"):
            validate_range(info, start, end)


def probe_stub(n: int):  # noqa: ANN201 - small helper
    from fractions import Fraction

    from peanut_server.media import MediaInfo

    return MediaInfo(path="/x/clip.mp4", width=8, height=8, frame_count=n, fps=Fraction(25), is_folder=False)


def test_range_outside_clip_on_source(tmp_path: Path) -> None:
    path = make_index_clip(tmp_path / "c.mp4", 10, gop=5)
    with open_source(str(path)) as src:
        with pytest.raises(RangeError, match="10 frames"):
            list(src.frames(5, 11))
        with pytest.raises(RangeError):
            src.read(10)


def test_missing_and_empty_media(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFound, match="nope.mp4"):
        probe(str(tmp_path / "nope.mp4"))
    with pytest.raises(MediaNotFound):
        open_source(str(tmp_path / "nope.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty.mp4.*0 bytes"):
        probe(str(empty))
    text = tmp_path / "notes.mov"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(MediaError, match="notes.mov"):
        probe(str(text))
    with pytest.raises(MediaError, match="no images"):
        probe(str(tmp_path))  # tmp_path holds no images


def test_audio_only_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(MediaError, match="tone.wav: has no video stream"):
        probe(str(path))


def _read_all(path: Path) -> list[int]:
    info = probe(str(path))
    with open_source(str(path)) as src:
        return [decode_index(f) for f in src.frames(0, info.frame_count)]


@pytest.mark.parametrize("name,kw", [("t.mp4", {}), ("t.mov", {}), ("t.mkv", {"codec": "libx265"})])
def test_truncated_media(tmp_path: Path, name: str, kw: dict) -> None:
    good = make_index_clip(tmp_path / name, N, size=(128, 96), gop=GOP, **kw)
    data = good.read_bytes()
    for fraction in (0.3, 0.6, 0.9):
        cut = tmp_path / f"cut{int(fraction * 100)}_{name}"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(MediaError, match=cut.name):
            _read_all(cut)


@pytest.mark.parametrize("name,kw", [("b.mp4", {"bframes": 0}), ("b.mov", {}), ("b.mkv", {"codec": "libx265"})])
def test_bit_flipped_media(tmp_path: Path, name: str, kw: dict) -> None:
    good = make_index_clip(tmp_path / name, N, size=(128, 96), gop=GOP, **kw)
    assert _read_all(good) == list(range(N))
    data = good.read_bytes()
    for seed in range(6):
        rng = random.Random(seed)
        damaged = bytearray(data)
        for _ in range(20):
            i = rng.randrange(len(damaged) // 10, len(damaged) * 9 // 10)
            damaged[i] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{seed}_{name}"
        path.write_bytes(bytes(damaged))
        # Either refused with a clear error, or (if the damage hit nothing that matters)
        # read back exactly: never silently wrong frames.
        try:
            got = _read_all(path)
        except MediaError as exc:
            assert path.name in str(exc)
        else:
            assert got == list(range(N)), f"seed {seed}: silently wrong frames {got}"


def test_folder_bad_images(tmp_path: Path) -> None:
    folder = make_index_folder(tmp_path / "mixed", 4)
    cv2.imwrite(str(folder / "frame_4.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(MediaError, match=r"frame_4.png.*10x10.*64x48"):
        probe(str(folder))
    folder = make_index_folder(tmp_path / "zero", 4)
    (folder / "frame_2.png").write_bytes(b"")
    with pytest.raises(MediaError, match=r"frame_2.png.*0 bytes"):
        probe(str(folder))
    exr = make_index_folder(tmp_path / "exr", 2)
    (exr / "frame_0.png").unlink()
    (exr / "frame_0.exr").write_bytes(b"\x76\x2f\x31\x01" + b"\x00" * 60)  # EXR magic, no image
    with pytest.raises(MediaError, match=r"frame_0.exr: (this OpenCV build cannot read EXR|not a readable)"):
        probe(str(exr))
    folder = make_index_folder(tmp_path / "corrupt", 4)
    (folder / "frame_0.png").write_bytes(b"\x89PNG garbage" * 10)
    with pytest.raises(MediaError, match="frame_0.png"):
        probe(str(folder))


def test_real_clip_probe_and_range(shared_data: Path) -> None:
    path = shared_data / "completion" / "running_car.mp4"
    info = probe(str(path))
    assert info.frame_count == 292 and (info.width, info.height) == (972, 540)
    assert info.fps == 25
    with open_source(str(path)) as src:
        mid = list(src.frames(150, 153))
        again = src.read(151)
    assert all(f.shape == (540, 972, 3) for f in mid)
    assert np.array_equal(mid[1], again)
    assert not np.array_equal(mid[0], mid[2])
    davis = probe(str(shared_data / "davis" / "tennis"))
    assert davis.frame_count == 70 and (davis.width, davis.height) == (432, 240)
