"""plugins/resolve/install.py: install into a folder, load its config, uninstall exactly that."""

from __future__ import annotations

import json
import py_compile
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "resolve"
sys.path.insert(0, str(PLUGIN))
import install  # noqa: E402
import peanut_resolve  # noqa: E402


def test_install_and_uninstall(tmp_path):
    target = tmp_path / "Fusion" / "Scripts" / "Edit"
    install.main(["--target", str(target)])
    assert sorted(p.name for p in target.iterdir()) == ["PEANUT Remove Object.py", "peanut_resolve.json", "peanut_resolve.py"]
    config = json.loads((target / "peanut_resolve.json").read_text())
    assert config["source_paths"] == [str(PLUGIN.parents[1])]
    assert peanut_resolve.load_install_config(str(target))["python_version"] == config["python_version"]
    (target / "mine.py").write_text("# the user's own script")
    install.main(["--target", str(target), "--uninstall"])
    assert [p.name for p in target.iterdir()] == ["mine.py"]


def test_scripts_folders_per_os(tmp_path):
    assert str(install.scripts_dir("Darwin", tmp_path)).endswith("Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Edit")
    assert str(install.scripts_dir("Windows", tmp_path, "C:/AppData")).endswith("DaVinci Resolve/Support/Fusion/Scripts/Edit")
    assert str(install.scripts_dir("Linux", tmp_path)) == str(tmp_path / ".local/share/DaVinciResolve/Fusion/Scripts/Edit")


def test_menu_script_compiles():
    py_compile.compile(str(PLUGIN / "PEANUT Remove Object.py"), doraise=True)
