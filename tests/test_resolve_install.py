"""plugins/resolve/install.py: only the menu script under Scripts/Edit, the logic where Resolve does not list it."""

from __future__ import annotations

import ast
import json
import runpy
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "resolve"
sys.path.insert(0, str(PLUGIN))
import install  # noqa: E402
import peanut_resolve  # noqa: E402

from tests.fake_resolve import FakeBmd, FakeFusion, FakeResolve  # noqa: E402

MENU_NAME = "PEANUT Remove Object.py"


# Issue 14, point 8: Resolve lists every .py under Scripts/Edit as a menu entry.
def test_install_puts_one_script_in_the_menu_and_uninstall_removes_exactly_it(tmp_path):
    fusion = tmp_path / "Fusion"
    edit = fusion / "Scripts" / "Edit"
    install.main(["--target", str(edit)])
    assert [p.name for p in edit.iterdir()] == [MENU_NAME]
    modules = install.modules_dir(edit)
    assert not str(modules).startswith(str(fusion / "Scripts"))  # outside every folder Resolve scans
    assert sorted(p.name for p in modules.iterdir()) == ["peanut_resolve.json", "peanut_resolve.py"]
    config = json.loads((modules / "peanut_resolve.json").read_text())
    assert config["source_paths"] == [str(PLUGIN.parents[1])]
    assert peanut_resolve.load_install_config(str(modules))["python_version"] == config["python_version"]
    (edit / "mine.py").write_text("# the user's own script")
    (modules / "notes.txt").write_text("the user's file")
    install.main(["--target", str(edit), "--uninstall"])
    assert [p.name for p in edit.iterdir()] == ["mine.py"]
    assert [p.name for p in modules.iterdir()] == ["notes.txt"]


def test_installed_menu_script_loads_the_installed_module(tmp_path, capsys):
    edit = tmp_path / "Fusion" / "Scripts" / "Edit"
    install.main(["--target", str(edit)])
    saved = sys.modules.pop("peanut_resolve")
    saved_path = list(sys.path)
    try:
        resolve = FakeResolve()
        resolve.fusion = FakeFusion(None)  # the free edition: the script only prints its message
        runpy.run_path(
            str(edit / MENU_NAME),
            init_globals={"resolve": resolve, "fusion": resolve.fusion, "bmd": FakeBmd([])},
            run_name="__main__",
        )
        loaded = sys.modules["peanut_resolve"]
        assert Path(loaded.__file__).parent == install.modules_dir(edit)
    finally:
        sys.modules["peanut_resolve"] = saved
        sys.path[:] = saved_path
    assert "UIManager" in capsys.readouterr().out


def test_uninstall_removes_an_older_layout(tmp_path):
    """Earlier versions put peanut_resolve.py beside the menu script; uninstall still finds it."""
    edit = tmp_path / "Edit"
    edit.mkdir()
    for name in (MENU_NAME, "peanut_resolve.py"):
        (edit / name).write_text("# old")
    (edit / "peanut_resolve.json").write_text(
        json.dumps({"installed": [MENU_NAME, "peanut_resolve.py", "peanut_resolve.json"]})
    )
    install.main(["--target", str(edit), "--uninstall"])
    assert list(edit.iterdir()) == []


def test_scripts_folders_per_os(tmp_path):
    assert str(install.scripts_dir("Darwin", tmp_path)).endswith(
        "Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Edit"
    )
    assert str(install.scripts_dir("Windows", tmp_path, "C:/AppData")).endswith(
        "DaVinci Resolve/Support/Fusion/Scripts/Edit"
    )
    assert str(install.scripts_dir("Linux", tmp_path)) == str(
        tmp_path / ".local/share/DaVinciResolve/Fusion/Scripts/Edit"
    )


# Issue 14, point 10: the README promises Python >= 3.6 for scripts.
PY37_ONLY = {
    ("import", "dataclasses"),
    ("import", "typing.Protocol"),
    ("future", "annotations"),
    ("keyword", "text"),
    ("keyword", "capture_output"),
}


def _newer_than_36(path: Path) -> list[str]:
    """Constructs of Python 3.7+ that Resolve's Python 3.6 cannot run."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__" and any(a.name == "annotations" for a in node.names):
                found.append(f"line {node.lineno}: from __future__ import annotations")
            if node.module == "dataclasses" or (
                node.module == "typing" and any(a.name == "Protocol" for a in node.names)
            ):
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import) and any(a.name == "dataclasses" for a in node.names):
            found.append(f"line {node.lineno}: import dataclasses")
        elif isinstance(node, ast.Call) and any(k.arg in ("text", "capture_output") for k in node.keywords):
            found.append(f"line {node.lineno}: subprocess keyword text=/capture_output=")
        elif isinstance(node, ast.NamedExpr):
            found.append(f"line {node.lineno}: :=")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.args.posonlyargs:
            found.append(f"line {node.lineno}: positional-only parameters")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("list", "dict", "tuple", "set")
        ):
            found.append(f"line {node.lineno}: {node.value.id}[...] in an annotation")
    return found


def test_scripts_run_on_python_36():
    for path in (PLUGIN / "peanut_resolve.py", PLUGIN / MENU_NAME):
        assert _newer_than_36(path) == [], path.name
