"""RAFT backend: torchvision's architecture, loaded through the registry path from a state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from peanut_server.errors import ModelError
from peanut_server.flow import get_estimator
from peanut_server.flow.models import RAFT_SMALL
from peanut_server.flow.raft import RaftFlow, build_raft, load_raft
from peanut_server.models.cache import install_model_cache


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    install_model_cache(None)  # each test loads its own weights, never another test's
    yield
    install_model_cache(None)


def _frames(count: int = 3, height: int = 36, width: int = 52) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (count, height, width, 3), dtype=np.uint8)


def test_random_raft_small_runs_through_the_registry(tmp_path, monkeypatch, state_dir) -> None:
    torch.manual_seed(0)
    reference = build_raft("raft_small")
    models = tmp_path / "models"
    (models / RAFT_SMALL.id).mkdir(parents=True)
    # The checkpoint under torchvision's file name, as torchvision saves it (a plain state dict).
    torch.save(reference.state_dict(), models / RAFT_SMALL.id / RAFT_SMALL.files[0].filename)
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models))
    estimator = get_estimator("raft_small", device="cpu")
    assert isinstance(estimator, RaftFlow)
    loaded = estimator.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.state_dict().items())
    frames = _frames()  # 36x52: padded inside to RAFT's minimum and a multiple of 8
    forward, backward = estimator.window(frames)
    assert forward.shape == (2, 36, 52, 2) and backward.shape == (2, 36, 52, 2)
    assert np.isfinite(forward).all() and np.isfinite(backward).all()
    # The batched window equals pair-by-pair estimation.
    np.testing.assert_allclose(forward[1], estimator.pair(frames[1], frames[2]), atol=1e-3)
    np.testing.assert_allclose(backward[0], estimator.pair(frames[1], frames[0]), atol=1e-3)


def test_state_dict_key_names_are_torchvisions() -> None:
    torch.manual_seed(0)
    state = build_raft("raft_small").state_dict()
    # A few of torchvision's key names for raft_small.
    for key in (
        "feature_encoder.convnormrelu.0.weight",
        "feature_encoder.layer1.0.convnormrelu1.0.weight",
        "update_block.flow_head.conv2.weight",
    ):
        assert key in state
    load_raft("raft_small", state)
    load_raft("raft_small", {"state_dict": state})
    renamed = {"module." + k: v for k, v in state.items()}
    with pytest.raises(ModelError):
        load_raft("raft_small", renamed)
    with pytest.raises(ModelError):
        load_raft("raft_large", state)


def test_missing_weights_refused(tmp_path, monkeypatch, state_dir) -> None:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="raft-small"):
        get_estimator("raft_small")
