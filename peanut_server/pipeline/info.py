"""What this machine can run, as the proto's Info: shared by the daemon's GetInfo and `peanut info --local`.

Backends with their availability and the reason when not, the device and
precision the device policy gives each learned one, and every registered
model, present or not. It lives beside the pipeline, not in the daemon, so
`peanut info --local` answers without a daemon and without importing it.
"""

from __future__ import annotations

import logging
import os

from .. import API_VERSION, __version__
from ..api import peanut_pb2 as pb
from . import backends as backend_table
from .messages import STAGE_ENUM

log = logging.getLogger(__name__)

# Which entry of the device policy (models/device.py) a stage backend's learned
# parts use, when the class does not say itself (a `device_policy` class attribute).
POLICY_NAME = {"flowguided": "raft", "basicvsrpp": "basicvsrpp"}


def detect_device() -> str:
    """The device policy's default device, named for people ("cuda:0 (NVIDIA H100)", "mps", "cpu")."""
    try:
        import torch

        from ..models.device import resolve_device

        device = resolve_device(None)
        if device.startswith("cuda"):
            return f"{device} ({torch.cuda.get_device_name(int(device.split(':')[1]))})"
        return device
    except Exception:  # a broken CUDA install must not stop the daemon
        log.warning("torch could not query the devices", exc_info=True)
    return "cpu"


def add_backends_and_models(info: pb.Info) -> pb.Info:
    """Fill `info.backends` (availability, reason, device and precision) and `info.models` (present or why not)."""
    from ..models import all_specs
    from ..models.device import describe as placement_of
    from ..models.registry import locate_file

    for row in backend_table.describe():
        device = precision = ""
        if row["learned"] or row["name"] in POLICY_NAME:
            cls = backend_table.stage_backends(row["stage"]).get(row["name"])
            policy_name = getattr(cls, "device_policy", None) or POLICY_NAME.get(row["name"], row["name"])
            device, precision = placement_of(policy_name)
        info.backends.add(
            stage=STAGE_ENUM[row["stage"]],
            name=row["name"],
            available=row["available"],
            reason=row["reason"],
            learned=row["learned"],
            is_default=row["is_default"],
            device=device,
            precision=precision,
        )
    for spec in all_specs():
        paths = [locate_file(spec, f) for f in spec.files]
        missing = [f.filename for f, p in zip(spec.files, paths) if p is None]
        info.models.add(
            id=spec.id,
            stage=STAGE_ENUM.get(spec.stage, pb.STAGE_UNSPECIFIED),
            present=not missing,
            path=str(paths[0].parent) if not missing and paths else "",
            reason=f"not found: {', '.join(missing)} (peanut models pull {spec.id})" if missing else "",
            license=spec.license,
        )
    return info


def local_info(state_dir: str = "") -> pb.Info:
    """The Info a daemon started here (with the same --device/--precision) would give, built in this process.

    pid is this process's and the queue is empty: there is no daemon."""
    info = pb.Info(
        version=__version__, api_version=API_VERSION, device=detect_device(), state_dir=state_dir, pid=os.getpid()
    )
    return add_backends_and_models(info)
