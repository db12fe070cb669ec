"""Outputs: naming, path checks, bit-exact round trips, atomic commit/abort, resume, audio."""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from peanut_server.errors import OutputError, OutputExists
from peanut_server.media import check_output, frame_filename, open_sink, open_source, probe
from tests.clips import decode_index, decode_matte16, make_index_clip, make_index_folder


def _noise(n: int, w: int = 33, h: int = 21, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    # Random pixels and odd sizes: any colour conversion or chroma subsampling shows.
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, channels), dtype=np.uint8) for _ in range(n)]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_frame_filename() -> None:
    assert frame_filename(123) == "frame_000123.png"
    assert frame_filename(7, prefix="matte_") == "matte_000007.png"


def test_check_output(tmp_path: Path) -> None:
    folder = make_index_folder(tmp_path / "src", 2)
    clip = make_index_clip(tmp_path / "clip.mp4", 3, gop=3)
    with pytest.raises(OutputError, match="source itself"):
        check_output(str(clip), str(clip), overwrite=True)
    with pytest.raises(OutputError, match="inside the source folder"):
        check_output(str(folder / "out"), str(folder), overwrite=False)
    with pytest.raises(OutputError, match="source .* is inside"):
        check_output(str(tmp_path), str(clip), overwrite=True)
    # Symlinks are resolved: a link to the source is the source.
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    with pytest.raises(OutputError, match="source itself"):
        check_output(str(link), str(clip), overwrite=True)
    lnk_dir = tmp_path / "lnkdir"
    lnk_dir.symlink_to(folder)
    with pytest.raises(OutputError, match="inside the source folder"):
        check_output(str(lnk_dir / "x"), str(folder), overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output(str(tmp_path / "no" / "out"), str(clip), overwrite=False)
    existing = tmp_path / "old.mov"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExists, match="old.mov"):
        check_output(str(existing), str(clip), overwrite=False)
    check_output(str(existing), str(clip), overwrite=True)
    check_output(str(tmp_path / "out"), str(clip), overwrite=False)  # beside the source: fine
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="not writable"):
            check_output(str(locked / "out"), str(clip), overwrite=False)


def _source_info(tmp_path: Path, w: int = 33, h: int = 21, n: int = 20) -> object:
    src = tmp_path / "src.mkv"
    make_index_clip(src, n, size=(w, h), codec="ffv1", fps=Fraction(30000, 1001))
    return probe(str(src))


def test_png_sequence_bit_exact_and_named_by_source_frame(tmp_path: Path) -> None:
    info = _source_info(tmp_path)
    frames = _noise(5)
    out = tmp_path / "out"
    with open_sink(str(out), info, 12, 5) as sink:
        for f in frames:
            sink.write(f)
        assert not out.exists()  # nothing visible before commit
        assert sink.commit() == str(out)
    assert sorted(os.listdir(out)) == [frame_filename(i) for i in range(12, 17)]
    back = open_source(str(out))
    assert all(np.array_equal(a, b) for a, b in zip(back.frames(0, 5), frames))
    assert not any(name.endswith(".peanut-partial") for name in os.listdir(tmp_path))


def test_ffv1_mkv_bit_exact_fps_kept(tmp_path: Path) -> None:
    info = _source_info(tmp_path)
    frames = _noise(6, seed=1)
    with open_sink(str(tmp_path / "o.mkv"), info, 3, 6) as sink:
        for f in frames:
            sink.write(f)
        path = sink.commit()
    out = probe(path)
    assert out.frame_count == 6 and out.fps == Fraction(30000, 1001) and out.codec == "ffv1"
    with open_source(path) as src:
        assert all(np.array_equal(a, b) for a, b in zip(src.frames(0, 6), frames))


def test_mov_prores_alpha_and_mp4_preview(tmp_path: Path) -> None:
    src = make_index_clip(tmp_path / "s.mov", 12, size=(64, 48), gop=4, time_base=Fraction(1, 12800))
    info = probe(str(src))
    with open_source(str(src)) as s:
        frames = list(s.frames(4, 12))
    with open_sink(str(tmp_path / "o.mov"), info, 4, 8) as sink:
        for f in frames:
            sink.write(f)
        mov = sink.commit()
    with open_sink(str(tmp_path / "o.mp4"), info, 4, 8) as sink:
        for f in frames:
            sink.write(f)
        mp4 = sink.commit()
    for path, codec in ((mov, "prores"), (mp4, "h264")):
        out = probe(path)
        assert out.codec == codec and out.fps == 25 and out.time_base == Fraction(1, 12800)
        with open_source(path) as s:
            assert [decode_index(f) for f in s.frames(0, 8)] == list(range(4, 12))
    with av.open(mov) as c:
        assert c.streams.video[0].codec_context.profile == "4444"
    # Alpha: ProRes 4444 keeps a yuva format; the alpha plane survives.
    rgba = _noise(3, 64, 48, 4, seed=2)
    for f in rgba:
        f[..., 3] = 0
        f[10:30, 10:40, 3] = 255
    with open_sink(str(tmp_path / "a.mov"), info, 0, 3, alpha=True) as sink:
        for f in rgba:
            sink.write(f)
        amov = sink.commit()
    with av.open(amov) as c:
        frame = next(c.decode(video=0))
        assert frame.format.name.startswith("yuva444p")  # the decoder gives 12-bit
        alpha = frame.to_ndarray(format="rgba", threads=1)[..., 3]
    assert alpha[10:30, 10:40].min() > 250 and alpha[:10].max() < 5
    with pytest.raises(OutputError, match="alpha"):
        open_sink(str(tmp_path / "a.mp4"), info, 0, 3, alpha=True)


def test_atomic_commit_replaces_only_with_overwrite(tmp_path: Path) -> None:
    info = _source_info(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous result")
    with pytest.raises(OutputExists):
        open_sink(str(out), info, 0, 2)
    sink = open_sink(str(out), info, 0, 2, overwrite=True)
    for f in _noise(2):
        sink.write(f)
    assert (out / "old.txt").exists()  # still the old output until commit
    sink.commit()
    assert sorted(os.listdir(out)) == [frame_filename(0), frame_filename(1)]
    assert _listing(tmp_path) >= {"out", "src.mkv"}
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no staging, no old copy
    # Video over an existing video file.
    old = tmp_path / "v.mkv"
    old.write_bytes(b"old")
    with open_sink(str(old), info, 0, 2, overwrite=True) as sink:
        for f in _noise(2):
            sink.write(f)
        sink.commit()
    assert probe(str(old)).frame_count == 2
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_abort_and_exception_leave_no_files(tmp_path: Path) -> None:
    info = _source_info(tmp_path)
    before = _listing(tmp_path)
    sink = open_sink(str(tmp_path / "out.mov"), info, 0, 4)
    sink.write(_noise(1)[0])
    sink.abort()
    assert _listing(tmp_path) == before
    with pytest.raises(RuntimeError, match="boom"):
        with open_sink(str(tmp_path / "out"), info, 0, 4) as sink:
            sink.write(_noise(1)[0])
            raise RuntimeError("boom")
    assert _listing(tmp_path) == before
    # An encode that fails leaves no temp file either: a resumed run's staged frame is broken (the
    # encoder reads staged frames back only on resume; new ones it gets as they are written).
    sink = open_sink(str(tmp_path / "bad.mkv"), info, 0, 1)
    sink.write(_noise(1)[0])
    sink.suspend()
    Path(sink.staging, frame_filename(0)).write_bytes(b"broken")
    sink = open_sink(str(tmp_path / "bad.mkv"), info, 0, 1)
    assert sink.written == 1
    with pytest.raises(OutputError, match="cannot be read back"):
        sink.commit()
    sink.abort()
    assert _listing(tmp_path) == before
    with pytest.raises(ValueError, match="expects uint8"):
        open_sink(str(tmp_path / "o2"), info, 0, 1).write(np.zeros((21, 33, 3), np.float32))
    with pytest.raises(RuntimeError, match="1 of 3"):
        s = open_sink(str(tmp_path / "o3"), info, 0, 3)
        s.write(_noise(1)[0])
        s.commit()


def test_resume_from_staging_dir(tmp_path: Path) -> None:
    info = _source_info(tmp_path)
    frames = _noise(6, seed=3)
    staging = tmp_path / "job-42"
    first = open_sink(str(tmp_path / "out.mkv"), info, 10, 6, staging_dir=str(staging))
    for f in frames[:4]:
        first.write(f)
    # Simulated crash: the sink is dropped unclosed, a half-written temp frame remains, and the
    # partial video of a process killed mid-encode (no trailer: never adopted).
    (staging / ".frame_000014.png.tmp.png").write_bytes(b"half")
    (staging / ".encoding-0123456789ab.mkv").write_bytes(b"\x1aE\xdf\xa3 killed mid-encode")
    del first
    again = open_sink(str(tmp_path / "out.mkv"), info, 10, 6, staging_dir=str(staging))
    assert again.written == 4
    assert not (staging / ".encoding-0123456789ab.mkv").exists()
    for f in frames[again.written :]:
        again.write(f)
    path = again.commit()
    with open_source(path) as src:
        assert all(np.array_equal(a, b) for a, b in zip(src.frames(0, 6), frames))
    assert not staging.exists()
    # A gap in the staged frames: only the contiguous run from the start counts.
    gap = open_sink(str(tmp_path / "g"), info, 0, 5)
    for f in frames[:3]:
        gap.write(f)
    os.remove(os.path.join(gap.staging, frame_filename(1)))
    assert open_sink(str(tmp_path / "g"), info, 0, 5).written == 1
    # A staging folder with someone else's files is refused (it gets deleted or renamed later).
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("precious")
    with pytest.raises(OutputError, match="other files"):
        open_sink(str(tmp_path / "o.mkv"), info, 0, 2, staging_dir=str(busy))
    assert (busy / "thesis.txt").read_text() == "precious"


def test_audio_of_the_range_kept(tmp_path: Path) -> None:
    src = make_index_clip(tmp_path / "a.mov", 30, gop=6, audio=True, audio_rate=8000)
    info = probe(str(src))
    assert info.has_audio
    start, count = 9, 12
    for ext in (".mov", ".mkv", ".mp4"):
        with (
            open_source(str(src)) as s,
            open_sink(str(tmp_path / f"o{ext}"), info, start, count, audio_from=info) as sink,
        ):
            for f in s.frames(start, start + count):
                sink.write(f)
            path = sink.commit()
        with av.open(path) as c:
            assert len(c.streams.audio) == 1
            codec = c.streams.audio[0].codec_context.name
            data = np.concatenate([fr.to_ndarray().reshape(-1) for fr in c.decode(audio=0)])
        if ext == ".mp4":
            assert codec == "aac"
            assert abs(len(data) - count * 320) <= 2048  # AAC adds priming/padding frames
            continue
        # PCM: exactly the samples of frames 9..20 (320 samples a frame, value 100 * frame).
        assert codec == "pcm_s16le" and len(data) == count * 320
        expected = np.repeat(100 * np.arange(start, start + count), 320)
        assert np.array_equal(data, expected)
    # No audio for image-sequence outputs or when not asked.
    with open_source(str(src)) as s, open_sink(str(tmp_path / "noaudio.mov"), info, 0, 2) as sink:
        for f in s.frames(0, 2):
            sink.write(f)
        assert not probe(sink.commit()).has_audio


def test_matte_sequence_from_masks(tmp_path: Path) -> None:
    info = _source_info(tmp_path)
    masks = [np.zeros((21, 33), bool) for _ in range(3)]
    for i, m in enumerate(masks):
        m[2 + i : 10 + i, 5:20] = True
    with open_sink(str(tmp_path / "matte"), info, 4, 3, prefix="matte_") as sink:
        for m in masks:
            sink.write(m)
        out = sink.commit()
    assert sorted(os.listdir(out)) == ["matte_000004.png", "matte_000005.png", "matte_000006.png"]
    import cv2

    for i, m in enumerate(masks):
        grey = cv2.imread(os.path.join(out, f"matte_{4 + i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert grey.ndim == 2 and np.array_equal(grey, m.astype(np.uint8) * 255)
    # A matte can also go to a lossless video.
    with open_sink(str(tmp_path / "matte.mkv"), info, 4, 3) as sink:
        for m in masks:
            sink.write(m)
        video = sink.commit()
    with open_source(video) as src:
        assert all(np.array_equal(f[..., 0] > 127, m) for f, m in zip(src.frames(0, 3), masks))


def _soft_mattes(n: int, w: int = 33, h: int = 21) -> list[np.ndarray]:
    """Feathered discs in [0, 1]: a soft edge that any 8-bit rounding or range conversion would show."""
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.clip(1.0 - (np.hypot(xx - 12 - 2 * i, yy - 10) - 4) / 6, 0, 1).astype(np.float32) for i in range(n)]


def test_soft_matte_is_stored_at_16_bits(tmp_path: Path) -> None:
    import cv2

    info = _source_info(tmp_path)
    mattes = _soft_mattes(3)
    with open_sink(str(tmp_path / "matte"), info, 4, 3) as sink:
        for m in mattes:
            sink.write(m)
        # A staged frame can be replaced in place (the pipeline turns masks into alphas).
        sink.replace(1, np.zeros_like(mattes[1]))
        assert sink.read(1).dtype == np.uint16 and not sink.read(1).any()
        sink.replace(1, mattes[1])
        with pytest.raises(IndexError):
            sink.replace(3, mattes[0])
        out = sink.commit()
    for i, m in enumerate(mattes):
        grey = cv2.imread(os.path.join(out, frame_filename(4 + i)), cv2.IMREAD_UNCHANGED)
        assert grey.ndim == 2 and grey.dtype == np.uint16
        assert np.array_equal(grey, np.rint(m * 65535).astype(np.uint16))


@pytest.mark.parametrize("ext,tolerance", [(".mkv", 0.0), (".mov", 1.1 / 255), (".mp4", None)])
def test_soft_matte_through_video(tmp_path: Path, ext: str, tolerance: float | None) -> None:
    info = _source_info(tmp_path)
    mattes = _soft_mattes(3)
    with open_sink(str(tmp_path / f"matte{ext}"), info, 0, 3) as sink:
        for m in mattes:
            sink.write(m)
        video = sink.commit()
    decoded = [d.astype(np.int64) for d in decode_matte16(video)]
    assert len(decoded) == 3
    for got, m in zip(decoded, mattes):
        error = np.abs(got - np.rint(m * 65535).astype(np.int64)) / 65535
        if tolerance is None:  # H.264 preview: lossy, but still the same matte to the eye
            assert error.mean() < 4 / 255
        else:
            assert error.max() <= tolerance


def test_prores_frames_of_one_picture_are_all_the_same(tmp_path: Path) -> None:
    """ProRes is intra-only: one picture written 300 times gives 300 identical coded frames. Threaded
    swscale broke this now and then (a whole frame or a band of rows of garbage, a few in 3000)."""
    info = _source_info(tmp_path, w=34, h=22, n=300)
    picture = _noise(1, w=34, h=22, seed=9)[0]
    with open_sink(str(tmp_path / "same.mov"), info, 0, 300) as sink:
        for _ in range(300):
            sink.write(picture.copy())
        path = sink.commit()
    payloads = {payload for _, payload in _packets(path)}
    assert len(_packets(path)) == 300 and len(payloads) == 1


# -- video outputs encoded in a thread as frames arrive ----------------------------------------------


def _packets(path: str) -> list[tuple[int, bytes]]:
    """The video stream's packets (time, payload): what the encoder produced, whatever the muxer adds
    around it (Matroska writes a random segment UID into every file)."""
    with av.open(path) as container:
        return [(p.pts, bytes(p)) for p in container.demux(video=0) if p.size]


@pytest.mark.parametrize("ext", [".mkv", ".mov", ".mp4"])
def test_video_encoded_as_frames_arrive_equals_one_encoded_from_the_staged_frames(tmp_path: Path, ext: str) -> None:
    """The encoder thread gets each frame as it is written, and the file is the one the staged PNGs give."""
    info = _source_info(tmp_path, w=34, h=22)  # even: the H.264 preview keeps 4:2:0
    frames = _noise(7, w=34, h=22, seed=5)
    fresh = open_sink(str(tmp_path / f"fresh{ext}"), info, 0, 7)
    for f in frames:
        fresh.write(f)
    # Encoding runs while frames come (in its own thread, so the file shows up when that thread
    # gets to it): the partial file is in the staging folder, nothing at the destination. (FFV1 and
    # ProRes give a packet per frame; x264 keeps its lookahead, and PyAV opens the file at the first.)
    deadline = time.monotonic() + 60
    while ext != ".mp4" and not [n for n in os.listdir(fresh.staging) if n.startswith(".encoding-")]:
        assert time.monotonic() < deadline, "no partial video in the staging folder before commit"
        time.sleep(0.05)
    assert not (tmp_path / f"fresh{ext}").exists()
    if ext == ".mkv":
        # Commit does not read the staged frames back: breaking them changes nothing.
        for k in range(7):
            Path(fresh.staging, frame_filename(k)).write_bytes(b"broken")
    fresh_path = fresh.commit()
    # The same frames staged, then encoded from their PNGs only (as a resumed job does).
    first = open_sink(str(tmp_path / f"staged{ext}"), info, 0, 7, staging_dir=str(tmp_path / "staging"))
    for f in frames:
        first.write(f)
    first.suspend()
    assert sorted(os.listdir(tmp_path / "staging")) == [frame_filename(k) for k in range(7)]
    again = open_sink(str(tmp_path / f"staged{ext}"), info, 0, 7, staging_dir=str(tmp_path / "staging"))
    assert again.written == 7
    staged_path = again.commit()
    assert _packets(fresh_path) == _packets(staged_path) and len(_packets(fresh_path)) == 7
    if ext == ".mkv":
        with open_source(fresh_path) as src:
            assert all(np.array_equal(a, b) for a, b in zip(src.frames(0, 7), frames))
    assert not (tmp_path / "staging").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_interrupted_video_output_resumes_from_its_staged_frames(tmp_path: Path) -> None:
    """An interrupt keeps the staged PNGs and drops the half-encoded file; the resumed sink encodes the
    staged frames again, then the new ones: the same video as a run that was never interrupted."""
    info = _source_info(tmp_path)
    frames = _noise(8, seed=6)
    whole = open_sink(str(tmp_path / "whole.mkv"), info, 2, 8)
    for f in frames:
        whole.write(f)
    whole_path = whole.commit()
    staging = tmp_path / "job"
    first = open_sink(str(tmp_path / "out.mkv"), info, 2, 8, staging_dir=str(staging))
    for f in frames[:5]:
        first.write(f)
    first.suspend()
    assert sorted(os.listdir(staging)) == [frame_filename(2 + k) for k in range(5)]
    resumed = open_sink(str(tmp_path / "out.mkv"), info, 2, 8, staging_dir=str(staging))
    assert resumed.written == 5
    for f in frames[5:]:
        resumed.write(f)
    path = resumed.commit()
    assert _packets(path) == _packets(whole_path)
    with open_source(path) as src:
        assert all(np.array_equal(a, b) for a, b in zip(src.frames(0, 8), frames))


def test_matte_frames_become_final_in_order(tmp_path: Path) -> None:
    """A matte staged as masks and replaced by alphas later: the encoder takes the replaced frames, in order."""
    info = _source_info(tmp_path)
    masks = [np.zeros((21, 33), bool) for _ in range(4)]
    for i, m in enumerate(masks):
        m[3 : 12 + i, 4:20] = True
    alphas = _soft_mattes(4)
    sink = open_sink(str(tmp_path / "matte.mkv"), info, 0, 4, final_on_write=False)
    for m in masks:
        sink.write(m)
    assert not [n for n in os.listdir(sink.staging) if n.startswith(".encoding-")]  # nothing final yet
    sink.replace(0, alphas[0], final=True)
    with pytest.raises(RuntimeError, match="out of order"):
        sink.replace(2, alphas[2], final=True)
    sink.replace(2, alphas[2])  # not final: the encoder waits for frame 1
    sink.replace(1, alphas[1], final=True)
    with pytest.raises(RuntimeError, match="final already"):
        sink.replace(0, alphas[1])
    sink.mark_final(3)  # frame 2 as staged
    sink.replace(3, alphas[3], final=True)
    path = sink.commit()
    decoded = decode_matte16(path)
    assert [np.array_equal(d, np.rint(a * 65535).astype(np.uint16)) for d, a in zip(decoded, alphas)] == [True] * 4
