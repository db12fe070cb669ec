"""The matte beside the cleaned output is the exact alpha the compositor used.

An editor who composites the cleaned pixels over the source with the matte,
    source x (1 - matte) + cleaned x matte,
must get the output back: the soft (feathered) edge and the dilation around
the object included. Real footage (DAVIS tennis, its own masks), erased at a
lower working resolution so the hole grows past the object's mask, as it does
on every HD clip.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peanut_server.api import peanut_pb2 as pb
from peanut_server.media import frame_filename
from peanut_server.pipeline import Pipeline, spec_from_request
from peanut_server.progress import Reporter
from tests.clips import decode_matte16

FRAMES = 5
FEATHER = 3


@pytest.fixture(scope="module")
def tennis(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[np.ndarray]]:
    """DAVIS tennis 432x240 as a lossless FFV1 clip (so "equal to the source" is exact) and its masks."""
    folder = tmp_path_factory.mktemp("tennis")
    frames = [
        cv2.cvtColor(cv2.imread(str(shared_data / "davis" / "tennis" / f"{t:05d}.png")), cv2.COLOR_BGR2RGB)
        for t in range(FRAMES)
    ]
    clip = folder / "tennis.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 432, 240, "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    masks = folder / "masks"
    masks.mkdir()
    for t in range(FRAMES):
        mask = cv2.imread(str(shared_data / "davis" / "tennis_mask" / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(masks / f"{t:05d}.png"), mask)
    return clip, masks, frames


def run_job(
    clip: Path,
    masks: Path,
    output: Path,
    matte: Path | None = None,
    *,
    patch_layer: bool = False,
    matte_mode: int = pb.MATTE_MODE_UNSPECIFIED,
) -> None:
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=str(clip)),
        mask=pb.MaskSpec(mask_path=str(masks)),
        # 120 working lines for a 240-line source: the hole is dilated at half resolution, so it
        # reaches well past the object's mask, and the feather lies beyond that.
        options=pb.Options(working_height=120, eraser="telea", upscaler="lanczos", feather=FEATHER),
        output=pb.OutputSpec(
            path=str(output), matte_path=str(matte) if matte else "", patch_layer=patch_layer, matte_mode=matte_mode
        ),
    )
    Pipeline().run(spec_from_request(request), Reporter())


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def as_unit(matte: np.ndarray) -> np.ndarray:
    """A matte image (8- or 16-bit, grey or RGB) as alpha in [0, 1]."""
    if matte.ndim == 3:
        matte = matte[..., 0]
    return matte.astype(np.float64) / np.iinfo(matte.dtype).max


def decode(path: Path, fmt: str) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format=fmt, threads=1) for frame in container.decode(video=0)]


def check_matte(
    sources: list[np.ndarray], outputs: list[np.ndarray], mattes: list[np.ndarray], cleaned: list[np.ndarray] | None
) -> None:
    soft = 0
    for t, (src, out, matte) in enumerate(zip(sources, outputs, mattes)):
        changed = np.any(out != src, axis=2)
        assert changed.sum() > 500, f"frame {t}: the object was not removed"
        # Every pixel the job changed is covered by the matte...
        assert (matte[changed] > 0).all(), (
            f"frame {t}: {int((matte[changed] == 0).sum())} changed pixels outside the matte"
        )
        soft += int(((matte > 0) & (matte < 1)).sum())
        if cleaned is not None:
            # ... and the matte composites the cleaned pixels over the source into the output.
            a = matte[..., None]
            rebuilt = src.astype(np.float64) * (1 - a) + cleaned[t].astype(np.float64) * a
            error = np.abs(rebuilt - out.astype(np.float64))
            assert error.max() <= 1.0, f"frame {t}: composite with the matte is off by {error.max():.2f} levels"
    assert soft > 0, "the matte has no soft edge: the feather was cut off"


def test_matte_is_the_alpha_that_composited_the_output(tennis, tmp_path: Path) -> None:
    clip, masks, sources = tennis
    run_job(clip, masks, tmp_path / "cleaned")
    # The same job as a patch layer: its colour is the cleaned pixels, its alpha the composite's.
    run_job(clip, masks, tmp_path / "patch", patch_layer=True)
    outputs = [read_png(tmp_path / "cleaned" / frame_filename(t)) for t in range(FRAMES)]
    raw = [read_png(tmp_path / "cleaned_matte" / frame_filename(t)) for t in range(FRAMES)]
    assert all(m.ndim == 2 and m.dtype == np.uint16 for m in raw), "the matte is a 16-bit grey PNG"
    mattes = [as_unit(m) for m in raw]
    layers = [read_png(tmp_path / "patch" / frame_filename(t)) for t in range(FRAMES)]
    check_matte(sources, outputs, mattes, [layer[..., :3] for layer in layers])
    for layer, matte in zip(layers, mattes):
        # The patch layer's own alpha is the same alpha, at 8 bits.
        assert np.abs(layer[..., 3] / 255.0 - matte).max() <= 0.5 / 255 + 1e-6
    # Where the matte is 0 the output is the source, bit for bit.
    for src, out, matte in zip(sources, outputs, mattes):
        assert np.array_equal(out[matte == 0], src[matte == 0])
    # The erase pass writes the alpha it used; recomputed from the mask alone (what finishes a
    # matte after a stop) it is the same, to the last bit.
    from peanut_server.pipeline.composite import composite_alpha

    for t, matte in enumerate(raw):
        given = cv2.imread(str(masks / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        assert np.array_equal(matte, np.rint(composite_alpha(given, (216, 120), 4, FEATHER) * 65535).astype(np.uint16))


def test_matte_through_video_outputs(tennis, tmp_path: Path) -> None:
    clip, masks, sources = tennis
    run_job(clip, masks, tmp_path / "cleaned.mkv", tmp_path / "matte.mkv")
    run_job(clip, masks, tmp_path / "patch.mkv", tmp_path / "patch_matte.mov", patch_layer=True)
    outputs = decode(tmp_path / "cleaned.mkv", "rgb24")
    layers = decode(tmp_path / "patch.mkv", "rgba")
    # FFV1 keeps the 16-bit matte exactly.
    mattes = [as_unit(m) for m in decode(tmp_path / "matte.mkv", "gray16le")]
    check_matte(sources, outputs, mattes, [layer[..., :3] for layer in layers])
    # ProRes 4444 carries it as a 10-bit grey picture: within a level of the exact one.
    prores = [as_unit(m) for m in decode_matte16(tmp_path / "patch_matte.mov")]
    for exact, coded in zip(mattes, prores):
        assert np.abs(exact - coded).max() <= 1.1 / 255
        assert (coded[exact > 0] > 0).all()


def test_object_mode_keeps_the_objects_hard_mask(tennis, tmp_path: Path) -> None:
    clip, masks, _ = tennis
    run_job(clip, masks, tmp_path / "cleaned", matte_mode=pb.MATTE_MODE_OBJECT)
    for t in range(FRAMES):
        matte = read_png(tmp_path / "cleaned_matte" / frame_filename(t))
        given = cv2.imread(str(masks / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        assert matte.dtype == np.uint8 and set(np.unique(matte)) <= {0, 255}
        assert np.array_equal(as_unit(matte) > 0, given)


def test_cli_matte_mode_reaches_the_job(tennis, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from peanut_server import cli

    clip, masks, _ = tennis
    common = [str(clip), "--mask", str(masks), "--local", "-q", "--eraser", "telea", "--working-height", "120"]
    assert cli.main(["remove", *common, "-o", str(tmp_path / "soft")]) == 0
    assert cli.main(["remove", *common, "-o", str(tmp_path / "hard"), "--matte-mode", "object"]) == 0
    capsys.readouterr()
    soft = read_png(tmp_path / "soft_matte" / frame_filename(0))
    hard = read_png(tmp_path / "hard_matte" / frame_filename(0))
    given = cv2.imread(str(masks / "00000.png"), cv2.IMREAD_GRAYSCALE) > 127
    assert soft.dtype == np.uint16 and ((soft > 0) & (soft < 65535)).any()
    assert (as_unit(soft) > 0).sum() > given.sum()  # the hole and the feather reach past the object
    assert hard.dtype == np.uint8 and np.array_equal(as_unit(hard) > 0, given)


def test_matte_mode_in_requests() -> None:
    from peanut_server.errors import InvalidRequest

    def spec(mode: int, job: int = pb.MODE_REMOVE):
        return spec_from_request(
            pb.SubmitRequest(
                source=pb.MediaRange(path="/clip.mkv"),
                mask=pb.MaskSpec(text="the dog"),
                mode=job,
                output=pb.OutputSpec(path="/out", matte_mode=mode),
            )
        )

    assert spec(pb.MATTE_MODE_UNSPECIFIED).matte_mode == "alpha"
    assert spec(pb.MATTE_MODE_ALPHA).matte_mode == "alpha"
    assert spec(pb.MATTE_MODE_OBJECT).matte_mode == "object"
    # A matte-only job has no composite: its matte is the object's mask, and asking for
    # the alpha is refused rather than silently ignored.
    assert spec(pb.MATTE_MODE_UNSPECIFIED, pb.MODE_MATTE_ONLY).matte_mode == "object"
    with pytest.raises(InvalidRequest, match="matte-only"):
        spec(pb.MATTE_MODE_ALPHA, pb.MODE_MATTE_ONLY)
    with pytest.raises(InvalidRequest, match="unknown matte mode"):
        spec(7)


def test_alpha_matte_pass_resumes_after_an_interruption(tennis, tmp_path: Path) -> None:
    """Masks turn into alphas in place, one atomic file at a time: a half-converted matte finishes the same."""
    from peanut_server.media import open_sink, probe
    from peanut_server.pipeline.composite import alpha_matte, composite_alpha

    clip, masks, _ = tennis
    info = probe(str(clip))
    given = [cv2.imread(str(masks / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127 for t in range(FRAMES)]
    expected = [np.rint(composite_alpha(m, (216, 120), 4, FEATHER) * 65535).astype(np.uint16) for m in given]
    staging = tmp_path / "staging"
    sink = open_sink(str(tmp_path / "matte"), info, 0, FRAMES, staging_dir=str(staging))
    for m in given:
        sink.write(np.repeat((m * 255).astype(np.uint8)[..., None], 3, axis=2))  # as the mask pass stages them
    sink.replace(2, expected[2])  # an earlier run got this far before it stopped
    resumed = open_sink(str(tmp_path / "matte"), info, 0, FRAMES, staging_dir=str(staging))
    assert resumed.written == FRAMES
    alpha_matte(resumed, (216, 120), 4, FEATHER)
    alpha_matte(resumed, (216, 120), 4, FEATHER)  # a second pass changes nothing
    for t in range(FRAMES):
        assert np.array_equal(resumed.read(t), expected[t])
