"""SAM 3 (transformers Sam3VideoModel) with a tiny random model saved and loaded
through from_pretrained, as the backend loads the real checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # required dependencies: a broken install fails here, it is not skipped
import transformers

if not hasattr(transformers, "Sam3VideoModel"):
    pytest.skip("this transformers has no Sam3VideoModel", allow_module_level=True)

from peanut_server.errors import PromptError  # noqa: E402
from peanut_server.masker import BACKENDS, MaskerOptions, MaskPrompt, Sam3Masker  # noqa: E402
from peanut_server.progress import Reporter  # noqa: E402
from tests.synthetic import ArraySource  # noqa: E402
from tests.tiny_models import tiny_sam3  # noqa: E402


def save(root: Path, detect_threshold: float, queries: int = 1) -> Path:
    torch.manual_seed(0)
    model, processor = tiny_sam3(detect_threshold, queries)
    model.save_pretrained(root / "sam3")
    processor.save_pretrained(root / "sam3")
    return root


def frames(n: int = 4) -> ArraySource:
    rng = np.random.default_rng(0)
    return ArraySource([rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(n)])


def test_sam3_finds_and_follows_one_instance(tmp_path, monkeypatch, state_dir) -> None:
    # A zero detection threshold: a random detector's one query becomes an instance.
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(save(tmp_path, 0.0)))
    assert Sam3Masker.availability() == (True, "")
    assert list(BACKENDS)[0] == "sam3"
    masker = Sam3Masker()
    out = list(masker.masks(frames(), 0, 4, MaskPrompt(text="the ball on the left"), MaskerOptions(), Reporter()))
    assert len(out) == 4 and all(m.shape == (64, 96) and m.dtype == bool for m in out)
    assert "instance" in masker.report.chosen_object and masker.report.extra["tracker"] == "sam3"


def test_sam3_nothing_found_is_an_error(tmp_path, monkeypatch, state_dir) -> None:
    # A threshold no score can pass: nothing is detected, and no empty output is handed on.
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(save(tmp_path, 1.1)))
    with pytest.raises(PromptError, match="SAM 3 found nothing"):
        list(Sam3Masker().masks(frames(3), 0, 3, MaskPrompt(text="red ball"), MaskerOptions(), Reporter()))


def test_sam3_several_instances_the_words_cannot_separate(tmp_path, monkeypatch, state_dir) -> None:
    monkeypatch.setenv("PEANUT_MODELS_DIR", str(save(tmp_path, 0.0, queries=6)))
    with pytest.raises(PromptError, match=r"found \d instances \(SAM 3\)") as info:
        list(Sam3Masker().masks(frames(2), 0, 2, MaskPrompt(text="ball"), MaskerOptions(), Reporter()))
    assert info.value.code == "PROMPT_AMBIGUOUS"
