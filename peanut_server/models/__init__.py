"""Model weights: one table of ids, found locally, pulled and verified on request.

Each stage declares its models in its own module (e.g. upscaler/basicvsrpp/
models.py) by calling `register`; `peanut models list|pull|verify|path` and
GetInfo read the table. Nothing here downloads at run time: `locate` only
looks on disk (the models directory, then the Hugging Face cache).
"""

from .registry import (
    ModelFile,
    ModelSpec,
    all_specs,
    get_spec,
    locate,
    models_dir,
    pull,
    register,
    verify,
)

__all__ = [
    "ModelFile",
    "ModelSpec",
    "all_specs",
    "get_spec",
    "locate",
    "models_dir",
    "pull",
    "register",
    "verify",
]
