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

    registry.all_specs()  # the real table first: otherwise it would count as "registered by a test"
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
    return register(
        ModelSpec(id=model_id, stage="test", architecture="test", files=(ModelFile("weights.bin", **file_kwargs),))
    )


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
    register(
        ModelSpec(
            id="test-hf",
            stage="test",
            architecture="test",
            repo_id="someorg/tiny-model",
            files=(ModelFile("model.safetensors"),),
        )
    )
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


# -- air-gapped: `peanut models import ID PATH` ------------------------------------------------------------


def test_import_a_file_then_verify_passes(isolated: Path, capsys: pytest.CaptureFixture):
    spec("test-import", sha256=DIGEST, url="https://example.invalid/weights.bin")
    download = isolated / "Downloads" / "weights (1).bin"  # renamed by a browser: one-file models take any name
    download.parent.mkdir()
    download.write_bytes(PAYLOAD)
    assert cli_main(["models", "import", "test-import", str(download)]) == 0
    placed = isolated / "state" / "models" / "test-import" / "weights.bin"
    assert placed.read_bytes() == PAYLOAD and locate("test-import") == {"weights.bin": placed}
    assert "imported" in capsys.readouterr().out
    assert download.read_bytes() == PAYLOAD  # the source is copied, never moved
    assert cli_main(["models", "verify", "test-import"]) == 0
    assert f"test-import/weights.bin: ok ({placed})" in capsys.readouterr().out
    # The same file again changes nothing.
    assert cli_main(["models", "import", "test-import", str(download)]) == 0
    assert "already there" in capsys.readouterr().out


def test_import_refuses_a_wrong_digest_with_both_and_places_nothing(isolated: Path, capsys):
    spec("test-bad", sha256=DIGEST)
    wrong = isolated / "weights.bin"
    wrong.write_bytes(b"some other bytes")
    assert cli_main(["models", "import", "test-bad", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert hashlib.sha256(b"some other bytes").hexdigest() in err and DIGEST in err and "nothing was imported" in err
    assert locate("test-bad") is None and not (isolated / "state" / "models" / "test-bad").exists()


def test_import_never_overwrites_without_overwrite(isolated: Path, capsys):
    spec("test-keep")  # unpinned: the user may bring any file
    mine = isolated / "state" / "models" / "test-keep" / "weights.bin"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own file")
    new = isolated / "new.bin"
    new.write_bytes(PAYLOAD)
    assert cli_main(["models", "import", "test-keep", str(new)]) == 2
    assert "already exists" in capsys.readouterr().err and mine.read_bytes() == b"the user's own file"
    assert cli_main(["models", "import", "test-keep", str(new), "--overwrite"]) == 0
    assert mine.read_bytes() == PAYLOAD
    assert cli_main(["models", "verify", "test-keep"]) == 0
    assert "unpinned" in capsys.readouterr().out


def test_import_of_a_folder_needs_every_file(isolated: Path):
    register(
        ModelSpec(
            id="test-two",
            stage="test",
            architecture="test",
            files=(ModelFile("config.json"), ModelFile("model.safetensors")),
        )
    )
    folder = isolated / "dl"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"lacks model.safetensors of test-two .*nothing was imported"):
        from peanut_server.models.registry import import_model

        import_model("test-two", folder)
    with pytest.raises(ModelError, match="give the folder"):
        import_model("test-two", folder / "config.json")
    with pytest.raises(ModelError, match="is not a file or a folder"):
        import_model("test-two", folder / "nothing-here")
    assert locate("test-two") is None


def test_list_says_what_to_fetch_by_hand(isolated: Path, capsys):
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert (
        "https://download.openmmlab.com/mmediting/restorers/basicvsr_plusplus/basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth"
        in out
    )
    assert "sha256 db622b2fd4caae0a4c63ab5e54f1cfef7a62a0f3b8ad101aba2eae068d928549" in out
    assert "https://huggingface.co/facebook/sam3/resolve/main/model.safetensors" in out
    assert "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth" in out


def test_import_a_tiny_random_raft_and_run_it_offline(isolated: Path, monkeypatch, capsys):
    """A file downloaded elsewhere (here: a random RAFT in torchvision's format) runs after import."""
    import torch

    from peanut_server.flow import get_estimator
    from peanut_server.flow.raft import build_raft
    from peanut_server.models.cache import install_model_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    reference = build_raft("raft_small")
    download = isolated / "raft_small_C_T_V2-01064c6d.pth"
    torch.save(reference.state_dict(), download)
    assert cli_main(["models", "import", "raft-small", str(download)]) == 0
    install_model_cache(None)
    try:
        estimator = get_estimator("raft_small", device="cpu")
        assert all(torch.equal(estimator.model.state_dict()[k], v) for k, v in reference.state_dict().items())
    finally:
        install_model_cache(None)
    assert cli_main(["models", "verify", "raft-small"]) == 0


def test_import_refuses_random_weights_under_a_pinned_release(isolated: Path, capsys):
    """BasicVSR++ releases are pinned: a tiny random checkpoint of the same architecture is not the release."""
    import torch

    from peanut_server.upscaler.basicvsrpp.network import BasicVSRPlusPlus, BasicVSRPPConfig

    net = BasicVSRPlusPlus(BasicVSRPPConfig(mid_channels=8, num_blocks=1, deform_groups=2))
    path = isolated / "basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth"
    torch.save({"state_dict": net.state_dict()}, path)
    assert cli_main(["models", "import", "basicvsrpp-reds4", str(path)]) == 2
    err = capsys.readouterr().err
    assert hashlib.sha256(path.read_bytes()).hexdigest() in err and "db622b2fd4caae0a" in err
    assert locate("basicvsrpp-reds4") is None


def test_import_a_tiny_transformers_model_into_the_hub_cache_layout(isolated: Path, monkeypatch, capsys):
    """A hub model's folder lands in the Hugging Face cache layout: huggingface_hub, transformers
    (offline, by repo id) and the masker's own loader all find it."""
    import torch
    import transformers
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    from peanut_server.masker.learned import model_dir
    from tests.tiny_models import tiny_sam2_config

    torch.manual_seed(0)
    model = transformers.Sam2VideoModel(tiny_sam2_config()).eval()
    download = isolated / "downloaded-sam2"
    model.save_pretrained(download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli_main(["models", "import", "hf-sam2.1-hiera-tiny", str(download)]) == 0
    hub = isolated / "hf"
    found = try_to_load_from_cache("facebook/sam2.1-hiera-tiny", "model.safetensors", cache_dir=hub)
    assert isinstance(found, str) and Path(found).is_symlink()  # snapshots/<commit>/file -> blobs/<sha256>
    assert Path(found).resolve().name == hashlib.sha256((download / "model.safetensors").read_bytes()).hexdigest()
    repos = {repo.repo_id: repo for repo in scan_cache_dir(hub).repos}  # the layout huggingface_hub expects
    (revision,) = repos["facebook/sam2.1-hiera-tiny"].revisions
    assert {f.file_name for f in revision.files} == {"config.json", "model.safetensors"}
    assert model_dir("hf-sam2.1-hiera-tiny") == Path(found).parent
    loaded = transformers.Sam2VideoModel.from_pretrained(
        "facebook/sam2.1-hiera-tiny", cache_dir=str(hub), local_files_only=True
    )
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert cli_main(["models", "verify", "hf-sam2.1-hiera-tiny"]) == 0
