"""The registry of model ids, and where their files are on disk.

Lookup order for each file of a model:
  1. $PEANUT_MODELS_DIR/<model id>/<file name>
  2. <state dir>/models/<model id>/<file name>
  3. the Hugging Face cache (HF_HOME / HF_HUB_CACHE layout), for models that
     live in a hub repository: models--<org>--<name>/snapshots/<rev>/<file>
  4. the torch hub cache (<TORCH_HOME>/hub/checkpoints/<file>), for torchvision
     checkpoints.
`pull` downloads through huggingface_hub (or the file's URL) into the models
directory and refuses a file whose sha256 differs from the table's; it fails
with a clear message under HF_HUB_OFFLINE=1 or without network.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..statedir import resolve_state_dir

# Modules that register models when imported. Listed here rather than
# discovered so `peanut models list` is the same on every machine.
_SPEC_MODULES = (
    "peanut_server.flow.models",
    "peanut_server.eraser.models",
    "peanut_server.masker.models",
    "peanut_server.upscaler.models",
)


@dataclass(frozen=True)
class ModelFile:
    filename: str                 # name inside the hub repo / cache
    sha256: str = ""              # empty: not pinned (reported by verify)
    url: str = ""                 # direct download when not in a hub repo
    size: int = 0                 # bytes, informational


@dataclass(frozen=True)
class ModelSpec:
    id: str                       # "basicvsrpp-reds4"
    stage: str                    # "masker", "eraser", "upscaler", "flow"
    architecture: str             # "basicvsrpp", "sam2.1_hiera_tiny", ...
    files: tuple[ModelFile, ...]
    repo_id: str = ""             # Hugging Face repo, when hosted there
    revision: str = "main"
    license: str = ""
    source: str = ""              # where the weights come from, for people
    description: str = ""
    config: dict = field(default_factory=dict, hash=False, compare=False)


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    existing = _REGISTRY.get(spec.id)
    if existing is not None and existing != spec:
        raise ValueError(f"model id {spec.id!r} registered twice with different specs")
    _REGISTRY[spec.id] = spec
    return spec


def _load_spec_modules() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in _SPEC_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A stage without a models module simply has no learned weights.
            if exc.name != name:
                raise


def all_specs() -> list[ModelSpec]:
    _load_spec_modules()
    return sorted(_REGISTRY.values(), key=lambda s: (s.stage, s.id))


def get_spec(model_id: str) -> ModelSpec:
    _load_spec_modules()
    try:
        return _REGISTRY[model_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ModelError(f"unknown model id {model_id!r} (known: {known})", code="MODEL_UNKNOWN") from None


def models_dir() -> Path:
    env = os.environ.get("PEANUT_MODELS_DIR")
    return Path(env).expanduser() if env else resolve_state_dir() / "models"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it once at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "huggingface"
    )
    return Path(hf_home).expanduser() / "hub"


def _hf_cache_file(spec: ModelSpec, filename: str) -> Path | None:
    if not spec.repo_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(spec.repo_id, filename, cache_dir=hf_cache_dir(), revision=spec.revision)
    return Path(found) if isinstance(found, str) else None


def _torch_hub_file(filename: str) -> Path | None:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "torch"
    )
    path = Path(torch_home) / "hub" / "checkpoints" / filename
    return path if path.is_file() else None


def locate_file(spec: ModelSpec, file: ModelFile) -> Path | None:
    candidates = []
    env = os.environ.get("PEANUT_MODELS_DIR")
    if env:
        candidates.append(Path(env).expanduser() / spec.id / file.filename)
    candidates.append(resolve_state_dir() / "models" / spec.id / file.filename)
    for path in candidates:
        if path.is_file():
            return path
    return _hf_cache_file(spec, file.filename) or _torch_hub_file(Path(file.filename).name)


def locate(model_id: str) -> dict[str, Path] | None:
    """{filename: path} when every file of the model is on disk, else None."""
    spec = get_spec(model_id)
    found = {}
    for file in spec.files:
        path = locate_file(spec, file)
        if path is None:
            return None
        found[file.filename] = path
    return found


def missing_reason(model_id: str) -> str:
    spec = get_spec(model_id)
    missing = [f.filename for f in spec.files if locate_file(spec, f) is None]
    if not missing:
        return ""
    return f"weights not found ({', '.join(missing)}); run `peanut models pull {model_id}`"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(model_id: str) -> dict[str, str]:
    """{filename: "ok" | "missing" | "unpinned" | "MISMATCH <sha>"} for each file."""
    spec = get_spec(model_id)
    result = {}
    for file in spec.files:
        path = locate_file(spec, file)
        if path is None:
            result[file.filename] = "missing"
        elif not file.sha256:
            result[file.filename] = "unpinned"
        else:
            actual = sha256_of(path)
            result[file.filename] = "ok" if actual == file.sha256 else f"MISMATCH {actual}"
    return result


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def pull(model_id: str) -> dict[str, Path]:
    """Download every missing file of a model into the models directory, checked."""
    spec = get_spec(model_id)
    target_dir = models_dir() / spec.id
    paths = {}
    for file in spec.files:
        existing = locate_file(spec, file)
        if existing is not None:
            paths[file.filename] = existing
            continue
        if _offline():
            raise ModelError(
                f"{model_id}: {file.filename} is not on disk and HF_HUB_OFFLINE is set",
                code="MODEL_OFFLINE",
            )
        target_dir.mkdir(parents=True, exist_ok=True)
        dest = target_dir / file.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
            tmp_path = Path(tmp) / Path(file.filename).name
            try:
                if spec.repo_id:
                    from huggingface_hub import hf_hub_download

                    got = hf_hub_download(spec.repo_id, file.filename, revision=spec.revision, local_dir=tmp)
                    shutil.move(got, tmp_path)
                elif file.url:
                    with urllib.request.urlopen(file.url, timeout=60) as resp, open(tmp_path, "wb") as out:
                        shutil.copyfileobj(resp, out)
                else:
                    raise ModelError(f"{model_id}: no source for {file.filename}", code="MODEL_NO_SOURCE")
            except ModelError:
                raise
            except Exception as exc:  # network errors come in many types
                raise ModelError(
                    f"{model_id}: could not download {file.filename}: {type(exc).__name__}: {exc}",
                    code="MODEL_DOWNLOAD_FAILED",
                ) from exc
            if file.sha256:
                actual = sha256_of(tmp_path)
                if actual != file.sha256:
                    raise ModelError(
                        f"{model_id}: {file.filename} has sha256 {actual}, expected {file.sha256}",
                        code="MODEL_CHECKSUM",
                    )
            os.replace(tmp_path, dest)
        paths[file.filename] = dest
    return paths
