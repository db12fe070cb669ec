"""RAFT checkpoints (torchvision's), found in the torch hub cache by their file names."""

from __future__ import annotations

from ..models.registry import ModelFile, ModelSpec, register

RAFT_IDS = {"raft_small": "raft-small", "raft_large": "raft-large"}

RAFT_SMALL = register(
    ModelSpec(
        id="raft-small",
        stage="flow",
        architecture="raft_small",
        files=(
            ModelFile(
                filename="raft_small_C_T_V2-01064c6d.pth",
                # torchvision pins the first 8 hex digits of the sha256 in the name; the full hash is not pinned here.
                url="https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
            ),
        ),
        license="BSD-3-Clause",
        source="torchvision Raft_Small_Weights.C_T_V2 (Teed & Deng, ECCV 2020)",
        description="RAFT small optical flow (4M params) for the eraser",
    )
)

RAFT_LARGE = register(
    ModelSpec(
        id="raft-large",
        stage="flow",
        architecture="raft_large",
        files=(
            ModelFile(
                filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            ),
        ),
        license="BSD-3-Clause",
        source="torchvision Raft_Large_Weights.C_T_SKHT_V2 (Teed & Deng, ECCV 2020)",
        description="RAFT large optical flow (5M params) for the eraser",
    )
)
