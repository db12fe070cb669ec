"""Capabilities, not versions: each backend checks the classes it calls and says which are missing."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from peanut_server.models import capabilities
from peanut_server.models.capabilities import TRANSFORMERS_CLASSES, TRANSFORMERS_MINIMUM, classes_reason

ROOT = Path(__file__).resolve().parents[1]


def test_every_transformers_class_the_masker_calls_is_listed():
    """Read the masker's source (not imported): a class it calls but the list lacks would go unchecked."""
    listed = {name for names in TRANSFORMERS_CLASSES.values() for name in names}
    used = set()
    for path in (ROOT / "peanut_server" / "masker").rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r"transformers\.([A-Z]\w+)", text))
        for names in re.findall(r"from transformers import ([\w, ]+)", text):
            used |= {n.strip() for n in names.split(",") if n.strip()}
        # getattr(transformers, f"{prefix}Model") with the prefixes of HFVideoTracker
        for prefix in re.findall(r'"\w+": "(\w+)"', text):
            if prefix in ("Sam2Video", "EdgeTamVideo"):
                used.add(prefix + "Model")
    assert used, "no transformers classes found in the masker: the pattern is out of date"
    assert used <= listed, f"called by the masker but not checked: {sorted(used - listed)}"


def test_installed_transformers_has_every_class_and_meets_the_pin():
    version = capabilities.installed_version("transformers")
    assert Version(version) >= Version(TRANSFORMERS_MINIMUM)
    for architecture in TRANSFORMERS_CLASSES:
        assert capabilities.transformers_reason(architecture) == "", architecture


def test_pyproject_pins_the_lowest_version_with_every_class():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "transformers"]
    assert len(pins) == 1
    # 4.57 has no SAM 3: a pin that admits it would let `auto` pick a masker whose classes are absent.
    assert not pins[0].specifier.contains("4.57.3")
    assert pins[0].specifier.contains(TRANSFORMERS_MINIMUM) and pins[0].specifier.contains("5.24.0")


def test_a_missing_class_is_named_with_the_installed_version():
    reason = classes_reason("transformers", ["Sam2VideoModel", "Sam9VideoModel"], minimum="5.0")
    assert re.fullmatch(r"transformers \S+ has no Sam9VideoModel; upgrade to transformers>=5\.0", reason), reason
    assert classes_reason("no_such_package_xyz", ["Thing"]) == "the no_such_package_xyz package is not installed"
    with pytest.raises(KeyError):
        capabilities.transformers_reason("sam9")


def test_backends_in_this_scope_check_their_classes(monkeypatch):
    """RAFT, LaMa and BasicVSR++ name the missing class, not a version."""
    import spandrel
    import torchvision.models.optical_flow as optical_flow

    from peanut_server.eraser.lama import lama_class_missing
    from peanut_server.flow.raft import raft_variant_missing

    assert raft_variant_missing("raft_small") == "" and lama_class_missing() == ""
    monkeypatch.delattr(optical_flow, "raft_small")
    assert raft_variant_missing("raft_small") == "this torchvision has no optical_flow.raft_small"
    monkeypatch.setattr(spandrel.MAIN_REGISTRY, "architectures", lambda *a, **k: [])
    assert lama_class_missing() == "this spandrel has no LaMa architecture"
