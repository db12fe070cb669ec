"""Weights the masker's learned backends can use (registered with the model registry).

sha256 values are left empty (unpinned: `peanut models verify` says so) where no
official checksum is published; the files are identified by repo and name.
"""

from __future__ import annotations

from ..models.registry import ModelFile, ModelSpec, register

_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_HF_FILES = (ModelFile("config.json"), ModelFile("model.safetensors"))

# SAM 2.1 for the `sam2` package: official .pt checkpoint; the config ships with the package.
SAM2_PACKAGE = {
    "sam2.1-hiera-tiny": ("sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
    "sam2.1-hiera-small": ("sam2.1_hiera_small.pt", "configs/sam2.1/sam2.1_hiera_s.yaml"),
    "sam2.1-hiera-base-plus": ("sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
    "sam2.1-hiera-large": ("sam2.1_hiera_large.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
}
for _id, (_file, _cfg) in SAM2_PACKAGE.items():
    register(
        ModelSpec(
            id=_id,
            stage="masker",
            architecture=_file[:-3],
            files=(ModelFile(_file, url=_SAM2_URL + _file),),
            repo_id="facebook/" + _id,
            license="Apache-2.0",
            source="facebookresearch/sam2 release 092824 (also on the Hugging Face hub)",
            description="SAM 2.1 video tracker for the sam2 package",
            config={"sam2_config": _cfg},
        )
    )

# The same models converted for transformers (Sam2VideoModel / Sam2VideoProcessor).
for _size_name in ("tiny", "small", "base-plus", "large"):
    register(
        ModelSpec(
            id=f"hf-sam2.1-hiera-{_size_name}",
            stage="masker",
            architecture="sam2_video",
            # The processor is rebuilt from config.json (image size; ImageNet statistics).
            files=_HF_FILES,
            repo_id=f"facebook/sam2.1-hiera-{_size_name}",
            license="Apache-2.0",
            source="Hugging Face hub, transformers format",
            description="SAM 2.1 video tracker (transformers)",
        )
    )

register(
    ModelSpec(
        id="edgetam",
        stage="masker",
        architecture="edgetam_video",
        files=_HF_FILES,
        repo_id="yonigozlan/EdgeTAM-hf",
        license="Apache-2.0",
        source="facebookresearch/EdgeTAM, converted for transformers",
        description="EdgeTAM on-device video tracker (transformers EdgeTamVideoModel)",
    )
)
register(
    ModelSpec(
        id="sam3",
        stage="masker",
        architecture="sam3_video",
        files=_HF_FILES
        + (ModelFile("processor_config.json"), ModelFile("tokenizer.json"), ModelFile("tokenizer_config.json")),
        repo_id="facebook/sam3",
        license="SAM License (gated: accept on the hub first)",
        source="Hugging Face hub",
        description="SAM 3: text prompts to masks and ids of every instance, in video",
    )
)
for _id, _repo in (
    ("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny"),
    ("grounding-dino-base", "IDEA-Research/grounding-dino-base"),
):
    register(
        ModelSpec(
            id=_id,
            stage="masker",
            architecture="grounding_dino",
            files=_HF_FILES
            + (
                ModelFile("preprocessor_config.json"),
                ModelFile("tokenizer.json"),
                ModelFile("tokenizer_config.json"),
                ModelFile("vocab.txt"),
            ),
            repo_id=_repo,
            license="Apache-2.0",
            source="Hugging Face hub",
            description="open-vocabulary boxes from text (AutoModelForZeroShotObjectDetection)",
        )
    )
register(
    ModelSpec(
        id="owlv2-base",
        stage="masker",
        architecture="owlv2",
        files=_HF_FILES
        + (ModelFile("preprocessor_config.json"), ModelFile("tokenizer.json"), ModelFile("tokenizer_config.json")),
        repo_id="google/owlv2-base-patch16-ensemble",
        license="Apache-2.0",
        source="Hugging Face hub",
        description="open-vocabulary boxes from text (Owlv2ForObjectDetection)",
    )
)
register(
    ModelSpec(
        id="clip-vit-b32",
        stage="masker",
        architecture="clip",
        files=_HF_FILES
        + (ModelFile("preprocessor_config.json"), ModelFile("tokenizer.json"), ModelFile("tokenizer_config.json")),
        repo_id="openai/clip-vit-base-patch32",
        license="MIT",
        source="Hugging Face hub",
        description="scores candidate crops against the sentence (disambiguation)",
    )
)
