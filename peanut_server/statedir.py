"""Where the daemon keeps its state, found the same way by daemon, CLI and plugins.

Order: an explicit --state-dir, then $PEANUT_STATE_DIR, then the per-user
default of the platform. The directory holds:

    token        the client token, owner-only (0600)
    server.json  the address(es) the running daemon listens on, its pid, and whether TCP uses TLS
    tls-ca.pem   with TLS: the certificate the daemon serves, for local clients to trust
    daemon.lock  held (an OS file lock) by the one daemon running on this directory
    jobs.sqlite  the job queue
    models/      downloaded model weights (besides the Hugging Face cache)

Light on purpose: the thin client and the plugins import this (stdlib only).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

ENV_VAR = "PEANUT_STATE_DIR"
DEFAULT_PORT = 50517
TLS_CA_FILE = "tls-ca.pem"


def default_state_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "PEANUT"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "PEANUT"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "peanut"


def resolve_state_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return default_state_dir()


def ensure_state_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(path, 0o700)
    return path


def _write_private(path: Path, data: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_or_create_token(state_dir: Path) -> str:
    """The daemon's token: kept across restarts so clients keep working."""
    path = state_dir / "token"
    if path.exists():
        token = path.read_text().strip()
        if token:
            if os.name == "posix":
                os.chmod(path, 0o600)
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token


def read_token(state_dir: Path) -> str | None:
    try:
        return (state_dir / "token").read_text().strip() or None
    except OSError:
        return None


def write_server_file(state_dir: Path, addresses: list[str], pid: int, tls: bool = False) -> None:
    _write_private(state_dir / "server.json", json.dumps({"addresses": addresses, "pid": pid, "tls": tls}))


def remove_server_file(state_dir: Path, pid: int) -> None:
    """Remove server.json only if daemon `pid` wrote it: a daemon never unpublishes another."""
    path = state_dir / "server.json"
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def read_server_file(state_dir: Path) -> dict | None:
    """What the running daemon published (addresses, pid, tls), or None."""
    try:
        data = json.loads((state_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_server_address(state_dir: Path) -> str | None:
    """The first address the running daemon wrote, or None."""
    addresses = (read_server_file(state_dir) or {}).get("addresses") or []
    return addresses[0] if addresses else None
