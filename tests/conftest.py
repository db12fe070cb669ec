"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the checkout (CI lays a copy there), or $PEANUT_SHARED_DATA."""
    env = os.environ.get("PEANUT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "davis").is_dir():
        raise RuntimeError(f"test data not found at {path}; set PEANUT_SHARED_DATA")
    return path


@pytest.fixture()
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory, so tests never touch the user's daemon."""
    path = tmp_path / "state"
    monkeypatch.setenv("PEANUT_STATE_DIR", str(path))
    return path


# The real-daemon fixture, for every test module that asks for `daemon`.
from tests.daemon import daemon  # noqa: E402,F401
