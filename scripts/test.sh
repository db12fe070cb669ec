#!/usr/bin/env bash
# The test command of README.md: sets up what the tests need, then runs them.
#   .venv      the project with its test extras (torch and torchvision come from
#              the local wheel store where pip is configured for it)
#   .venv-bpy  Blender as a Python module (bpy 5.0.1), for the extension's tests
# Both are reused when present. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

if [ -z "${PEANUT_BPY_PYTHON:-}" ]; then
  bash scripts/setup_bpy_venv.sh .venv-bpy
  export PEANUT_BPY_PYTHON="$PWD/.venv-bpy/bin/python"
fi

exec .venv/bin/python -m pytest "$@"
