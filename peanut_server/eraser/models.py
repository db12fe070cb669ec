"""Weights the eraser can use: LaMa (big-lama) for pixels no frame shows."""

from __future__ import annotations

from ..models.registry import ModelFile, ModelSpec, register

LAMA_ID = "big-lama"

LAMA = register(
    ModelSpec(
        id=LAMA_ID,
        stage="eraser",
        architecture="lama",
        files=(
            ModelFile(
                filename="big-lama.pt",
                # Not pinned: no copy could be hashed on this machine; `peanut models verify` says "unpinned".
                url="https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
                size=205_669_692,
            ),
        ),
        license="Apache-2.0",
        source="LaMa (Suvorov et al., WACV 2022), big-lama generator weights as loaded by spandrel",
        description="Image inpainting for never-seen pixels on keyframes (flowguided eraser).",
    )
)
