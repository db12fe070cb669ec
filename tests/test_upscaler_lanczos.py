"""Lanczos upscaler (no weights) and the upscaler model table."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from peanut_server.errors import InvalidRequest, JobCancelled
from peanut_server.models.registry import all_specs
from peanut_server.progress import Reporter
from peanut_server.upscaler import BACKENDS, LanczosUpscaler, UnsharpMask, UpscalerOptions
from peanut_server.upscaler.basicvsrpp import fit_to_size


def davis_frames(shared_data: Path, n: int = 3) -> np.ndarray:
    files = sorted((shared_data / "davis" / "tennis").iterdir())[:n]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.mark.parametrize("size", [(100, 180), (241, 433), (30, 50)])
def test_output_is_exactly_the_requested_size(size: tuple[int, int]) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 72, 3), dtype=np.uint8)
    reporter = Reporter()
    out = LanczosUpscaler().upscale(frames, size, None, UpscalerOptions(), reporter)
    assert out.shape == (3, *size, 3) and out.dtype == np.uint8
    assert reporter.state.done == 3


def test_lanczos_beats_bilinear_and_nearest_on_real_footage(shared_data: Path) -> None:
    original = davis_frames(shared_data)
    h, w = original.shape[1:3]
    small = np.stack([cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for f in original])
    out = LanczosUpscaler().upscale(small, (h, w), None, UpscalerOptions(), Reporter())
    nearest = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST) for f in small])
    linear = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in small])
    assert psnr(out, original) > psnr(linear, original) > psnr(nearest, original)
    assert psnr(out, original) > 25


def test_unsharp_mask_is_off_by_default_and_sharpens_when_on(shared_data: Path) -> None:
    small = davis_frames(shared_data, 1)[:, ::2, ::2].copy()
    size = (small.shape[1] * 2, small.shape[2] * 2)
    plain = LanczosUpscaler().upscale(small, size, None, UpscalerOptions(), Reporter())
    direct = cv2.resize(small[0], size[::-1], interpolation=cv2.INTER_LANCZOS4)
    np.testing.assert_array_equal(plain[0], direct)
    sharp = LanczosUpscaler(UnsharpMask(amount=1.0, sigma=1.5)).upscale(
        small, size, None, UpscalerOptions(), Reporter()
    )

    def detail(img: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    assert detail(sharp[0]) > 1.5 * detail(plain[0])


def test_bad_input_and_cancel() -> None:
    with pytest.raises(InvalidRequest):
        LanczosUpscaler().upscale(np.zeros((2, 8, 8), np.uint8), (16, 16), None, UpscalerOptions(), Reporter())
    with pytest.raises(InvalidRequest):
        LanczosUpscaler().upscale(np.zeros((2, 8, 8, 3), np.float32), (16, 16), None, UpscalerOptions(), Reporter())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        LanczosUpscaler().upscale(
            np.zeros((2, 8, 8, 3), np.uint8), (16, 16), None, UpscalerOptions(), Reporter(cancel_event=cancel)
        )


def test_fit_to_size_shrinks_with_area_and_is_exact() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    out = fit_to_size(frame, (100, 125))
    np.testing.assert_array_equal(out, cv2.resize(frame, (125, 100), interpolation=cv2.INTER_AREA))
    assert fit_to_size(frame, (203, 251)).shape == (203, 251, 3)
    assert fit_to_size(frame, (160, 200)) is frame


def test_registry_lists_the_released_basicvsrpp_checkpoints() -> None:
    specs = {s.id: s for s in all_specs() if s.stage == "upscaler"}
    assert set(specs) == {"basicvsrpp-reds4", "basicvsrpp-vimeo90k-bi", "basicvsrpp-vimeo90k-bd"}
    for spec in specs.values():
        (file,) = spec.files
        assert spec.architecture == "basicvsrpp" and spec.license
        assert file.url == "https://download.openmmlab.com/mmediting/restorers/basicvsr_plusplus/" + file.filename
        # OpenMMLab names a published file after the first 8 hex of its sha256.
        assert len(file.sha256) == 64 and file.filename.endswith(f"-{file.sha256[:8]}.pth")
    assert "_600k_reds4_" in specs["basicvsrpp-reds4"].files[0].filename
    assert BACKENDS["lanczos"] is LanczosUpscaler
