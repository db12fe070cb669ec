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

Without network (`import_model`): files fetched by hand on another machine
(`download_urls` says from where) are checked and placed where lookup finds
them: the Hugging Face cache layout for models hosted on the hub (so
transformers finds them offline too), the models directory for the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
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
    filename: str  # name inside the hub repo / cache
    sha256: str = ""  # empty: not pinned (reported by verify)
    url: str = ""  # direct download when not in a hub repo
    size: int = 0  # bytes, informational


@dataclass(frozen=True)
class ModelSpec:
    id: str  # "basicvsrpp-reds4"
    stage: str  # "masker", "eraser", "upscaler", "flow"
    architecture: str  # "basicvsrpp", "sam2.1_hiera_tiny", ...
    files: tuple[ModelFile, ...]
    repo_id: str = ""  # Hugging Face repo, when hosted there
    revision: str = "main"
    license: str = ""
    source: str = ""  # where the weights come from, for people
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


def _models_dir_candidates(spec: ModelSpec, file: ModelFile) -> list[Path]:
    candidates = []
    env = os.environ.get("PEANUT_MODELS_DIR")
    if env:
        candidates.append(Path(env).expanduser() / spec.id / file.filename)
    candidates.append(resolve_state_dir() / "models" / spec.id / file.filename)
    return candidates


def locate_file(spec: ModelSpec, file: ModelFile) -> Path | None:
    for path in _models_dir_candidates(spec, file):
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


# -- by hand: the files to fetch elsewhere, and bringing them in ---------------------------------------

HUB_URL = "https://huggingface.co/{repo}/resolve/{revision}/{filename}"


def download_urls(spec: ModelSpec, file: ModelFile) -> list[str]:
    """Where `file` can be fetched by hand: its direct URL, and its hub URL when it lives in a hub repo."""
    urls = [file.url] if file.url else []
    if spec.repo_id:
        urls.append(HUB_URL.format(repo=spec.repo_id, revision=spec.revision, filename=file.filename))
    return urls


def _hub_snapshot_dir(spec: ModelSpec) -> tuple[Path, Path, str]:
    """(repo folder, snapshot folder, commit) in the Hugging Face cache for an import of `spec`.

    An existing ref (a partial earlier download) is kept, so every file of the
    model ends up in one snapshot folder (the maskers load from one folder).
    Without one, the ref points at a commit name made from the repo and
    revision: the files carry no hub commit, and a later online download
    simply moves the ref to the hub's own commit.
    """
    from huggingface_hub.file_download import repo_folder_name

    repo = hf_cache_dir() / repo_folder_name(repo_id=spec.repo_id, repo_type="model")
    ref = repo / "refs" / spec.revision
    if ref.is_file():
        commit = ref.read_text().strip()
    elif re.fullmatch(r"[0-9a-f]{40}", spec.revision):
        commit = spec.revision
    else:
        commit = hashlib.sha1(f"peanut-import:{spec.repo_id}@{spec.revision}".encode()).hexdigest()
    return repo, repo / "snapshots" / commit, commit


def import_destination(spec: ModelSpec, file: ModelFile) -> Path:
    """Where `peanut models import` puts `file`: the hub cache layout for hub models, else the models directory.

    A copy already in a models directory is looked up before the hub cache, so
    an import goes there instead (subject to --overwrite) rather than being
    shadowed by it.
    """
    for path in _models_dir_candidates(spec, file):
        if path.is_file():
            return path
    if spec.repo_id:
        return _hub_snapshot_dir(spec)[1] / file.filename
    return models_dir() / spec.id / file.filename


def _import_sources(spec: ModelSpec, source: Path) -> dict[str, Path]:
    """{filename: file to import} for every file of `spec`, from one file or one folder; ModelError otherwise."""
    expected = ", ".join(f.filename for f in spec.files)
    if source.is_file():
        if len(spec.files) == 1:
            return {spec.files[0].filename: source}
        raise ModelError(
            f"{spec.id} has {len(spec.files)} files ({expected}): give the folder that holds them, not one file",
            code="MODEL_IMPORT_INVALID",
        )
    if not source.is_dir():
        raise ModelError(f"{source} is not a file or a folder", code="MODEL_IMPORT_INVALID")
    found, missing = {}, []
    for file in spec.files:
        for candidate in (source / file.filename, source / Path(file.filename).name):
            if candidate.is_file():
                found[file.filename] = candidate
                break
        else:
            missing.append(file.filename)
    if missing:
        raise ModelError(
            f"{source} lacks {', '.join(missing)} of {spec.id} (expected: {expected}); nothing was imported",
            code="MODEL_IMPORT_INVALID",
        )
    return found


def _copy_atomically(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".peanut-import", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _place_in_hub_cache(spec: ModelSpec, source: Path, file: ModelFile, digest: str) -> Path:
    """blobs/<sha256> + snapshots/<commit>/<file> -> ../../blobs/<sha256> + refs/<revision>, as huggingface_hub lays them out."""
    repo, snapshot, commit = _hub_snapshot_dir(spec)
    blob = repo / "blobs" / digest
    if not blob.is_file():
        _copy_atomically(source, blob)
    link = snapshot / file.filename
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()  # only reached with --overwrite, or for a dangling link
    try:
        link.symlink_to(os.path.relpath(blob, link.parent))
    except OSError:  # no symlinks (Windows without developer mode): huggingface_hub copies too
        _copy_atomically(blob, link)
    ref = repo / "refs" / spec.revision
    if not ref.is_file():
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return link


def import_model(model_id: str, source: str | os.PathLike, overwrite: bool = False) -> dict[str, tuple[Path, str]]:
    """Bring a model's files, downloaded on another machine, to where `locate` finds them.

    `source` is the file (models of one file) or a folder holding the files.
    Every file is checked before anything is placed: a sha256 the registry
    pins must match (else ModelError with both digests), and a different file
    already at the destination is kept unless `overwrite`. Returns
    {filename: (placed path, "imported" | "already there")}.
    """
    spec = get_spec(model_id)
    source = Path(source).expanduser()
    sources = _import_sources(spec, source)
    plan = []
    for file in spec.files:
        src = sources[file.filename]
        digest = sha256_of(src)
        if file.sha256 and digest != file.sha256:
            raise ModelError(
                f"{model_id}: {src} has sha256 {digest}, but the registry pins {file.filename} to "
                f"{file.sha256}; nothing was imported",
                code="MODEL_CHECKSUM",
            )
        dest = import_destination(spec, file)
        if dest.is_file() and sha256_of(dest) == digest:
            plan.append((file, src, dest, digest, "already there"))
            continue
        if dest.exists() and not overwrite:  # a dangling link holds nothing: replaced
            raise ModelError(
                f"{model_id}: {dest} already exists and differs from {src}; nothing was imported "
                f"(pass --overwrite to replace it)",
                code="MODEL_EXISTS",
            )
        plan.append((file, src, dest, digest, "imported"))
    placed = {}
    for file, src, dest, digest, verdict in plan:
        if verdict == "imported":
            in_hub_cache = bool(spec.repo_id) and dest == _hub_snapshot_dir(spec)[1] / file.filename
            if in_hub_cache:
                dest = _place_in_hub_cache(spec, src, file, digest)
            else:
                _copy_atomically(src, dest)
        placed[file.filename] = (dest, verdict)
    return placed
