"""Which implementation runs each stage: by name, or `auto` = best available.

Each stage package exports BACKENDS, ordered by preference (learned first, the
no-weights backend last). A named backend that cannot run is refused with its
reason; `auto` falls back and says why in the job result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable, InvalidRequest

STAGES = ("masker", "eraser", "upscaler")


def stage_backends(stage: str) -> dict[str, Any]:
    if stage == "eraser":
        from ..eraser import BACKENDS
    elif stage == "masker":
        from ..masker import BACKENDS
    elif stage == "upscaler":
        from ..upscaler import BACKENDS
    else:
        raise ValueError(stage)
    return BACKENDS


@dataclass
class Choice:
    cls: Any
    note: str  # why this one, e.g. "auto: basicvsrpp unavailable (no weights)"


def choose(stage: str, name: str, *, candidates: dict[str, Any] | None = None) -> Choice:
    backends = candidates if candidates is not None else stage_backends(stage)
    name = (name or "auto").lower()
    if name != "auto":
        cls = backends.get(name)
        if cls is None:
            known = ", ".join(["auto", *backends])
            raise InvalidRequest(f"unknown {stage} backend {name!r} (choose from {known})")
        ok, reason = cls.availability()
        if not ok:
            raise BackendUnavailable(f"{stage} backend {name!r} cannot run here: {reason}; use 'auto' to fall back")
        return Choice(cls, "requested")
    skipped = []
    for backend_name, cls in backends.items():
        ok, reason = cls.availability()
        if ok:
            note = "auto" + (": " + "; ".join(skipped) if skipped else "")
            return Choice(cls, note)
        skipped.append(f"{backend_name} unavailable ({reason})")
    raise BackendUnavailable(f"no {stage} backend can run here: " + "; ".join(skipped))


def describe() -> list[dict]:
    """Every backend of every stage with availability, for GetInfo."""
    rows = []
    for stage in STAGES:
        backends = stage_backends(stage)
        default_taken = False
        for name, cls in backends.items():
            ok, reason = cls.availability()
            is_default = ok and not default_taken
            default_taken = default_taken or ok
            rows.append(
                dict(
                    stage=stage,
                    name=name,
                    available=ok,
                    reason=reason,
                    learned=bool(getattr(cls, "learned", False)),
                    is_default=is_default,
                )
            )
    return rows
