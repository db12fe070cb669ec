"""benchmarks/gpu_check.py must not rot: its --tiny mode runs every learned backend on the CPU here.

Tiny configs of the real architectures with random weights, written in the
released formats and loaded back through the backends' own loaders; the test
reads the JSON it writes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = {
    "sam2-transformers tiny",
    "sam2-transformers base-plus",
    "sam2-package tiny",
    "sam2-package base-plus",
    "sam3",  # the installed transformers has Sam3VideoModel (test_models_capabilities checks it)
    "grounding-dino tiny",
    "raft-small",
    "lama",
    "basicvsrpp",
}

# Those with a CPU bf16 pass (gpu_check.CPU_CHECK_POLICIES): the maskers and the grounder.
CHECKED_IN_BF16 = {b for b in BACKENDS if b.startswith(("sam", "grounding"))}


def test_tiny_gpu_check_runs_every_backend_on_the_cpu(tmp_path: Path, state_dir: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--device", "cpu", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["tiny"] is True
    rows = report["rows"]
    assert {row["backend"] for row in rows} == BACKENDS
    for backend in BACKENDS:
        fp32 = [r for r in rows if r["backend"] == backend and r["precision"] == "fp32"]
        assert fp32, f"no fp32 row for {backend}"
        for row in fp32:
            assert not row["error"], row
            assert row["policy"] is True  # fp32 is what `auto` runs on a CPU
            assert math.isfinite(row["s_per_frame"]) and row["s_per_frame"] > 0, row
            assert math.isfinite(row["peak_mib"]) and row["peak_mib"] > 0, row
            assert row["frames"] > 0 and row["max_diff"] == 0.0, row
    # The half-precision pass (CPU bf16, only to exercise the comparison) compares for real:
    # finite differences where it ran, and not all of them zero.
    half = [r for r in rows if r["precision"] == "bf16"]
    assert {r["backend"] for r in half} == CHECKED_IN_BF16
    assert all(r["check_only"] and not r["policy"] for r in half)
    compared = [r for r in half if not r["error"]]
    assert len(compared) >= len(half) - 1, [r["error"] for r in half]
    assert all(math.isfinite(r["max_diff"]) and r["max_diff"] >= 0 for r in compared)
    assert any(r["max_diff"] > 0 for r in compared)
    # One printed table: a line per row.
    table = done.stdout.splitlines()
    for row in rows:
        assert any(line.startswith(row["backend"]) and row["precision"] in line for line in table), row
