"""The upscaler's learned weights: the released BasicVSR++ x4 checkpoints.

Files are the OpenMMLab model zoo releases (mmediting, now mmagic), loaded
unchanged by basicvsrpp/loader.py. The sha256 values are of the released
.pth files; their first 8 hex digits are the suffix OpenMMLab puts in the file
name (mmcv's publish convention), which is a cross-check on them.
"""

from __future__ import annotations

from ..models.registry import ModelFile, ModelSpec, register

_BASE_URL = "https://download.openmmlab.com/mmediting/restorers/basicvsr_plusplus/"
_LICENSE = "Apache-2.0 (OpenMMLab mmagic model zoo); trained on REDS / Vimeo-90K, research datasets"
_CONFIG = {"mid_channels": 64, "num_blocks": 7, "scale": 4}

# id -> (file name, sha256, description); listed in the order `auto` prefers them:
# REDS is real camera footage with bicubic (BI) degradation, closest to a
# working-resolution crop made with a resampling filter.
_RELEASES = {
    "basicvsrpp-reds4": (
        "basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth",
        "db622b2fd4caae0a4c63ab5e54f1cfef7a62a0f3b8ad101aba2eae068d928549",
        "BasicVSR++ x4, REDS (bicubic down-sampling), 600k iterations",
    ),
    "basicvsrpp-vimeo90k-bi": (
        "basicvsr_plusplus_c64n7_8x1_300k_vimeo90k_bi_20210305-4ef437e2.pth",
        "4ef437e27e7ed468853d9bad2e7a02e50fd4582c986a5cb4231054b0021b2e81",
        "BasicVSR++ x4, Vimeo-90K (bicubic down-sampling)",
    ),
    "basicvsrpp-vimeo90k-bd": (
        "basicvsr_plusplus_c64n7_8x1_300k_vimeo90k_bd_20210305-ab315ab1.pth",
        "ab315ab1d83d09834d43c8ba17d019282a93f0cbf40bfd49be99dfcebf4c12eb",
        "BasicVSR++ x4, Vimeo-90K (Gaussian blur + down-sampling)",
    ),
}

BASICVSRPP_MODEL_IDS: tuple[str, ...] = tuple(_RELEASES)

for _id, (_file, _sha, _desc) in _RELEASES.items():
    register(
        ModelSpec(
            id=_id,
            stage="upscaler",
            architecture="basicvsrpp",
            files=(ModelFile(filename=_file, sha256=_sha, url=_BASE_URL + _file),),
            license=_LICENSE,
            source="OpenMMLab mmagic model zoo (configs/basicvsr_pp), " + _BASE_URL,
            description=_desc,
            config=dict(_CONFIG),
        )
    )
