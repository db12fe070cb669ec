"""Hostile media through one real daemon: broken files refused by name, odd-but-valid files processed right.

Broken (truncated, bit-flipped, zero-byte, wrong extension, garbage masks and
timelines): Submit is refused with a named status, or the job fails with an
error code; never INTERNAL, never a crash or a hang. Odd but valid (1x1, 8K,
97x61, variable frame rate, rotated, 10-bit, alpha): the job succeeds with the
right frame count and size, and frame i of the output is source frame i.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.client import ClientError
from peanut_server.media import frame_filename
from tests.clips import decode_index, index_frame, make_index_clip
from tests.daemon import running_daemon

NAMED = {"INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}
OPTIONS = {"eraser": "telea", "working_height": 0}


@pytest.fixture(scope="module")
def media_daemon(tmp_path_factory):
    with running_daemon(tmp_path_factory.mktemp("media-daemon")) as proc:
        yield proc


@pytest.fixture()
def client(media_daemon):
    with media_daemon.client(timeout=60) as client:
        yield client
    assert media_daemon.process.poll() is None, media_daemon.log()


def corner_mask(path: Path, size: tuple[int, int]) -> Path:
    """A small mask on a cell border of the index pattern, away from the cells' centres."""
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    x, y = max(0, w // 2 - 1), max(0, h // 2 - 1)
    mask[y : y + max(1, h // 24), x : x + max(1, w // 24)] = 255
    cv2.imwrite(str(path), mask)
    return path


def outcome(client, source: Path, out: Path, mask: Path, **kwargs) -> tuple[str, str, pb.Job | None]:
    """("refused", code, None) at Submit, or ("job", error_code, final job) after it ran."""
    try:
        job = client.submit(
            str(source), output_path=str(out), mask_path=str(mask), options=kwargs.pop("options", OPTIONS), **kwargs
        )
    except ClientError as exc:
        assert exc.code in NAMED, f"{source.name}: {exc.code} {exc.message}"
        assert exc.reason, exc.message  # the stable error code is named (in the status details)
        return "refused", exc.code, None
    final = client.wait(job.id, timeout=240)
    assert final.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED), final
    if final.state == pb.JOB_STATE_FAILED:
        assert final.error_code and final.error_code != "INTERNAL", (final.error_code, final.error)
        assert not out.exists() and not list(out.parent.glob(f".{out.name}*peanut-partial*"))
    return "job", final.error_code, final


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


# ----------------------------------------------------------------------------- broken files


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory) -> Path:
    return make_index_clip(tmp_path_factory.mktemp("good") / "index.mp4", 24, size=(64, 48), gop=6)


def broken_variants(good: Path, folder: Path) -> dict[str, Path]:
    data = good.read_bytes()
    rng = np.random.default_rng(7)
    variants = {}
    variants["truncated_half"] = folder / "half.mp4"
    variants["truncated_half"].write_bytes(data[: len(data) // 2])
    variants["truncated_header"] = folder / "head.mp4"
    variants["truncated_header"].write_bytes(data[:100])
    flipped = bytearray(data)
    for pos in rng.integers(len(data) // 4, len(data), 200):
        flipped[pos] ^= 0xFF
    variants["bit_flipped"] = folder / "flipped.mp4"
    variants["bit_flipped"].write_bytes(bytes(flipped))
    header_flipped = bytearray(data)
    for pos in rng.integers(0, 64, 16):
        header_flipped[pos] ^= 0xFF
    variants["header_flipped"] = folder / "header_flipped.mp4"
    variants["header_flipped"].write_bytes(bytes(header_flipped))
    variants["zero_byte"] = folder / "zero.mp4"
    variants["zero_byte"].write_bytes(b"")
    variants["garbage"] = folder / "garbage.mov"
    variants["garbage"].write_bytes(rng.integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    variants["text_as_video"] = folder / "notes.mp4"
    variants["text_as_video"].write_text("this is not a video\n" * 100)
    # A PNG named .mov, and an mp4 named .png: the extension lies.
    variants["png_named_mov"] = folder / "still.mov"
    cv2.imwrite(str(folder / "still.png"), index_frame(3))
    os.replace(folder / "still.png", variants["png_named_mov"])
    variants["mp4_named_png"] = folder / "video.png"
    variants["mp4_named_png"].write_bytes(data)
    broken_folder = folder / "broken_frames"
    broken_folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(broken_folder / f"f_{i}.png"), index_frame(i))
    png = (broken_folder / "f_1.png").read_bytes()
    (broken_folder / "f_1.png").write_bytes(png[: len(png) // 3])  # truncated frame mid-folder
    variants["folder_truncated_frame"] = broken_folder
    zero_folder = folder / "zero_frames"
    zero_folder.mkdir()
    cv2.imwrite(str(zero_folder / "f_0.png"), index_frame(0))
    (zero_folder / "f_1.png").write_bytes(b"")
    variants["folder_zero_byte_frame"] = zero_folder
    return variants


BROKEN = [
    "truncated_half",
    "truncated_header",
    "bit_flipped",
    "header_flipped",
    "zero_byte",
    "garbage",
    "text_as_video",
    "png_named_mov",
    "mp4_named_png",
    "folder_truncated_frame",
    "folder_zero_byte_frame",
]


@pytest.mark.parametrize("name", BROKEN)
def test_broken_media_is_named_never_internal(client, good_clip, tmp_path, name):
    variants = broken_variants(good_clip, tmp_path)
    mask = corner_mask(tmp_path / "mask.png", (64, 48))
    kind, code, final = outcome(client, variants[name], tmp_path / "out", mask)
    if name in ("zero_byte", "garbage", "text_as_video", "truncated_header", "folder_zero_byte_frame"):
        assert kind == "refused" and code == "INVALID_ARGUMENT", (kind, code)
    if name == "folder_truncated_frame":
        # Submit reads only the headers of later frames (cheap for long folders); decoding finds the damage.
        assert (kind, code) in (("refused", "INVALID_ARGUMENT"), ("job", "MEDIA_UNREADABLE")), (kind, code)
    if kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED:
        # Whatever could be decoded is frame-accurate and complete for the range it reported:
        # output frame i shows source frame i (each frame spells its own index; the still
        # named .mov is one frame, index_frame(3)).
        files = sorted(os.listdir(tmp_path / "out"))
        assert files == [frame_filename(i) for i in range(final.result.frame_count)] and files
        first = 3 if name == "png_named_mov" else 0
        for i, file in enumerate(files):
            assert decode_index(read_rgb(tmp_path / "out" / file)) == first + i, (file, first + i)


@pytest.mark.parametrize(
    "content",
    ["garbage", "truncated", "zero", "all_black", "wrong_aspect", "mask_video_too_short", "fifo_in_folder_only"],
)
def test_hostile_mask_files(client, good_clip, tmp_path, content):
    mask = tmp_path / "mask.png"
    if content == "garbage":
        mask.write_bytes(os.urandom(3000))
    elif content == "truncated":
        corner_mask(tmp_path / "full.png", (64, 48))
        mask.write_bytes((tmp_path / "full.png").read_bytes()[:40])
    elif content == "zero":
        mask.write_bytes(b"")
    elif content == "one_by_one":
        cv2.imwrite(str(mask), np.full((1, 1), 255, np.uint8))
    elif content == "all_black":
        cv2.imwrite(str(mask), np.zeros((48, 64), np.uint8))
    elif content == "wrong_aspect":
        cv2.imwrite(str(mask), np.full((64, 64), 255, np.uint8))
    elif content == "mask_video_too_short":
        mask = make_index_clip(tmp_path / "mask.mp4", 5, size=(64, 48))
    else:
        mask = tmp_path / "mask_folder"
        mask.mkdir()
        os.mkfifo(mask / "m_0.png")
    kind, code, _ = outcome(client, good_clip, tmp_path / "out", mask)
    assert kind == "refused", (content, code)
    assert code in ("INVALID_ARGUMENT", "NOT_FOUND")


@pytest.mark.parametrize("content", ["garbage", "truncated_json", "empty", "wrong_schema", "binary_nul"])
def test_hostile_timelines(client, tmp_path, content):
    timeline = tmp_path / "cut.otio"
    if content == "garbage":
        timeline.write_bytes(os.urandom(5000))
    elif content == "truncated_json":
        timeline.write_text('{"OTIO_SCHEMA": "Timeline.1", "name": "t", "tracks": {"OTIO_SCHEMA": "Stack.1", "chil')
    elif content == "empty":
        timeline.write_text("")
    elif content == "wrong_schema":
        timeline.write_text('{"OTIO_SCHEMA": "NoSuchThing.7", "name": "t"}')
    else:
        timeline.write_bytes(b'{"OTIO_SCHEMA": "Timeline.1", "name": "\x00\x00\xff"}')
    with pytest.raises(ClientError) as refused:
        client.process_timeline(str(timeline), str(tmp_path / "out.otio"), str(tmp_path / "media"))
    assert refused.value.code in NAMED, refused.value
    assert "cut.otio" in refused.value.message


# ----------------------------------------------------------------------------- odd but valid


def assert_index_output(out: Path, frames: range, size: tuple[int, int], rotate_k: int = 0) -> None:
    files = sorted(os.listdir(out))
    assert files == [frame_filename(i) for i in frames]
    for i in frames:
        image = read_rgb(out / frame_filename(i))
        assert (image.shape[1], image.shape[0]) == size, image.shape
        rgb = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
        assert decode_index(np.rot90(rgb, rotate_k)) == i, f"output {i} is not source frame {i}"


def test_rotated_clip_comes_out_upright_and_frame_accurate(client, tmp_path):
    clip = make_index_clip(tmp_path / "rot.mp4", 10, size=(64, 48), rotation=90)
    mask = corner_mask(tmp_path / "mask.png", (48, 64))  # display size: rotated
    kind, code, final = outcome(client, clip, tmp_path / "out", mask, start=2, end=8)
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    out = tmp_path / "out"
    # Displayed 48x64; the index pattern was drawn upright in storage, so one quarter turn reads it back.
    ks = [
        k
        for k in range(4)
        if decode_index(np.rot90(cv2.cvtColor(read_rgb(out / frame_filename(2)), cv2.COLOR_BGR2RGB), k)) == 2
    ]
    assert ks and ks[0] in (1, 3), ks
    assert_index_output(out, range(2, 8), (48, 64), rotate_k=ks[0])


def test_ten_bit_prores(client, tmp_path):
    clip = make_index_clip(tmp_path / "ten.mov", 8, size=(64, 48), codec="prores_ks")
    with av.open(str(clip)) as container:
        assert "10" in container.streams.video[0].codec_context.pix_fmt
    kind, code, final = outcome(client, clip, tmp_path / "out", corner_mask(tmp_path / "m.png", (64, 48)))
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    assert_index_output(tmp_path / "out", range(8), (64, 48))


def test_alpha_sources(client, tmp_path):
    folder = tmp_path / "rgba"
    folder.mkdir()
    for i in range(5):
        bgra = cv2.cvtColor(index_frame(i), cv2.COLOR_RGB2BGRA)
        bgra[..., 3] = 128  # half transparent everywhere
        cv2.imwrite(str(folder / f"f_{i}.png"), bgra)
    kind, code, final = outcome(client, folder, tmp_path / "out", corner_mask(tmp_path / "m.png", (64, 48)))
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    assert_index_output(tmp_path / "out", range(5), (64, 48))
    # A video with an alpha channel (FFV1 BGRA) too.
    clip = make_index_clip(tmp_path / "alpha.mkv", 6, size=(64, 48), codec="ffv1", pix_fmt="bgra")
    kind, code, final = outcome(client, clip, tmp_path / "out2", corner_mask(tmp_path / "m.png", (64, 48)))
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    assert_index_output(tmp_path / "out2", range(6), (64, 48))


def test_odd_size_97x61(client, tmp_path):
    clip = make_index_clip(tmp_path / "odd.mkv", 7, size=(97, 61), codec="ffv1")
    kind, code, final = outcome(
        client, clip, tmp_path / "out", corner_mask(tmp_path / "m.png", (97, 61)), options={"eraser": "telea"}
    )  # default working height: no upscale at 61 lines
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    assert_index_output(tmp_path / "out", range(7), (97, 61))
    # And scaled: 61 lines worked at 64? No: working height >= source means no scaling; force scaling on a taller odd clip.
    tall = make_index_clip(tmp_path / "tall.mkv", 4, size=(193, 121), codec="ffv1")
    kind, code, final = outcome(
        client,
        tall,
        tmp_path / "out_tall",
        corner_mask(tmp_path / "m2.png", (193, 121)),
        options={"eraser": "telea", "working_height": 64},
    )
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    assert_index_output(tmp_path / "out_tall", range(4), (193, 121))


def test_one_by_one_pixel_frames(client, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"f_{i}.png"), np.full((1, 1, 3), 10 * i, np.uint8))
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.full((1, 1), 255, np.uint8))
    kind, code, final = outcome(client, folder, tmp_path / "out", mask, options={"eraser": "telea"})
    if kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED:
        files = sorted(os.listdir(tmp_path / "out"))
        assert len(files) == 3 and read_rgb(tmp_path / "out" / files[0]).shape[:2] == (1, 1)
    else:
        assert code in ("INVALID_ARGUMENT", "MEDIA_UNREADABLE", "MASK_INVALID"), code


def test_variable_frame_rate_is_frame_accurate(client, tmp_path):
    """Frames at irregular times (10, 20, 50, 55, 100 ms ...): output frame i is still source frame i."""
    path = tmp_path / "vfr.mkv"
    gaps = [1, 2, 1, 5, 1, 1, 3, 1, 8, 2, 1, 1]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgr0"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i, gap in enumerate(gaps):
            frame = av.VideoFrame.from_ndarray(index_frame(i), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += gap * 10
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    kind, code, final = outcome(
        client, path, tmp_path / "out", corner_mask(tmp_path / "m.png", (64, 48)), start=3, end=11
    )
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    assert_index_output(tmp_path / "out", range(3, 11), (64, 48))


def test_8k_frames_with_memory_in_check(client, media_daemon, tmp_path):
    """Two 7680x4320 frames: processed at working resolution, composited back at 8K."""
    folder = tmp_path / "8k"
    folder.mkdir()
    w, h = 7680, 4320
    for i in range(2):
        frame = cv2.resize(index_frame(i), (w, h), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(
            str(folder / f"f_{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
    mask = corner_mask(tmp_path / "m.png", (w, h))
    kind, code, final = outcome(
        client, folder, tmp_path / "out", mask, options={"eraser": "telea", "working_height": 360}
    )
    assert kind == "job" and final.state == pb.JOB_STATE_SUCCEEDED, (code, final and final.error)
    files = sorted(os.listdir(tmp_path / "out"))
    assert len(files) == 2
    for i, name in enumerate(files):
        image = read_rgb(tmp_path / "out" / name)
        assert image.shape[:2] == (h, w)
        assert (
            decode_index(cv2.cvtColor(cv2.resize(image, (64, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
            == i
        )
    # The daemon's resident memory stayed within a few frames' worth (an 8K RGB frame is ~95 MiB).
    status = Path(f"/proc/{media_daemon.process.pid}/status").read_text()
    peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    assert peak_kib < 2_000_000, f"daemon peak RSS {peak_kib / 1024:.0f} MiB for two 8K frames"


def test_frame_symlinked_to_a_pseudo_file_is_refused(client, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"f_{i}.png"), index_frame(i))
    (folder / "f_2.png").symlink_to("/proc/kcore" if os.path.exists("/proc/kcore") else "/proc/self/environ")
    kind, code, _ = outcome(client, folder, tmp_path / "out", corner_mask(tmp_path / "m.png", (64, 48)))
    assert (kind, code) == ("refused", "INVALID_ARGUMENT")
    with pytest.raises(ClientError) as refused:
        client.submit(str(folder), output_path=str(tmp_path / "out"), mask_path=str(tmp_path / "m.png"))
    assert "f_2.png links to /proc/" in refused.value.message


@pytest.mark.parametrize("name", ["truncated_header", "zero_byte", "garbage"])
def test_cli_says_one_line_for_broken_media(media_daemon, good_clip, tmp_path, name):
    import subprocess
    import sys

    variants = broken_variants(good_clip, tmp_path)
    mask = corner_mask(tmp_path / "mask.png", (64, 48))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "peanut_server.cli",
            "remove",
            str(variants[name]),
            "-o",
            str(tmp_path / "out"),
            "--mask",
            str(mask),
            "--server",
            media_daemon.address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        env=dict(os.environ, PEANUT_STATE_DIR=str(media_daemon.state_dir)),
    )
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("peanut: "), run.stderr
    assert "Traceback" not in run.stderr and variants[name].name in lines[0]
