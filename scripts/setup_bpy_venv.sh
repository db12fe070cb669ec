#!/usr/bin/env bash
# Create the Blender-as-a-Python-module virtual environment the Blender
# extension tests run in (bpy 5.0.1 needs Python 3.11).
#   DIR=.venv-bpy scripts/setup_bpy_venv.sh      (default DIR: .venv-bpy)
# Then: export PEANUT_BPY_PYTHON=$DIR/bin/python
set -euo pipefail
DIR="${DIR:-${1:-.venv-bpy}}"
PYTHON="${PYTHON:-python3.11}"
if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -c "import bpy" >/dev/null 2>&1; then
    echo "bpy venv ready: $DIR"
    exit 0
fi
"$PYTHON" -m venv "$DIR"
"$DIR/bin/pip" install --quiet --upgrade pip
"$DIR/bin/pip" install bpy==5.0.1
"$DIR/bin/python" -c "import bpy; print('bpy', bpy.app.version_string)"
