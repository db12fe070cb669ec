"""SAM 3 (transformers Sam3VideoModel) with a tiny random model saved and loaded
through from_pretrained, as the backend loads the real checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # required dependencies: a broken install fails here, it is not skipped
import transformers

if not hasattr(transformers, "Sam3VideoModel"):
    pytest.skip("this transformers has no Sam3VideoModel", allow_module_level=True)

from peanut_server.errors import PromptError  # noqa: E402
from peanut_server.masker import BACKENDS, MaskerOptions, MaskPrompt, Sam3Masker  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.synthetic import ArraySource  # noqa: E402


def clip_tokenizer():
    """A byte-level CLIP tokenizer with no merges: every character is a token."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=[]), vocab


SIDE, PATCH, H = 112, 14, 128  # 8x8 ViT tokens; 128 > the 64-channel memory, as in the release


def tiny_sam3(detect_threshold: float, queries: int):
    tok, vocab = clip_tokenizer()
    vision = dict(
        model_type="sam3_vision_model",
        fpn_hidden_size=H,
        backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        backbone_config=dict(
            model_type="sam3_vit_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=SIDE,
            patch_size=PATCH,
            window_size=4,
            global_attn_indexes=[1],
            pretrain_image_size=SIDE,
        ),
    )
    small = dict(hidden_size=H, num_layers=1, num_attention_heads=2, intermediate_size=64)
    detector = dict(
        vision_config=vision,
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            projection_dim=H,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            pad_token_id=vocab["<|endoftext|>"],
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
        ),
        geometry_encoder_config=small,
        detr_encoder_config=small,
        detr_decoder_config=dict(small, num_queries=queries),
        mask_decoder_config=dict(hidden_size=H, num_attention_heads=2),
    )
    tracker = dict(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=H, image_size=SIDE, patch_size=PATCH, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=H, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
        image_size=SIDE,
        memory_attention_hidden_size=H,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[8, 8],
        memory_encoder_hidden_size=H,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=H,
        memory_fuser_embed_dim=H,
        memory_fuser_intermediate_dim=64,
        num_maskmem=3,
    )
    config = transformers.Sam3VideoConfig(
        detector_config=detector,
        tracker_config=tracker,
        low_res_mask_size=32,
        score_threshold_detection=detect_threshold,
        new_det_thresh=detect_threshold,
    )
    processor = transformers.Sam3VideoProcessor(
        image_processor=transformers.Sam3ImageProcessor(size={"height": SIDE, "width": SIDE}),
        video_processor=transformers.Sam2VideoVideoProcessor(size={"height": SIDE, "width": SIDE}),
        tokenizer=tok,
    )
    return transformers.Sam3VideoModel(config).eval(), processor


def save(root: Path, detect_threshold: float, queries: int = 1) -> Path:
    torch.manual_seed(0)
    model, processor = tiny_sam3(detect_threshold, queries)
    model.save_pretrained(root / "sam3")
    processor.save_pretrained(root / "sam3")
    return root


def frames(n: int = 4) -> ArraySource:
    rng = np.random.default_rng(0)
    return ArraySource([rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(n)])


def test_sam3_finds_and_follows_one_instance(tmp_path, monkeypatch, state_dir) -> None:
    # A zero detection threshold: a random detector's one query becomes an instance.
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(save(tmp_path, 0.0)))
    assert Sam3Masker.availability() == (True, "")
    assert list(BACKENDS)[0] == "sam3"
    masker = Sam3Masker()
    out = list(masker.masks(frames(), 0, 4, MaskPrompt(text="the ball on the left"), MaskerOptions(), Reporter()))
    assert len(out) == 4 and all(m.shape == (64, 96) and m.dtype == bool for m in out)
    assert "instance" in masker.report.chosen_object and masker.report.extra["tracker"] == "sam3"


def test_sam3_nothing_found_is_an_error(tmp_path, monkeypatch, state_dir) -> None:
    # A threshold no score can pass: nothing is detected, and no empty output is handed on.
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(save(tmp_path, 1.1)))
    with pytest.raises(PromptError, match="SAM 3 found nothing"):
        list(Sam3Masker().masks(frames(3), 0, 3, MaskPrompt(text="red ball"), MaskerOptions(), Reporter()))


def test_sam3_several_instances_the_words_cannot_separate(tmp_path, monkeypatch, state_dir) -> None:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(save(tmp_path, 0.0, queries=6)))
    with pytest.raises(PromptError, match=r"found \d instances \(SAM 3\)") as info:
        list(Sam3Masker().masks(frames(2), 0, 2, MaskPrompt(text="ball"), MaskerOptions(), Reporter()))
    assert info.value.code == "PROMPT_AMBIGUOUS"
