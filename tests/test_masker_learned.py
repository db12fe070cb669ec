"""Learned masker parts with tiny random models of the real architectures.

Each model is built from a small config, saved with save_pretrained into a
models directory under the registry's model id, and loaded back through the
same code the backends use for real checkpoints (locate -> from_pretrained).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # required dependencies: a broken install fails here, it is not skipped
import transformers

from peanut_server.errors import BackendUnavailable  # noqa: E402
from peanut_server.masker import BACKENDS, FramePrompt, MaskerOptions, MaskPrompt  # noqa: E402
from peanut_server.masker.grounded import GroundedTrackerMasker  # noqa: E402
from peanut_server.masker.learned import ClipScorer, HFGrounder, HFVideoTracker  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.synthetic import ArraySource, MovingObject, composite_clip  # noqa: E402
from tests.tiny_models import byte_clip_tokenizer as clip_tokenizer  # noqa: E402
from tests.tiny_models import clip_text_config, tiny_grounding_dino_config, tiny_sam2_config  # noqa: E402


def save_processor(processor, path: Path) -> None:
    processor.save_pretrained(path)
    # Hub repositories of these models carry the image processor's own file too.
    processor.image_processor.save_pretrained(path)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)

    sam2 = transformers.Sam2VideoModel(tiny_sam2_config()).eval()
    sam2.save_pretrained(root / "hf-sam2.1-hiera-tiny")

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "red", "blue", "ball", "on", "left"]
    gd_dir = root / "grounding-dino-tiny"
    gd_dir.mkdir()
    (gd_dir / "vocab.txt").write_text("\n".join(words) + "\n")
    gd = transformers.GroundingDinoForObjectDetection(tiny_grounding_dino_config(vocab_size=len(words))).eval()
    gd.save_pretrained(gd_dir)
    save_processor(
        transformers.GroundingDinoProcessor(
            image_processor=transformers.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
            tokenizer=transformers.BertTokenizerFast(vocab_file=str(gd_dir / "vocab.txt")),
        ),
        gd_dir,
    )

    tok, vocab = clip_tokenizer()
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    clip = transformers.CLIPModel(
        transformers.CLIPConfig(
            text_config=clip_text_config(vocab),
            vision_config=dict(vision, image_size=32, patch_size=8),
            projection_dim=16,
        )
    ).eval()
    clip.save_pretrained(root / "clip-vit-b32")
    save_processor(
        transformers.CLIPProcessor(
            image_processor=transformers.CLIPImageProcessor(
                size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
            ),
            tokenizer=tok,
        ),
        root / "clip-vit-b32",
    )

    owl = transformers.Owlv2ForObjectDetection(
        transformers.Owlv2Config(
            text_config=clip_text_config(vocab),
            vision_config=dict(vision, image_size=64, patch_size=16),
            projection_dim=32,
        )
    ).eval()
    owl.save_pretrained(root / "owlv2-base")
    save_processor(
        transformers.Owlv2Processor(
            image_processor=transformers.Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tok
        ),
        root / "owlv2-base",
    )
    return root


@pytest.fixture()
def with_models(models_dir: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Path:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return models_dir


def clip_frames(n: int = 6) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (64, 96, 3), dtype=np.uint8)
    objects = [
        MovingObject((210, 40, 40), (20, 30), (40, 34), radius=9, seed=1),
        MovingObject((40, 70, 200), (75, 30), (60, 40), radius=9, seed=2),
    ]
    return composite_clip(background, objects, n, (96, 64))


def test_sam2_video_tracker_streams_a_tiny_model(with_models: Path) -> None:
    frames, _ = clip_frames()
    tracker = HFVideoTracker("hf-sam2.1-hiera-tiny")
    session, first = tracker.start(frames[0], box=(10, 20, 30, 40))
    probs = [first] + [session.step(f) for f in frames[1:]]
    assert all(p.shape == (64, 96) for p in probs)
    # Streaming keeps only the newest frames' pixels.
    stored = session.session.processed_frames
    assert len(stored) == len(frames) and sum(v.numel() > 0 for v in stored.values()) <= 3
    assert all(0.0 <= p.min() and p.max() <= 1.0 for p in probs)
    # The random model still responds to its prompt: a different box gives a different map.
    _, other = tracker.start(frames[0], box=(50, 5, 90, 60))
    assert not np.allclose(first, other)
    # Points and mask prompts take the same path.
    tracker.start(frames[0], points=[(20, 30, True), (80, 10, False)])
    mask = np.zeros((64, 96), bool)
    mask[20:40, 10:30] = True
    tracker.start(frames[0], mask=mask)


def test_edgetam_tracker_tiny(models_dir: Path, with_models: Path) -> None:
    cfg = tiny_sam2_config("EdgeTamVideoConfig")
    transformers.EdgeTamVideoModel(cfg).eval().save_pretrained(models_dir / "edgetam")
    frames, _ = clip_frames(4)
    tracker = HFVideoTracker("edgetam")
    session, first = tracker.start(frames[0], box=(10, 20, 30, 40))
    probs = [first] + [session.step(f) for f in frames[1:]]
    assert all(p.shape == (64, 96) and np.isfinite(p).all() for p in probs)


def test_sam2_checkpoint_carries_official_key_names(with_models: Path) -> None:
    from safetensors.torch import load_file

    keys = set(load_file(str(with_models / "hf-sam2.1-hiera-tiny" / "model.safetensors")))
    for key in (
        "vision_encoder.backbone.patch_embed.projection.weight",
        "mask_decoder.iou_prediction_head.proj_in.weight",
        "memory_attention.layers.0.self_attn.q_proj.weight",
        "memory_encoder.mask_downsampler.final_conv.weight",
    ):
        assert key in keys, key


def test_grounding_dino_boxes(with_models: Path) -> None:
    frames, _ = clip_frames(1)
    grounder = HFGrounder("grounding-dino-tiny")
    found = grounder.detect(frames[0], "the red ball", box_threshold=0.0, text_threshold=0.0)
    assert found and all(0 <= c.bbox[0] < c.bbox[2] <= 96 and 0 <= c.bbox[1] < c.bbox[3] <= 64 for c in found)
    assert all(0.0 <= c.det_score <= 1.0 for c in found)


def test_owlv2_boxes(with_models: Path) -> None:
    frames, _ = clip_frames(1)
    found = HFGrounder("owlv2-base").detect(frames[0], "red ball", box_threshold=0.0)
    assert found and all(c.area > 0 and c.label == "red ball" for c in found)


def test_clip_scores_and_features(with_models: Path) -> None:
    frames, truth = clip_frames(1)
    clip = ClipScorer("clip-vit-b32")
    crops = [ClipScorer.crop(frames[0], (5, 15, 35, 45)), ClipScorer.crop(frames[0], (60, 15, 90, 45), truth[1][0])]
    scores = clip.text_scores(crops, "the red ball")
    feats = clip.image_features(crops)
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1.0 + 1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)


def test_grounded_masker_runs_end_to_end(with_models: Path) -> None:
    frames, _ = clip_frames(8)
    ok, reason = GroundedTrackerMasker.availability()
    assert ok, reason
    masker = GroundedTrackerMasker()
    masker.box_threshold = 0.0  # a random detector's scores are low
    out = list(
        masker.masks(
            ArraySource(frames),
            0,
            8,
            MaskPrompt(text="the red ball on the left"),
            MaskerOptions(clip_window=4),
            Reporter(),
        )
    )
    assert len(out) == 8 and all(m.shape == (64, 96) and m.dtype == bool for m in out)
    assert masker.report.extra["grounder"] == "grounding-dino-tiny"
    assert masker.report.extra["tracker"] == "hf-sam2.1-hiera-tiny"
    assert masker.report.extra["clip"] == "clip-vit-b32"
    assert masker.report.extra["cme_checks"] == "1"
    assert masker.report.chosen_object


def test_grounded_masker_with_a_box_on_a_later_frame(with_models: Path) -> None:
    frames, _ = clip_frames(6)
    masker = GroundedTrackerMasker()
    prompt = MaskPrompt(frame_prompts=[FramePrompt(frame=3, box=(50, 10, 80, 50))])
    out = list(masker.masks(ArraySource(frames), 0, 6, prompt, MaskerOptions(), Reporter()))
    assert len(out) == 6
    mask, report = masker.preview(ArraySource(frames), 3, prompt, MaskerOptions(), Reporter())
    assert mask.shape == (64, 96) and report.score == 1.0


def test_unavailable_without_weights(state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ok, reason = GroundedTrackerMasker.availability()
    assert not ok and "peanut models pull" in reason
    with pytest.raises(BackendUnavailable):
        HFVideoTracker("hf-sam2.1-hiera-tiny")
    assert list(BACKENDS).index("grounded-sam2") < list(BACKENDS).index("motion")


# -- one masker per backend, its models from the one cache, the device policy --------------------


def write_clip(folder: Path, frames: list[np.ndarray]) -> Path:
    import cv2

    folder.mkdir()
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def mask_spec(source: Path, output: Path, prompt: MaskPrompt):
    from peanut_server.pipeline.spec import PipelineOptions, RemovalSpec

    return RemovalSpec(
        source_path=str(source),
        start=0,
        end=None,
        prompt=prompt,
        output_path=str(output),
        matte_path=str(output),
        matte_only=True,
        matte_mode="object",
        options=PipelineOptions(masker="grounded-sam2"),
    )


def test_two_jobs_and_a_preview_share_one_load_and_keep_their_own_reports(
    with_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Pipeline keeps one masker per backend; its parts load once into the model cache; a
    preview run in the middle of a job (as the daemon does from another thread) does not
    write into the job's report, and the second job starts from a clean report."""
    from peanut_server.daemon.budget import job_model_needs
    from peanut_server.models.cache import ModelCache, install_model_cache
    from peanut_server.pipeline import Pipeline
    from peanut_server.pipeline.spec import PipelineOptions

    monkeypatch.setattr(GroundedTrackerMasker, "box_threshold", 0.0)  # a random detector's scores are low
    frames, _ = clip_frames(8)
    source = write_clip(tmp_path / "clip", frames)
    cache = ModelCache(budget_bytes=None)
    install_model_cache(cache)
    try:
        pipeline = Pipeline(instances=cache)
        box_prompt = MaskPrompt(frame_prompts=[FramePrompt(frame=3, box=(50, 10, 80, 50))])
        previews = []

        class PreviewMidJob(Reporter):
            def check(self) -> None:
                super().check()
                if self.state.stage == "masking" and self.state.done >= 2 and not previews:
                    previews.append(pipeline.preview(mask_spec(source, tmp_path / "p", box_prompt), 3, Reporter()))

        first = pipeline.run(
            mask_spec(source, tmp_path / "a", MaskPrompt(text="the red ball on the left")), PreviewMidJob()
        )
        second = pipeline.run(mask_spec(source, tmp_path / "b", box_prompt), Reporter())

        assert len(previews) == 1, "the preview did not run while the first job was masking"
        preview_mask, preview_report = previews[0]
        assert preview_mask.shape == (64, 96)
        # Each call's report is its own.
        assert first.chosen_object and not first.chosen_object.startswith("the object at the given")
        assert preview_report.chosen_object == "the object at the given points/box on frame 3"
        assert second.chosen_object == "the object at the given points/box on frame 3" and second.chosen_score == 1.0
        assert first.chosen_object != second.chosen_object
        assert not set(first.warnings) & set(second.warnings) or first.warnings == []
        # One masker instance for both jobs and the preview, and each model loaded once.
        assert [key for key in cache if key[0] == "masker"] == [("masker", "grounded-sam2")]
        loaded = [key[1] for key in cache.loads]
        assert sorted(loaded) == ["clip-vit-b32", "grounding-dino-tiny", "hf-sam2.1-hiera-tiny"], loaded
        # What the masker declares for the check at Submit is what it loaded, under the same keys.
        needs = job_model_needs([("masker", GroundedTrackerMasker)], PipelineOptions(), (96, 64))
        assert {need.key for need in needs} == set(cache.loads)
        for need in needs:
            assert need.pool == "cpu" and need.weight_bytes > 0 and need.activation_bytes > 0
            assert cache.size_of(need.key) > 0  # measured from the loaded tensors
    finally:
        install_model_cache(None)


def fake_machine(monkeypatch: pytest.MonkeyPatch, cuda: int = 0, mps: bool = False, capability: int = 8) -> None:
    """torch reports `cuda` CUDA devices (compute capability `capability`) and MPS or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (capability, 0))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_masker_parts_are_placed_by_the_device_policy(with_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA and MPS mocked at the torch level: SAM 2 goes to cuda:0 in bf16 (known safe), the
    grounder and CLIP in fp32; MPS runs fp32 in RAM's pool; the job's device wins. Nothing is
    built on a GPU: the build function only records the placement it was given."""
    from peanut_server.masker.learned import cached_part
    from peanut_server.models.cache import ModelCache, install_model_cache

    install_model_cache(ModelCache(budget_bytes=None))
    try:
        fake_machine(monkeypatch, cuda=1, capability=8)
        placed = {}
        for model_id in ("hf-sam2.1-hiera-tiny", "grounding-dino-tiny", "clip-vit-b32"):
            cached_part(model_id, None, lambda p, model_id=model_id: placed.setdefault(model_id, p))
        assert (placed["hf-sam2.1-hiera-tiny"].device, placed["hf-sam2.1-hiera-tiny"].precision) == ("cuda:0", "bf16")
        assert (placed["grounding-dino-tiny"].device, placed["grounding-dino-tiny"].precision) == ("cuda:0", "fp32")
        assert placed["clip-vit-b32"].precision == "fp32"
        needs = GroundedTrackerMasker.model_needs(MaskerOptions(), (96, 64))
        assert {need.pool for need in needs} == {"cuda:0"}
        assert {need.pool for need in GroundedTrackerMasker.model_needs(MaskerOptions(device="cpu"), (96, 64))} == {
            "cpu"
        }
        fake_machine(monkeypatch, cuda=1, capability=7)  # no bf16 before Ampere
        install_model_cache(ModelCache(budget_bytes=None))
        assert cached_part("hf-sam2.1-hiera-tiny", "cuda", lambda p: p).precision == "fp32"
        fake_machine(monkeypatch, cuda=0, mps=True)
        on_mps = cached_part("hf-sam2.1-hiera-tiny", None, lambda p: p)
        assert (on_mps.device, on_mps.precision) == ("mps", "fp32")
        assert {need.pool for need in GroundedTrackerMasker.model_needs(MaskerOptions(), (96, 64))} == {"cpu"}
        # The masker's own device beats the job's; the job's beats the policy's.
        masker = GroundedTrackerMasker()
        masker._use_device(MaskerOptions(device="cpu"))
        assert masker._job_device == "cpu"
        assert GroundedTrackerMasker(device="mps").for_call()._job_device == "mps"
    finally:
        install_model_cache(None)


def transformers_without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    """The installed transformers as an older release would look: `missing` classes absent.

    (transformers is a lazy module that finds a deleted attribute again, so the module
    itself is replaced in sys.modules, where the capability check imports it from.)"""
    import sys
    import types

    class Older(types.ModuleType):
        def __getattr__(self, name: str):
            if name in missing:
                raise AttributeError(name)
            return getattr(transformers, name)

    older = Older("transformers")
    older.__spec__ = transformers.__spec__
    monkeypatch.setitem(sys.modules, "transformers", older)


def test_learned_maskers_check_their_classes_and_the_device(
    with_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Capabilities, not versions: a transformers without Sam3VideoModel (4.57) makes SAM 3
    unavailable with the reason, and `auto` passes it by instead of failing the job."""
    from peanut_server.masker import Sam3Masker
    from peanut_server.models import device as policy
    from peanut_server.models.registry import get_spec
    from peanut_server.pipeline.backends import choose

    for file in get_spec("sam3").files:  # SAM 3's files present (empty: nothing loads them here)
        (with_models / "sam3").mkdir(exist_ok=True)
        (with_models / "sam3" / file.filename).write_bytes(b"{}")
    try:
        assert Sam3Masker.availability() == (True, "")
        transformers_without(monkeypatch, "Sam3VideoModel")
        ok, reason = Sam3Masker.availability()
        assert not ok and reason.startswith(f"transformers {transformers.__version__} has no Sam3VideoModel")
        assert choose("masker", "auto").cls is GroundedTrackerMasker
        transformers_without(monkeypatch, "Sam3VideoModel", "Sam2VideoModel")
        ok, reason = GroundedTrackerMasker.availability()
        assert not ok and "has no Sam2VideoModel" in reason
        transformers_without(monkeypatch)  # every class back
        assert GroundedTrackerMasker.availability() == (True, "")
        # The daemon's --device lost (a driver gone after start): said, not crashed later.
        fake_machine(monkeypatch, cuda=1)
        policy.set_daemon_defaults("cuda", "auto")
        fake_machine(monkeypatch, cuda=0)
        ok, reason = GroundedTrackerMasker.availability()
        assert not ok and "CUDA is not available" in reason
    finally:
        policy.set_daemon_defaults("auto", "auto")
        for file in get_spec("sam3").files:
            (with_models / "sam3" / file.filename).unlink()
