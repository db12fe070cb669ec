"""Model weights, the device policy and the model cache: what every learned backend asks for.

Each stage declares its models in its own module (e.g. upscaler/basicvsrpp/
models.py) by calling `register`; `peanut models list|pull|import|verify|path`
and GetInfo read the table. Nothing here downloads at run time: `locate` only
looks on disk (the models directory, then the Hugging Face cache).

A learned backend (masker, RAFT, LaMa, BasicVSR++) asks
  `select(backend, job_device)` (device.py) where to run and in which precision,
  `model_cache().get_or_load(model_key(id, device, path), load, reserve)` (cache.py)
      for its network, so the daemon counts, shares and unloads it,
  and reports a job's `ModelNeed`s (weights + activations) for the check at Submit.
"""

from .cache import ModelCache, ModelNeed, install_model_cache, model_cache, model_key
from .device import Placement, resolve_device, select
from .registry import (
    ModelFile,
    ModelSpec,
    all_specs,
    get_spec,
    import_model,
    locate,
    models_dir,
    pull,
    register,
    verify,
)

__all__ = [
    "ModelCache",
    "ModelFile",
    "ModelNeed",
    "ModelSpec",
    "Placement",
    "all_specs",
    "get_spec",
    "import_model",
    "install_model_cache",
    "locate",
    "model_cache",
    "model_key",
    "models_dir",
    "pull",
    "register",
    "resolve_device",
    "select",
    "verify",
]
