"""Install the PEANUT menu script into DaVinci Resolve's per-user Scripts/Edit folder, or remove it.

Resolve lists every .py under Fusion/Scripts/<page> as a menu entry, so only
the menu script goes to Scripts/Edit; the logic (peanut_resolve.py) and the
config go to Fusion/Modules/PEANUT, outside every folder Resolve scans, where
the menu script looks for them.

    python plugins/resolve/install.py            # install (then: Workspace > Scripts > PEANUT Remove Object)
    python plugins/resolve/install.py --uninstall
    python plugins/resolve/install.py --target DIR   # another folder (tests, system-wide installs)

Run it with the Python that has PEANUT installed: it records where that
Python's packages and the `peanut` command are, so the script can use the gRPC
client when Resolve's Python matches, and the command line otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
MENU_SCRIPT = "PEANUT Remove Object.py"
MODULE = "peanut_resolve.py"
FILES = (MENU_SCRIPT, MODULE)
CONFIG = "peanut_resolve.json"


def scripts_dir(system: str | None = None, home: Path | None = None, appdata: str | None = None) -> Path:
    """Resolve's per-user Fusion/Scripts/Edit folder for this OS."""
    system = system or platform.system()
    home = home or Path.home()
    if system == "Darwin":
        return home / "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Edit"
    if system == "Windows":
        base = Path(appdata or os.environ.get("APPDATA") or home / "AppData/Roaming")
        return base / "Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Edit"
    return home / ".local/share/DaVinciResolve/Fusion/Scripts/Edit"


def modules_dir(target: Path) -> Path:
    """Where the logic goes for a menu folder <Fusion>/Scripts/Edit: <Fusion>/Modules/PEANUT."""
    return target.parent.parent / "Modules" / "PEANUT"


def install(target: Path) -> list[Path]:
    modules = modules_dir(target)
    target.mkdir(parents=True, exist_ok=True)
    modules.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / MENU_SCRIPT, target / MENU_SCRIPT)
    shutil.copy2(HERE / MODULE, modules / MODULE)
    config = {
        "installed": [f"Edit/{MENU_SCRIPT}", f"Modules/{MODULE}", f"Modules/{CONFIG}"],
        "source_paths": [str(HERE.parents[1])],  # the checkout, for peanut_server.client
        "site_packages": [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]],
        "python_version": "{}.{}".format(*sys.version_info[:2]),
        "peanut": shutil.which("peanut") or str(Path(sys.executable).with_name("peanut")),
    }
    (modules / CONFIG).write_text(json.dumps(config, indent=2))
    return [target / MENU_SCRIPT, modules / MODULE, modules / CONFIG]


def _remove_files(folder: Path, names) -> list[Path]:
    removed = []
    for name in names:
        if name in FILES or name == CONFIG:  # only our own names: never follow a path out of the folder
            path = folder / name
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed


def uninstall(target: Path) -> list[Path]:
    """Remove exactly what install() wrote, in this layout and in the older one (all files in Edit)."""
    modules = modules_dir(target)
    removed = _remove_files(target, [MENU_SCRIPT])
    removed += _remove_files(modules, [MODULE, CONFIG])
    if (target / CONFIG).is_file():  # an older install: everything beside the menu script
        removed += _remove_files(target, [MODULE, CONFIG])
    try:
        modules.rmdir()  # only when empty: a file the user put there stays
    except OSError:
        pass
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uninstall", action="store_true", help="remove the installed script")
    parser.add_argument("--target", type=Path, help="install folder (default: the per-user Scripts/Edit folder)")
    args = parser.parse_args(argv)
    target = args.target or scripts_dir()
    if args.uninstall:
        removed = uninstall(target)
        print(f"removed {len(removed)} files from {target}" if removed else f"nothing installed in {target}")
    else:
        install(target)
        print(f"installed into {target}\nrestart Resolve, then Workspace > Scripts > PEANUT Remove Object")
    return 0


if __name__ == "__main__":
    sys.exit(main())
