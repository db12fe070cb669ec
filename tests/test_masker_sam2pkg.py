"""SAM 2.1 through the official sam2 package: a tiny model built from the official
config (with size overrides), saved as an official-format checkpoint, loaded back
through the loader the backend uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sam2  # noqa: F401
import torch  # required dependencies: a broken install fails here, it is not skipped

from peanut_server.errors import ModelError  # noqa: E402
from peanut_server.masker import FramePrompt, GroundedSam2PackageMasker, MaskerOptions, MaskPrompt  # noqa: E402
from peanut_server.masker.sam2.tracker import Sam2PackageTracker, load_sam2_checkpoint  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.synthetic import ArraySource, MovingObject, composite_clip  # noqa: E402
from tests.tiny_models import SAM2_PACKAGE_TINY  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
TINY = SAM2_PACKAGE_TINY  # the official tiny config shrunk (tests/tiny_models.py)


def build_tiny():
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    return build_sam2_video_predictor(CONFIG, None, device="cpu", hydra_overrides_extra=list(TINY))


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    (root / "sam2.1-hiera-tiny").mkdir()
    torch.save({"model": build_tiny().state_dict()}, root / "sam2.1-hiera-tiny" / "sam2.1_hiera_tiny.pt")
    return root


@pytest.fixture()
def with_models(checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Path:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(checkpoint_dir))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return checkpoint_dir


def test_checkpoint_has_official_key_names(checkpoint_dir: Path) -> None:
    state = torch.load(checkpoint_dir / "sam2.1-hiera-tiny" / "sam2.1_hiera_tiny.pt", weights_only=True)["model"]
    for key in (
        "image_encoder.trunk.patch_embed.proj.weight",
        "image_encoder.neck.convs.0.conv.weight",
        "memory_attention.layers.0.self_attn.q_proj.weight",
        "memory_encoder.mask_downsampler.encoder.0.weight",
        "sam_mask_decoder.iou_prediction_head.layers.0.weight",
        "obj_ptr_proj.layers.0.weight",
        "maskmem_tpos_enc",
        "no_obj_embed_spatial",
    ):
        assert key in state, key


def test_loader_reports_what_does_not_fit(checkpoint_dir: Path, tmp_path: Path) -> None:
    model = build_tiny()
    state = torch.load(checkpoint_dir / "sam2.1-hiera-tiny" / "sam2.1_hiera_tiny.pt", weights_only=True)["model"]
    load_sam2_checkpoint(model, checkpoint_dir / "sam2.1-hiera-tiny" / "sam2.1_hiera_tiny.pt")
    state.pop("no_obj_embed_spatial")  # as in a SAM 2.0 checkpoint
    state["image_encoder.trunk.pos_embed"] = torch.zeros(1, 8, 3, 3)
    bad = tmp_path / "bad.pt"
    torch.save({"model": state}, bad)
    with pytest.raises(ModelError, match="1 missing .*no_obj_embed_spatial.*1 wrong shape"):
        load_sam2_checkpoint(model, bad)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_sam2_checkpoint(model, tmp_path / "junk.pt")


def test_streaming_session(with_models: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(30)]
    tracker = Sam2PackageTracker("sam2.1-hiera-tiny", hydra_overrides=TINY)
    session, first = tracker.start(frames[0], box=(10, 10, 40, 40))
    probs = [first] + [session.step(f) for f in frames[1:]]
    assert all(p.shape == (64, 96) and 0 <= p.min() and p.max() <= 1 for p in probs)
    # Old outputs are dropped and only the newest frames are held: memory stays flat.
    assert len(session.state["output_dict_per_obj"][0]["non_cond_frame_outputs"]) <= 25
    assert len(session.store.frames) <= 3


def test_masker_with_the_package_tracker(with_models: Path) -> None:
    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (64, 96, 3), dtype=np.uint8)
    frames, _ = composite_clip(background, [MovingObject((210, 40, 40), (20, 30), (60, 34), radius=9)], 6, (96, 64))
    masker = GroundedSam2PackageMasker(tracker_id="sam2.1-hiera-tiny", grounder_id="none", clip_id="")
    masker.hydra_overrides = TINY
    prompt = MaskPrompt(frame_prompts=[FramePrompt(frame=2, box=(10, 20, 32, 42))])
    out = list(masker.masks(ArraySource(frames), 0, 6, prompt, MaskerOptions(), Reporter()))
    assert len(out) == 6 and all(m.shape == (64, 96) for m in out)
    assert masker.report.extra["tracker"] == "sam2.1-hiera-tiny"
