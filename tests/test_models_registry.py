"""The model registry: lookup on disk (models dir, Hugging Face cache layout), pull and verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from peanut_server.cli import main as cli_main
from peanut_server.errors import ModelError
from peanut_server.models import ModelFile, ModelSpec, locate, pull, register, verify
from peanut_server.models.registry import all_specs

PAYLOAD = b"not really weights, but bytes with a known digest"
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def forget_test_models():
    """Models registered by a test leave the (process-wide) registry afterwards."""
    from peanut_server.models import registry

    before = set(registry._REGISTRY)
    yield
    for model_id in set(registry._REGISTRY) - before:
        del registry._REGISTRY[model_id]


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PEANUT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PEANUT_MODELS_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


def spec(model_id: str, **file_kwargs) -> ModelSpec:
    return register(ModelSpec(id=model_id, stage="test", architecture="test",
                              files=(ModelFile("weights.bin", **file_kwargs),)))


def test_every_registered_model_is_well_formed():
    specs = all_specs()
    assert {s.stage for s in specs} == {"masker", "eraser", "upscaler", "flow"}
    for s in specs:
        assert s.files and s.license and (s.repo_id or all(f.url for f in s.files)), s.id
        for f in s.files:
            assert f.sha256 == "" or len(f.sha256) == 64


def test_found_in_the_models_dir(isolated: Path):
    spec("test-models-dir", sha256=DIGEST)
    assert locate("test-models-dir") is None
    target = isolated / "state" / "models" / "test-models-dir" / "weights.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert locate("test-models-dir") == {"weights.bin": target}
    assert verify("test-models-dir") == {"weights.bin": "ok"}
    target.write_bytes(PAYLOAD + b"!")
    assert verify("test-models-dir")["weights.bin"].startswith("MISMATCH")


def test_found_in_the_hugging_face_cache_layout(isolated: Path):
    register(ModelSpec(id="test-hf", stage="test", architecture="test", repo_id="someorg/tiny-model",
                       files=(ModelFile("model.safetensors"),)))
    repo = isolated / "hf" / "models--someorg--tiny-model"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "model.safetensors").write_bytes(PAYLOAD)
    found = locate("test-hf")
    assert found is not None and found["model.safetensors"].read_bytes() == PAYLOAD
    assert verify("test-hf") == {"model.safetensors": "unpinned"}


def test_pull_checks_the_digest_and_keeps_nothing_bad(isolated: Path):
    source = isolated / "remote.bin"
    source.write_bytes(PAYLOAD)
    spec("test-pull-good", sha256=DIGEST, url=source.as_uri())
    paths = pull("test-pull-good")
    assert paths["weights.bin"].read_bytes() == PAYLOAD
    assert verify("test-pull-good") == {"weights.bin": "ok"}

    spec("test-pull-bad", sha256="0" * 64, url=source.as_uri())
    with pytest.raises(ModelError) as err:
        pull("test-pull-bad")
    assert err.value.code == "MODEL_CHECKSUM"
    assert locate("test-pull-bad") is None
    assert not list((isolated / "state" / "models" / "test-pull-bad").glob("**/*.bin"))


def test_offline_mode_is_honoured(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    source = isolated / "remote.bin"
    source.write_bytes(PAYLOAD)
    spec("test-offline", sha256=DIGEST, url=source.as_uri())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        pull("test-offline")
    assert err.value.code == "MODEL_OFFLINE" and "HF_HUB_OFFLINE" in err.value.message


def test_cli_models_commands(isolated: Path, capsys: pytest.CaptureFixture):
    assert cli_main(["models", "list"]) == 0
    assert "basicvsrpp-reds4" in capsys.readouterr().out
    assert cli_main(["models", "path", "basicvsrpp-reds4"]) == 1
    assert "peanut models pull basicvsrpp-reds4" in capsys.readouterr().err
    assert cli_main(["models", "path", "no-such-model"]) == 2
    assert "unknown model id" in capsys.readouterr().err
