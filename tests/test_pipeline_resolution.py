"""UR-Net in the pipeline: 1080p and 4K sources, erased at 432/540 lines, back at source size.

Checks the contract an editor relies on: exact source size, frame count, fps
and audio kept, and every pixel outside the (dilated, feathered) mask equal
to the source.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.media import open_source, probe
from peanut_server.pipeline import Pipeline, spec_from_request
from peanut_server.progress import Reporter

FPS = Fraction(24000, 1001)


def fine_pattern(width: int, height: int, t: int) -> np.ndarray:
    """Detail an upscaler would blur: a 1-px checker, thin rings and text, moving slowly."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    checker = ((xx.astype(int) + yy.astype(int) + t) % 2) * 60
    rings = 90 + 80 * np.sin(np.hypot(xx - width / 2 - 3 * t, yy - height / 2) / 3.0)
    image = np.dstack([rings, (rings + checker) % 256, 255 - rings]).astype(np.uint8)
    for k in range(0, height, max(60, height // 12)):
        cv2.putText(
            image,
            "PEANUT detail 0123456789",
            (10 + t * 4, k + 40),
            cv2.FONT_HERSHEY_SIMPLEX,
            height / 1200,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return image


def write_clip(path: Path, frames: list[np.ndarray], with_audio: bool = True) -> Path:
    """FFV1 + PCM in .mkv: lossless video, so 'equal to the source' is exact."""
    rate = 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=FPS)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        audio = out.add_stream("pcm_s16le", rate=rate, layout="stereo") if with_audio else None
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            samples = int(len(frames) / FPS * rate)
            tone = (3000 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.int16)
            block = av.AudioFrame.from_ndarray(np.stack([tone, tone]).reshape(1, -1), format="s16", layout="stereo")
            block.sample_rate = rate
            for packet in audio.encode(block):
                out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def moving_mask(width: int, height: int, t: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cx, cy = int(width * (0.35 + 0.03 * t)), int(height * 0.55)
    cv2.ellipse(mask, (cx, cy), (width // 14, height // 9), 0, 0, 360, 255, -1)
    return mask


@pytest.fixture(scope="module")
def running_car_frames(shared_data: Path) -> list[np.ndarray]:
    with av.open(str(shared_data / "completion" / "running_car.mp4")) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 6:
                return frames
    raise AssertionError("running_car.mp4 is shorter than 6 frames")


# Every pair of (working height, content, source size) values once: half of the 2x2x2 grid
# (an orthogonal array), so each value meets each value of the other two. The working heights
# give the whole-number scales (540: 2x and 4x) and the fractional ones (432: 2.5x and 5x).
RUNS = [
    (432, "pattern", (1920, 1080)),
    (432, "running_car", (3840, 2160)),
    (540, "pattern", (3840, 2160)),
    (540, "running_car", (1920, 1080)),
]


@pytest.mark.parametrize(
    "working_height, content, size", RUNS, ids=[f"{h}-{c}-{'4K' if s[0] > 3000 else '1080p'}" for h, c, s in RUNS]
)
def test_source_size_kept_and_untouched_outside_mask(tmp_path, running_car_frames, size, content, working_height):
    width, height = size
    n = 3 if width < 3000 else 2
    if content == "pattern":
        frames = [fine_pattern(width, height, t) for t in range(n)]
    else:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in running_car_frames[:n]]
    source = write_clip(tmp_path / "source.mkv", frames)
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(n):
        cv2.imwrite(str(masks / f"m{t:03d}.png"), moving_mask(width, height, t))
    output = tmp_path / "cleaned.mkv"
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=str(source)),
        mask=pb.MaskSpec(mask_path=str(masks)),
        options=pb.Options(working_height=working_height, upscaler="lanczos"),
        output=pb.OutputSpec(path=str(output)),
    )
    spec = spec_from_request(request)
    result = Pipeline().run(spec, Reporter())
    upscaler = [r.backend for r in result.backends if r.stage == "upscaler"]
    assert upscaler == ["lanczos"]

    info_in, info_out = probe(str(source)), probe(str(output))
    assert (info_out.width, info_out.height) == size
    assert info_out.frame_count == n and info_out.fps == info_in.fps
    assert info_out.has_audio
    scale = height / working_height
    # Beyond the dilation (4 working px), the crop rounding and the feather, nothing changed.
    reach = int(np.ceil((spec.options.mask_dilation + 2) * scale)) + spec.options.feather + 2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    with open_source(str(source)) as src, open_source(str(output)) as out:
        for t, (a, b) in enumerate(zip(src.frames(0, n), out.frames(0, n))):
            outside = cv2.dilate(moving_mask(width, height, t), kernel) == 0
            assert np.array_equal(a[outside], b[outside]), f"frame {t} changed outside the mask"
            inside = moving_mask(width, height, t) > 0
            assert not np.array_equal(a[inside], b[inside])  # the masked region was replaced
