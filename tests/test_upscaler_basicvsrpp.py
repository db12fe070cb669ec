"""BasicVSR++: network, official-checkpoint loader, flow conventions, tiled runner, backend."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from peanut_server.eraser.base import FlowFields
from peanut_server.errors import JobCancelled, ModelError
from peanut_server.models.cache import install_model_cache
from peanut_server.progress import Reporter
from peanut_server.upscaler import BACKENDS, UpscalerOptions
from peanut_server.upscaler.basicvsrpp.loader import (
    infer_config,
    load_checkpoint,
    model_from_checkpoint,
)
from peanut_server.upscaler.basicvsrpp.network import (
    BasicVSRPlusPlus,
    BasicVSRPPConfig,
    SecondOrderDeformableAlignment,
    flow_warp,
)
from peanut_server.upscaler.basicvsrpp.runner import RunSettings, iter_upscaled, network_flows
from peanut_server.upscaler.models import BASICVSRPP_MODEL_IDS

TINY = BasicVSRPPConfig(mid_channels=8, num_blocks=1, deform_groups=2)
BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


def official_key_shapes(mid: int = 64, blocks: int = 7, groups: int = 16) -> dict[str, tuple[int, ...]]:
    """Every key of the released BasicVSRPlusPlusNet (mmagic), with its shape.

    Written down from the official module tree: SPyNet (6 levels of 5 ConvModules
    with 7x7 kernels, mean/std buffers), ResidualBlocksWithInputConv (`main.0` conv,
    `main.2.<i>.conv1/conv2`), SecondOrderDeformableAlignment (a ModulatedDeformConv2d:
    weight/bias, plus conv_offset 0/2/4/6), PixelShufflePack (`upsample_conv`).
    """
    keys: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cout: int, cin: int, k: int = 3) -> None:
        keys[f"{name}.weight"] = (cout, cin, k, k)
        keys[f"{name}.bias"] = (cout,)

    def res_with_input(name: str, cin: int, n: int) -> None:
        conv(f"{name}.main.0", mid, cin)
        for b in range(n):
            conv(f"{name}.main.2.{b}.conv1", mid, mid)
            conv(f"{name}.main.2.{b}.conv2", mid, mid)

    chans = (8, 32, 64, 32, 16, 2)
    for level in range(6):
        for j in range(5):
            conv(f"spynet.basic_module.{level}.basic_module.{j}.conv", chans[j + 1], chans[j], 7)
    keys["spynet.mean"] = (1, 3, 1, 1)
    keys["spynet.std"] = (1, 3, 1, 1)
    res_with_input("feat_extract", 3, 5)
    for i, branch in enumerate(BRANCHES):
        keys[f"deform_align.{branch}.weight"] = (mid, 2 * mid, 3, 3)
        keys[f"deform_align.{branch}.bias"] = (mid,)
        conv(f"deform_align.{branch}.conv_offset.0", mid, 3 * mid + 4)
        conv(f"deform_align.{branch}.conv_offset.2", mid, mid)
        conv(f"deform_align.{branch}.conv_offset.4", mid, mid)
        conv(f"deform_align.{branch}.conv_offset.6", 27 * groups, mid)
        res_with_input(f"backbone.{branch}", (2 + i) * mid, blocks)
    res_with_input("reconstruction", 5 * mid, 5)
    conv("upsample1.upsample_conv", 4 * mid, mid)
    conv("upsample2.upsample_conv", 4 * 64, mid)
    conv("conv_hr", 64, 64)
    conv("conv_last", 3, 64)
    return keys


def released_file(state: dict[str, torch.Tensor]) -> dict:
    """Wrap a network state dict the way the model zoo .pth files are laid out."""
    wrapped = {f"generator.{k}": v for k, v in state.items()}
    wrapped["step_counter"] = torch.zeros(1)
    return {"meta": {"mmedit_version": "0.x", "iter": 600000}, "state_dict": wrapped}


def tiny_model(seed: int = 0) -> BasicVSRPlusPlus:
    torch.manual_seed(seed)
    return BasicVSRPlusPlus(TINY).eval()


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    import cv2

    noise = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    return (
        (cv2.resize(noise, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC)[:h, :w] * 255).clip(0, 255).astype(np.uint8)
    )


# ---------------------------------------------------------------- network + loader


def test_module_names_match_the_official_release() -> None:
    ours = {k: tuple(v.shape) for k, v in BasicVSRPlusPlus().state_dict().items()}
    official = official_key_shapes()
    assert sorted(set(ours) ^ set(official)) == []
    assert ours == official
    # 7.3 M parameters, as the paper states for the released model.
    params = sum(int(np.prod(s)) for k, s in official.items() if not k.startswith("spynet.m") and "std" not in k)
    assert 7.2e6 < params < 7.4e6


def test_official_key_names_load_strictly_from_a_released_style_file(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    state = {k: torch.randn(s, generator=gen) * 0.01 for k, s in official_key_shapes().items()}
    path = tmp_path / "basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth"
    torch.save(released_file(state), path)
    model = load_checkpoint(path)
    assert model.config.mid_channels == 64 and model.config.num_blocks == 7
    loaded = model.state_dict()
    for k in ("spynet.basic_module.5.basic_module.4.conv.bias", "deform_align.forward_2.weight", "conv_last.weight"):
        assert torch.equal(loaded[k], state[k])


def test_missing_extra_or_misshaped_keys_fail_with_model_error() -> None:
    state = tiny_model().state_dict()
    missing = dict(state)
    del missing["deform_align.backward_2.conv_offset.4.bias"]
    with pytest.raises(ModelError, match="1 missing.*conv_offset.4.bias"):
        model_from_checkpoint(released_file(missing))
    extra = dict(state)
    extra["generator.fusion.weight"] = torch.zeros(1)  # a BasicVSR (not ++) key
    with pytest.raises(ModelError, match="unexpected.*fusion.weight"):
        model_from_checkpoint(released_file(extra))
    wrong = dict(state)
    wrong["conv_hr.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ModelError, match="shape"):
        model_from_checkpoint(released_file(wrong))
    with pytest.raises(ModelError, match="not a BasicVSR"):
        infer_config({"foo": torch.zeros(1)})


def test_tiny_model_round_trips_through_the_loader_and_runs(tmp_path: Path) -> None:
    original = tiny_model(3)
    # Non-zero offsets head, so the deformable path really is exercised.
    for branch in BRANCHES:
        torch.nn.init.normal_(original.deform_align[branch].conv_offset[6].weight, std=0.01)
    path = tmp_path / "tiny.pth"
    torch.save(released_file(original.state_dict()), path)
    loaded = load_checkpoint(path)
    assert loaded.config == TINY
    x = torch.rand(1, 4, 3, 20, 24)
    with torch.inference_mode():
        a = original(x)
        b = loaded(x)
    assert a.shape == (1, 4, 3, 80, 96)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- alignment + flow conventions


def test_deformable_alignment_with_zero_offsets_equals_flow_warping() -> None:
    torch.manual_seed(0)
    c, h, w = 4, 24, 28
    align = SecondOrderDeformableAlignment(c, deform_groups=2, max_residue_magnitude=10)
    # Zero learned offsets (the official initialisation): the sampling points are
    # the kernel taps shifted by the flow, modulated by sigmoid(0) = 0.5.
    assert float(align.conv_offset[-1].weight.detach().abs().sum()) == 0.0
    # An identity kernel on the first-order feature (centre tap), x2 for the mask.
    with torch.no_grad():
        align.weight.zero_()
        align.bias.zero_()
        for ch in range(c):
            align.weight[ch, ch, 1, 1] = 2.0
    feat_n1 = torch.rand(1, c, h, w)
    feat_n2 = torch.rand(1, c, h, w)
    pan = torch.tensor([2.3, -1.6]).view(1, 2, 1, 1).expand(1, 2, h, w).contiguous()
    cond = torch.rand(1, 3 * c, h, w)
    with torch.inference_mode():
        aligned = align(torch.cat([feat_n1, feat_n2], 1), cond, pan, 2 * pan)
        warped = flow_warp(feat_n1, pan)
    inner = (slice(None), slice(None), slice(3, h - 3), slice(4, w - 4))
    torch.testing.assert_close(aligned[inner], warped[inner], atol=1e-5, rtol=1e-5)
    # A general kernel: deformable conv == plain conv of the two flow-warped inputs.
    with torch.no_grad():
        align.weight.normal_()
        align.bias.normal_()
    with torch.inference_mode():
        aligned = align(torch.cat([feat_n1, feat_n2], 1), cond, pan, 2 * pan)
        both = torch.cat([flow_warp(feat_n1, pan), flow_warp(feat_n2, 2 * pan)], 1)
        plain = torch.nn.functional.conv2d(both, align.weight * 0.5, align.bias, padding=1)
    inner = (slice(None), slice(None), slice(5, h - 5), slice(6, w - 6))
    torch.testing.assert_close(aligned[inner], plain[inner], atol=1e-4, rtol=1e-4)


def test_eraser_flow_maps_onto_the_basicvsrpp_directions() -> None:
    """Synthetic pan: content moves by (+3, +2) px from frame 0 to frame 1."""
    h, w, d = 40, 48, (3, 2)
    f0 = textured(h + 10, w + 10)
    frames = np.stack([f0[5 : 5 + h, 5 : 5 + w], f0[5 - d[1] : 5 - d[1] + h, 5 - d[0] : 5 - d[0] + w]])
    ones = np.ones((1, h, w, 1), np.float32)
    # PEANUT: forward[0] on frame 0 points into frame 1; backward[0] on frame 1 into frame 0.
    flows = FlowFields(
        forward=np.concatenate([ones * d[0], ones * d[1]], -1),
        backward=np.concatenate([ones * -d[0], ones * -d[1]], -1),
    )
    flows_forward, flows_backward = network_flows(flows, 2, h, w)
    t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    # Backward-time branch: warp frame 1 onto frame 0 with flows_backward[0].
    onto_0 = flow_warp(t[1:2], torch.from_numpy(flows_backward[:1]))
    # Forward-time branch: warp frame 0 onto frame 1 with flows_forward[0].
    onto_1 = flow_warp(t[0:1], torch.from_numpy(flows_forward[:1]))
    inner = (slice(None), slice(None), slice(4, h - 4), slice(4, w - 4))
    # Pixel values are 0..255; a wrong direction would be off by tens.
    torch.testing.assert_close(onto_0[inner], t[0:1][inner], atol=1e-2, rtol=0)
    torch.testing.assert_close(onto_1[inner], t[1:2][inner], atol=1e-2, rtol=0)
    wrong_way = flow_warp(t[1:2], torch.from_numpy(flows_forward[:1]))
    assert float((wrong_way[inner] - t[0:1][inner]).abs().mean()) > 5
    # Flows at another resolution are resized and their vectors rescaled.
    half = FlowFields(forward=flows.forward[:, ::2, ::2] / 2, backward=flows.backward[:, ::2, ::2] / 2)
    ff, fb = network_flows(half, 2, h, w)
    np.testing.assert_allclose(fb, flows_backward, atol=1e-5)
    np.testing.assert_allclose(ff, flows_forward, atol=1e-5)


def test_flow_reuse_replaces_spynet() -> None:
    model = tiny_model()
    called = []
    model.spynet.register_forward_hook(lambda *a: called.append(1))
    frames = np.stack([textured(24, 28, s) for s in range(3)])
    zero = np.zeros((2, 24, 28, 2), np.float32)
    settings = RunSettings(torch.device("cpu"), 0, 0, 10, 0, half=False)
    list(iter_upscaled(model, frames, FlowFields(zero, zero), settings))
    assert called == []
    list(iter_upscaled(model, frames, None, settings))
    assert called  # SPyNet ran both directions


# ---------------------------------------------------------------- runner: chunks and tiles


def test_tiles_and_chunks_stitch_back_exactly() -> None:
    model = tiny_model()
    # With the learned residual switched off the network is the bilinear x4 base,
    # which needs 1 px of context: any tiling with padding must give the same image.
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
    frames = np.stack([textured(30, 44, s) for s in range(7)])
    whole = RunSettings(torch.device("cpu"), 0, 0, 100, 0, half=False)
    tiled = RunSettings(torch.device("cpu"), 12, 3, 3, 1, half=False)
    a = np.concatenate([c for _, c in iter_upscaled(model, frames, None, whole)])
    chunks = list(iter_upscaled(model, frames, None, tiled))
    assert [s for s, _ in chunks] == [0, 3, 6]
    b = np.concatenate([c for _, c in chunks])
    assert a.shape == b.shape == (7, 120, 176, 3)
    # Equal up to the float rounding of values at exactly .5 (vectorised kernels
    # sum in another order on another tensor size); a misplaced tile is off by tens.
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_tiled_run_of_a_random_model_stays_close_to_the_whole_run() -> None:
    model = tiny_model(5)
    frames = np.stack([textured(32, 40, s) for s in range(5)])
    whole = RunSettings(torch.device("cpu"), 0, 0, 100, 0, half=False)
    tiled = RunSettings(torch.device("cpu"), 16, 8, 2, 2, half=False)
    a = np.concatenate([c for _, c in iter_upscaled(model, frames, None, whole)]).astype(float)
    b = np.concatenate([c for _, c in iter_upscaled(model, frames, None, tiled)]).astype(float)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 2.0  # only context near the seams differs


# ---------------------------------------------------------------- backend


@pytest.fixture()
def tiny_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Path:
    """The preferred model id's official file name, holding a tiny random model."""
    from peanut_server.models.registry import get_spec

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    models = tmp_path / "models"
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models))
    spec = get_spec(BASICVSRPP_MODEL_IDS[0])
    path = models / spec.id / spec.files[0].filename
    path.parent.mkdir(parents=True)
    torch.save(released_file(tiny_model(7).state_dict()), path)
    install_model_cache(None)  # a fresh model cache: no network from another test
    return path


def test_auto_order_prefers_basicvsrpp_only_when_weights_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(tmp_path / "none"))
    assert list(BACKENDS) == ["basicvsrpp", "lanczos"]
    ok, reason = BACKENDS["basicvsrpp"].availability()
    assert not ok and "peanut models pull basicvsrpp-reds4" in reason
    assert BACKENDS["lanczos"].availability() == (True, "")


@pytest.mark.parametrize("size", [(50, 70), (130, 170)])  # ratio 2.5 (area down), 6.5 (cubic up)
def test_backend_upscales_to_the_exact_size(tiny_weights: Path, size: tuple[int, int]) -> None:
    upscaler = BACKENDS["basicvsrpp"]()
    assert upscaler.availability() == (True, "")
    frames = np.stack([textured(20, 28, s) for s in range(5)])
    done = []
    reporter = Reporter(callback=lambda s: done.append(s.done))
    out = upscaler.upscale(frames, size, None, UpscalerOptions(tile=12, chunk=2), reporter)
    assert out.shape == (5, *size, 3) and out.dtype == np.uint8
    assert reporter.state.done == 5
    assert upscaler.ran_model_id == BASICVSRPP_MODEL_IDS[0]


def test_backend_uses_eraser_flow_unless_told_not_to(tiny_weights: Path) -> None:
    upscaler = BACKENDS["basicvsrpp"]()
    net = upscaler.model()
    calls = []
    handle = net.spynet.register_forward_hook(lambda *a: calls.append(1))
    try:
        frames = np.stack([textured(20, 24, s) for s in range(3)])
        zero = np.zeros((2, 20, 24, 2), np.float32)
        flows = FlowFields(zero, zero)
        with_reuse = upscaler.upscale(frames, (80, 96), flows, UpscalerOptions(), Reporter())
        assert calls == []
        without = upscaler.upscale(frames, (80, 96), flows, UpscalerOptions(reuse_flow=False), Reporter())
        assert calls
        assert with_reuse.shape == without.shape == (3, 80, 96, 3)
    finally:
        handle.remove()


def test_backend_stops_on_cancel(tiny_weights: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    frames = np.stack([textured(20, 24, s) for s in range(3)])
    with pytest.raises(JobCancelled):
        BACKENDS["basicvsrpp"]().upscale(frames, (80, 96), None, UpscalerOptions(), Reporter(cancel_event=cancel))


def test_corrupt_weights_file_is_a_model_error(tiny_weights: Path) -> None:
    tiny_weights.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read"):
        BACKENDS["basicvsrpp"]().upscale(
            np.zeros((2, 16, 16, 3), np.uint8), (64, 64), None, UpscalerOptions(), Reporter()
        )


def test_pipeline_auto_runs_basicvsrpp_when_its_weights_exist_and_says_so(tiny_weights: Path, tmp_path: Path) -> None:
    """Through the whole pipeline: `auto` picks BasicVSR++ and the job result names the weights."""
    import cv2

    from peanut_server.api import peanut_pb2 as pb
    from peanut_server.pipeline import Pipeline, spec_from_request

    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir()
    masks.mkdir()
    for i in range(4):
        cv2.imwrite(str(frames / f"f{i}.png"), textured(120, 160, i))
        mask = np.zeros((120, 160), np.uint8)
        mask[40:70, 50 + 5 * i : 90 + 5 * i] = 255
        cv2.imwrite(str(masks / f"m{i}.png"), mask)
    request = pb.SubmitRequest(
        source=pb.MediaRange(path=str(frames)),
        mask=pb.MaskSpec(mask_path=str(masks)),
        options=pb.Options(working_height=64, eraser="telea"),
        output=pb.OutputSpec(path=str(tmp_path / "out")),
    )
    result = Pipeline().run(spec_from_request(request), Reporter())
    upscaler = [r for r in result.backends if r.stage == "upscaler"][0]
    assert upscaler.backend == "basicvsrpp"
    assert f"weights {BASICVSRPP_MODEL_IDS[0]}" in upscaler.note
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_an_odd_number_of_offset_groups_is_refused_by_name() -> None:
    # Half the groups follow the flow to t-1 and half the flow to t-2; an odd count
    # used to build a network whose first forward pass failed with a size mismatch.
    with pytest.raises(ValueError, match="deform_groups"):
        BasicVSRPPConfig(mid_channels=8, num_blocks=1, deform_groups=1)
    net = BasicVSRPlusPlus(TINY)
    still = torch.zeros(1, 1, 2, 12, 16)
    out = net(torch.rand(1, 2, 3, 12, 16), flows=(still, still))  # the smallest even count runs
    assert out.shape == (1, 2, 3, 48, 64)
