"""Agreement between the two SAM 2.1 implementations here: the sam2 package and transformers.

One set of random weights for one tiny config, written in both formats (the
sam2 package's .pt with its key names, and transformers' Sam2VideoModel folder
converted from it key by key), loaded by each backend's own tracker through
the registry, must give the same masks on a short clip. A key the conversion
misses or a shape that differs fails the strict load; a mapping that swaps two
tensors of one shape fails the comparison.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import transformers

from peanut_server.masker.learned import HFVideoTracker
from peanut_server.masker.sam2.tracker import Sam2PackageTracker
from tests.synthetic import MovingObject, composite_clip
from tests.test_masker_sam2pkg import TINY, build_tiny

S = 128  # the tiny model's input side (TINY: ++model.image_size=128)


def tiny_hf_config() -> transformers.Sam2VideoConfig:
    """transformers' config of the sam2 package's tiny model (TINY): the same Hiera and sizes."""
    return transformers.Sam2VideoConfig(
        vision_config=dict(
            model_type="sam2_vision_model",
            backbone_config=dict(
                model_type="sam2_hiera_det_model",
                hidden_size=8,
                num_attention_heads=1,
                blocks_per_stage=[1, 2, 2, 1],
                embed_dim_per_stage=[8, 16, 32, 64],
                num_attention_heads_per_stage=[1, 2, 4, 8],
                global_attention_blocks=[4],
                window_positional_embedding_background_size=[7, 7],  # sam2.1_hiera_t.yaml
                image_size=[S, S],
            ),
            backbone_channel_list=[64, 32, 16, 8],
            backbone_feature_sizes=[[S // 4] * 2, [S // 8] * 2, [S // 16] * 2],
        ),
        prompt_encoder_config=dict(image_size=S),
        image_size=S,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[S // 16, S // 16],
        memory_fuser_num_layers=1,
        num_maskmem=3,
    )


# Whole-name renames: the sam2 package's name -> transformers'.
TOP_LEVEL = {
    "maskmem_tpos_enc": "memory_temporal_positional_encoding",
    "no_mem_embed": "no_memory_embedding",
    "no_mem_pos_enc": "no_memory_positional_encoding",
    "no_obj_ptr": "no_object_pointer",
    "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter",
}
# Prefix and part renames, applied in order.
PARTS = (
    ("image_encoder.trunk.", "vision_encoder.backbone."),
    ("image_encoder.neck.", "vision_encoder.neck."),
    ("sam_mask_decoder.", "mask_decoder."),
    ("sam_prompt_encoder.", "prompt_encoder."),
    ("obj_ptr_tpos_proj.", "temporal_positional_encoding_projection_layer."),
    ("obj_ptr_proj.", "object_pointer_proj."),
    ("memory_encoder.fuser.", "memory_encoder.memory_fuser."),
    ("memory_encoder.pix_feat_proj.", "memory_encoder.feature_projection."),
    ("memory_encoder.out_proj.", "memory_encoder.projection."),
    ("memory_attention.norm.", "memory_attention.layer_norm."),
    ("patch_embed.proj.", "patch_embed.projection."),
    (".norm_final_attn.", ".layer_norm_final_attn."),
    (".dwconv.", ".depthwise_conv."),
    (".pwconv1.", ".pointwise_conv1."),
    (".pwconv2.", ".pointwise_conv2."),
)
# Sequential modules transformers names by part (index in the sam2 package's nn.Sequential).
UPSCALING = {0: "upscale_conv1", 1: "upscale_layer_norm", 3: "upscale_conv2"}
MASK_EMBED = {0: "conv1", 1: "layer_norm1", 3: "conv2", 4: "layer_norm2", 6: "conv3"}
# MLPs (the sam2 package's `layers.i`) whose first and last layers transformers calls proj_in / proj_out.
MLPS = r"(mlp|iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+|object_pointer_proj)"


def sam2_package_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A sam2 package SAM 2.1 state dict under transformers' Sam2VideoModel key names."""
    mlp_depth: dict[str, int] = {}
    downsampler_last = max(
        int(m.group(1)) for k in state if (m := re.match(r"memory_encoder\.mask_downsampler\.encoder\.(\d+)\.", k))
    )
    renamed: dict[str, torch.Tensor] = {}
    point_embeddings: dict[int, torch.Tensor] = {}
    for key, value in state.items():
        name = TOP_LEVEL.get(key, key)
        for old, new in PARTS:
            name = name.replace(old, new)
        name = re.sub(r"\.norm(\d)\.", r".layer_norm\1.", name)
        name = re.sub(r"(attn\w*)\.out_proj\.", r"\1.o_proj.", name)
        name = re.sub(r"^(vision_encoder\.neck\.convs\.\d+)\.conv\.", r"\1.", name)
        if name.startswith("memory_encoder.memory_fuser."):
            name = name.replace(".norm.", ".layer_norm.")
            name = re.sub(r"\.gamma$", ".scale", name)
        if m := re.match(r"mask_decoder\.output_upscaling\.(\d+)\.(\w+)$", name):
            name = f"mask_decoder.{UPSCALING[int(m.group(1))]}.{m.group(2)}"
        if m := re.match(r"prompt_encoder\.mask_downscaling\.(\d+)\.(\w+)$", name):
            name = f"prompt_encoder.mask_embed.{MASK_EMBED[int(m.group(1))]}.{m.group(2)}"
        if m := re.match(r"memory_encoder\.mask_downsampler\.encoder\.(\d+)\.(\w+)$", name):
            index, param = int(m.group(1)), m.group(2)
            # conv, layer norm, activation per stage; the last conv alone is the final projection
            if index == downsampler_last:
                name = f"memory_encoder.mask_downsampler.final_conv.{param}"
            else:
                part = "conv" if index % 3 == 0 else "layer_norm"
                name = f"memory_encoder.mask_downsampler.layers.{index // 3}.{part}.{param}"
        if m := re.match(rf"(.*\.|^){MLPS}\.layers\.(\d+)\.(\w+)$", name):
            mlp = m.group(1) + m.group(2)
            mlp_depth[mlp] = max(mlp_depth.get(mlp, 0), int(m.group(3)) + 1)
        if name == "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
            # One random Fourier matrix serves prompts and the image's dense positions.
            renamed["prompt_encoder.shared_embedding.positional_embedding"] = value
            renamed["shared_image_embedding.positional_embedding"] = value
            continue
        if m := re.match(r"prompt_encoder\.point_embeddings\.(\d+)\.weight$", name):
            point_embeddings[int(m.group(1))] = value
            continue
        renamed[name] = value
    renamed["prompt_encoder.point_embed.weight"] = torch.cat([point_embeddings[i] for i in sorted(point_embeddings)])
    out = {}
    for name, value in renamed.items():
        if m := re.match(rf"(.*\.|^){MLPS}\.layers\.(\d+)\.(\w+)$", name):
            mlp, index = m.group(1) + m.group(2), int(m.group(3))
            layer = "proj_in" if index == 0 else "proj_out" if index == mlp_depth[mlp] - 1 else f"layers.{index - 1}"
            name = f"{mlp}.{layer}.{m.group(4)}"
        out[name] = value
    return out


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One random tiny SAM 2.1 saved as the sam2 package's .pt and as a transformers folder."""
    root = tmp_path_factory.mktemp("models")
    state = build_tiny().state_dict()
    # Random weights track nothing: the object score says "no object" and the masks are
    # empty in both, which would agree trivially. An object always present and sharper
    # mask logits give masks with structure that change with the frame and the prompt.
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 10.0
    for key in [k for k in state if re.match(r"sam_mask_decoder\.output_hypernetworks_mlps\.\d+\.layers\.2\.", k)]:
        state[key] = state[key] * 50
    (root / "sam2.1-hiera-tiny").mkdir()
    torch.save({"model": state}, root / "sam2.1-hiera-tiny" / "sam2.1_hiera_tiny.pt")
    hf = transformers.Sam2VideoModel(tiny_hf_config())
    hf.load_state_dict(sam2_package_to_transformers(state), strict=True)  # every key, every shape
    hf.save_pretrained(root / "hf-sam2.1-hiera-tiny")
    return root


def clip(size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (S, S, 3), dtype=np.uint8)
    frames, _ = composite_clip(
        background, [MovingObject((210, 40, 40), (30, 60), (90, 64), radius=14, seed=1)], 6, (S, S)
    )
    return [
        np.ascontiguousarray(cv2.resize(f, size, interpolation=cv2.INTER_AREA)) if size != (S, S) else f for f in frames
    ]


def tracked(tracker, frames: list[np.ndarray], box) -> np.ndarray:
    session, first = tracker.start(frames[0], box=box)
    return np.stack([first] + [session.step(f) for f in frames[1:]])


def test_conversion_covers_every_key_of_the_package_model() -> None:
    state = build_tiny().state_dict()
    converted = sam2_package_to_transformers(state)
    expected = transformers.Sam2VideoModel(tiny_hf_config()).state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)
    # Every tensor of the package is used (the positional matrix twice, the point embeddings stacked).
    used = {v.data_ptr() for v in converted.values()}
    assert all(
        v.data_ptr() in used for k, v in state.items() if not k.startswith("sam_prompt_encoder.point_embeddings")
    )


def test_the_two_sam2_implementations_give_the_same_masks(
    both_formats: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(both_formats))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    package = Sam2PackageTracker("sam2.1-hiera-tiny", hydra_overrides=TINY)
    hf = HFVideoTracker("hf-sam2.1-hiera-tiny")

    # Frames at the model's own size: no resizing, so only the networks are compared.
    frames = clip((S, S))
    box = (14, 44, 46, 76)
    a, b = tracked(package, frames, box), tracked(hf, frames, box)
    assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()
    masks_a, masks_b = a > 0.5, b > 0.5
    assert (masks_a == masks_b).mean() > 0.9999
    # ... and the masks are not trivial: they cover part of the frame, follow the frames and the prompt.
    assert 0.05 < masks_a.mean() < 0.95
    assert np.abs(a[0] - a[-1]).max() > 0.5
    assert np.abs(a[0] - tracked(package, frames[:1], (80, 10, 120, 40))[0]).max() > 0.1

    # Frames as the masker hands them (another size): each implementation resizes in its own
    # way (cv2 bilinear in sam2pkg's frame store, transformers' processor), so only close.
    small = clip((96, 64))
    box = (10, 22, 35, 40)
    a, b = tracked(package, small, box), tracked(hf, small, box)
    assert np.abs(a - b).max() < 0.1, np.abs(a - b).max()
    assert ((a > 0.5) == (b > 0.5)).mean() > 0.99


@pytest.mark.parametrize(
    ("config", "size"),
    [("configs/sam2.1/sam2.1_hiera_t.yaml", "tiny"), ("configs/sam2.1/sam2.1_hiera_b+.yaml", "base-plus")],
)
def test_conversion_fits_the_released_sizes(config: str, size: str) -> None:
    """At the released sizes too (the sam2 package's official configs, 39 M and 81 M parameters),
    every converted key and shape fits transformers' model of that size as benchmarks/gpu_check.py
    builds it."""
    from sam2.build_sam import build_sam2_video_predictor

    from benchmarks.gpu_check import sam2_hf_config

    state = build_sam2_video_predictor(config, None, device="cpu").state_dict()
    converted = sam2_package_to_transformers(state)
    with torch.device("meta"):
        expected = transformers.Sam2VideoModel(sam2_hf_config(size, tiny=False)).state_dict()
    assert set(converted) == set(expected)
    assert [k for k in expected if converted[k].shape != expected[k].shape] == []
    assert sum(v.numel() for v in expected.values()) == sum(v.numel() for v in converted.values())
