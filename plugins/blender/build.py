"""Build the installable extension .zip, in the layout `blender --command extension build` makes.

    python plugins/blender/build.py                       # all platforms -> plugins/blender/dist/peanut-0.1.0.zip
    python plugins/blender/build.py --platform linux-x64  # one platform's wheels only
    python plugins/blender/build.py --split-platforms     # one zip per platform, like Blender's --split-platforms

The zip holds, at its root: blender_manifest.toml (with `wheels = [...]` and
`platforms` filled in), the add-on's modules, vendor/peanut_server (the thin
client, state-dir helpers and generated stubs, copied from the repository:
grpc + protobuf only, no numpy or torch) and wheels/ with grpcio, protobuf and
typing_extensions (a grpcio dependency) for CPython 3.11, the Python of Blender 4.2 to 5.0. Wheels come from
`pip download --only-binary=:all:` and are cached in plugins/blender/dist/wheels/.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import subprocess
import sys
import zipfile
from pathlib import Path

log = logging.getLogger("peanut.blender.build")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DIST = HERE / "dist"

# The generated stubs need grpcio >= 1.85.1 and protobuf >= 7.35.1 (see peanut_pb2*.py).
GRPCIO = "grpcio==1.85.3"
PROTOBUF = "protobuf==7.36.2"
TYPING_EXTENSIONS = "typing_extensions==4.16.0"  # grpcio requires typing-extensions~=4.12
# google.rpc Status and ErrorInfo: the client reads the daemon's error code from the status details.
GOOGLEAPIS = "googleapis_common_protos==1.76.0"
PYTHON_VERSION = "3.11"  # Blender 4.2 LTS .. 5.0 ship CPython 3.11
# Blender platform name -> pip --platform tag (pip also accepts older manylinux and universal2 wheels).
PLATFORMS = {
    "linux-x64": "manylinux_2_17_x86_64",
    "macos-arm64": "macosx_11_0_arm64",
    "macos-x64": "macosx_11_0_x86_64",
    "windows-x64": "win_amd64",
}
ADDON_FILES = ("__init__.py", "blender_api.py", "core.py", "jobs.py", "operators.py", "panel.py", "props.py")
# What the thin client needs of peanut_server; api/generate.py is a developer tool (grpc_tools).
VENDORED = ("__init__.py", "client.py", "statedir.py", "api/__init__.py", "api/peanut_pb2.py", "api/peanut_pb2_grpc.py")
# Top-level modules the vendored copy may import: stdlib, grpc, protobuf and google.rpc only.
FORBIDDEN_MODULES = {"torch", "numpy", "cv2", "av", "peanut_server", "torchvision", "transformers"}
VENDOR_INIT = '"""Copies of peanut_server modules the extension needs (made by build.py; do not edit)."""\n'


def manifest_version(text: str) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise SystemExit("blender_manifest.toml has no version")
    return match.group(1)


def _pip_download(target: Path, requirement: str, platform_args: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--no-deps",
        "--python-version",
        PYTHON_VERSION,
        *platform_args,
        "-d",
        str(target),
        requirement,
    ]
    subprocess.run(cmd, check=True)


def download_wheels(platform: str, cache: Path, offline: bool = False) -> list[Path]:
    """grpcio (native, per platform) + protobuf, typing_extensions and googleapis-common-protos (pure
    wheels) from the cache or pip."""
    native, pure = cache / platform, cache / "any"
    native.mkdir(parents=True, exist_ok=True)
    pure.mkdir(parents=True, exist_ok=True)
    want = {GRPCIO: native, PROTOBUF: pure, TYPING_EXTENSIONS: pure, GOOGLEAPIS: pure}
    found = []
    for requirement, target in want.items():
        stem = requirement.replace("==", "-")
        wheels = sorted(target.glob(f"{stem}-*.whl"))
        if not wheels and not offline:
            log.info("pip download %s for %s", requirement, platform)
            if target is native:
                _pip_download(target, requirement, ["--platform", PLATFORMS[platform], "--implementation", "cp"])
            else:
                # One pure wheel: Blender would otherwise see two protobuf wheels fit one platform.
                _pip_download(target, requirement, ["--platform", "any", "--implementation", "py", "--abi", "none"])
            wheels = sorted(target.glob(f"{stem}-*.whl"))
        if not wheels:
            raise SystemExit(f"no {requirement} wheel for {platform} in {target}")
        found.append(wheels[0])
    return found


def fill_manifest(text: str, platforms: list[str], wheels: list[str]) -> str:
    wheel_list = "[\n" + "".join(f'  "./wheels/{w}",\n' for w in wheels) + "]"
    text, n = re.subn(r"^wheels\s*=\s*\[[^\]]*\]", lambda _: "wheels = " + wheel_list, text, flags=re.M)
    if n != 1:
        raise SystemExit("blender_manifest.toml needs one `wheels = [...]` line")
    platform_list = "[" + ", ".join(f'"{p}"' for p in platforms) + "]"
    text, n = re.subn(r"^platforms\s*=\s*\[[^\]]*\]", lambda _: "platforms = " + platform_list, text, flags=re.M)
    if n != 1:
        raise SystemExit("blender_manifest.toml needs one `platforms = [...]` line")
    return text


def forbidden_imports(source: str) -> list[str]:
    """Absolute imports of heavy or non-vendored top-level modules in a module's code (not its docs)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
    return found


def vendored_sources() -> dict[str, str]:
    """zip path -> text of each vendored module, checked to stay thin and self-contained."""
    out = {"vendor/__init__.py": VENDOR_INIT}
    for rel in VENDORED:
        text = (REPO / "peanut_server" / rel).read_text(encoding="utf-8")
        bad = forbidden_imports(text)
        if bad:
            # Absolute peanut_server imports would load a different copy than the vendored one.
            raise SystemExit(
                f"peanut_server/{rel} imports {', '.join(bad)}; the vendored client must use "
                "relative imports and only grpc/protobuf/stdlib"
            )
        out[f"vendor/peanut_server/{rel}"] = text
    return out


def build(platforms: list[str], out_dir: Path, cache: Path, offline: bool = False, suffix: str = "") -> Path:
    manifest = (HERE / "blender_manifest.toml").read_text(encoding="utf-8")
    wheels: dict[str, Path] = {}
    for platform in platforms:
        for wheel in download_wheels(platform, cache, offline):
            wheels.setdefault(wheel.name, wheel)  # universal2 wheels serve both macOS platforms
    version = manifest_version(manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"peanut-{version}{suffix}.zip"
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("blender_manifest.toml", fill_manifest(manifest, platforms, sorted(wheels)))
        for name in ADDON_FILES:
            zf.write(HERE / name, name)
        for rel, text in vendored_sources().items():
            zf.writestr(rel, text)
        for name, path in sorted(wheels.items()):
            # Wheels are zips already: store them, do not deflate twice.
            zf.write(path, f"wheels/{name}", compress_type=zipfile.ZIP_STORED)
    tmp.replace(target)
    log.info("wrote %s (%d wheels)", target, len(wheels))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--platform",
        action="append",
        choices=sorted(PLATFORMS),
        help="Blender platform(s) to bundle wheels for (default: all)",
    )
    parser.add_argument("--split-platforms", action="store_true", help="one zip per platform")
    parser.add_argument("--output-dir", type=Path, default=DIST)
    parser.add_argument("--wheel-cache", type=Path, default=DIST / "wheels")
    parser.add_argument("--offline", action="store_true", help="use cached wheels only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    platforms = args.platform or list(PLATFORMS)
    if args.split_platforms:
        for platform in platforms:
            print(build([platform], args.output_dir, args.wheel_cache, args.offline, f"-{platform}"))
    else:
        print(build(platforms, args.output_dir, args.wheel_cache, args.offline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
