"""Install the PEANUT menu script into DaVinci Resolve's per-user Scripts/Edit folder, or remove it.

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
FILES = ("PEANUT Remove Object.py", "peanut_resolve.py")
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


def install(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        shutil.copy2(HERE / name, target / name)
        written.append(target / name)
    config = {
        "installed": list(FILES) + [CONFIG],
        "source_paths": [str(HERE.parents[1])],      # the checkout, for peanut_server.client
        "site_packages": [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]],
        "python_version": "%d.%d" % sys.version_info[:2],
        "peanut": shutil.which("peanut") or str(Path(sys.executable).with_name("peanut")),
    }
    (target / CONFIG).write_text(json.dumps(config, indent=2))
    written.append(target / CONFIG)
    return written


def uninstall(target: Path) -> list[Path]:
    """Remove exactly what install() wrote (listed in the config), nothing else."""
    try:
        names = json.loads((target / CONFIG).read_text()).get("installed", [])
    except (OSError, ValueError):
        names = list(FILES) + [CONFIG]
    removed = []
    for name in names:
        if name in FILES or name == CONFIG:  # never follow a path out of the folder
            path = target / name
            if path.is_file():
                path.unlink()
                removed.append(path)
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
