"""Tiny random models of the real architectures, built from small configs: one place for the
tests and for `python -m benchmarks.gpu_check --tiny`, so the two cannot drift apart.

The configs keep the released structure (layer kinds, key names, memory layout) and
shrink widths, depths and the input side, so a model builds and runs in seconds on a CPU.
"""

from __future__ import annotations

S = 128  # the tiny SAM 2 input side


def clip_text_config(vocab: dict, **overrides) -> dict:
    """A one-layer, 32-wide CLIP text encoder for `vocab` (byte_clip_tokenizer's); `overrides`
    replace or add fields (the tiny SAM 3 wants 32 positions and a projection)."""
    return (
        dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=40,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
        | overrides
    )


def tiny_sam2_config(cls_name: str = "Sam2VideoConfig"):
    """transformers' SAM 2.1 video config (or EdgeTAM's, same family) at 128 px with an 8-wide Hiera."""
    import transformers  # here: importing this module (gpu_check does) must stay cheap

    cls = getattr(transformers, cls_name)
    if cls_name == "EdgeTamVideoConfig":
        # EdgeTAM compresses memories with a perceiver and names its MLP size differently.
        extra = dict(
            memory_attention_mlp_hidden_size=64,
            memory_attention_rope_k_sizes=[4, 4],
            perceiver_resampler_num_latents=16,
            perceiver_resampler_num_latents_2d=16,
            perceiver_resampler_num_layers=1,
            perceiver_resampler_mlp_intermediate_size=64,
        )
    else:
        extra = dict(memory_attention_feed_forward_hidden_size=64)
    return cls(
        **extra,
        vision_config=dict(
            model_type="sam2_vision_model",
            backbone_config=dict(
                model_type="sam2_hiera_det_model",
                hidden_size=8,
                num_attention_heads=1,
                blocks_per_stage=[1, 2, 2, 1],
                embed_dim_per_stage=[8, 16, 32, 64],
                num_attention_heads_per_stage=[1, 1, 1, 1],
                window_size_per_stage=[4, 4, 4, 2],
                global_attention_blocks=[4],
                window_positional_embedding_background_size=[4, 4],
                image_size=[S, S],
            ),
            backbone_channel_list=[64, 32, 16, 8],
            backbone_feature_sizes=[[S // 4, S // 4], [S // 8, S // 8], [S // 16, S // 16]],
            fpn_hidden_size=128,
        ),
        prompt_encoder_config=dict(hidden_size=128, image_size=S, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
        # mem_dim (memory_encoder_output_channels) stays 64 as in the release; it must be
        # smaller than the hidden size, which the object pointers are split into.
        image_size=S,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_rope_feat_sizes=[S // 16, S // 16],
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=64,
        num_maskmem=3,
    )


# The official tiny config shrunk: 128 px input, 8-wide Hiera, one memory-attention layer.
SAM2_PACKAGE_TINY = (
    "++model.image_size=128",
    "++model.image_encoder.trunk.embed_dim=8",
    "++model.image_encoder.trunk.stages=[1,2,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[4]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=64",
    "++model.memory_attention.layer.self_attention.feat_sizes=[8,8]",
    "++model.memory_attention.layer.cross_attention.feat_sizes=[8,8]",
    "++model.memory_encoder.fuser.num_layers=1",
    "++model.num_maskmem=3",
)


def byte_clip_tokenizer():
    """A byte-level CLIP tokenizer with no merges (every character a token): no download needed."""
    import transformers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=[]), vocab


SIDE, PATCH, H = 112, 14, 128  # 8x8 ViT tokens; 128 > the 64-channel memory, as in the release


def tiny_sam3(detect_threshold: float, queries: int):
    """A SAM 3 video model (random weights) at 112 px and its processor; `queries` detector queries."""
    import transformers

    tok, vocab = byte_clip_tokenizer()
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
        text_config=clip_text_config(vocab, model_type="clip_text_model", projection_dim=H, max_position_embeddings=32),
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


def tiny_grounding_dino_config(vocab_size: int):
    """Grounding DINO with a 16-wide Swin, a one-layer BERT text encoder and 10 queries, 64 px input."""
    import transformers

    return transformers.GroundingDinoConfig(
        backbone_config=dict(
            model_type="swin",
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=4,
            image_size=64,
            out_indices=[2, 3, 4],
        ),
        text_config=dict(
            model_type="bert",
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=10,
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
    )


def save_basicvsrpp_checkpoint(models, config=None):
    """A random BasicVSR++ (tiny unless `config` is given) saved as the preferred model id's
    official file under the models folder `models`, with the release's "generator." key names;
    returns the file's path. The caller seeds torch if it needs the same weights every time."""
    import torch

    from peanut_server.models.registry import get_spec
    from peanut_server.upscaler.basicvsrpp.network import BasicVSRPlusPlus, BasicVSRPPConfig
    from peanut_server.upscaler.models import BASICVSRPP_MODEL_IDS

    spec = get_spec(BASICVSRPP_MODEL_IDS[0])
    net = BasicVSRPlusPlus(config or BasicVSRPPConfig(mid_channels=8, num_blocks=1, deform_groups=2))
    path = models / spec.id / spec.files[0].filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"generator." + k: v for k, v in net.state_dict().items()}}, path)
    return path
