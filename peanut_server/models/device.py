"""The device policy: where each learned backend runs, and in which precision.

One policy for the whole daemon (ARCHITECTURE.md: "one model cache and one
device policy"). Every learned backend asks `select(backend, requested)` for a
`Placement` before it loads or runs a network:

  device:    the job's own request ("cpu", "cuda", "cuda:N", "mps"), else the
             daemon's `--device`, else "auto" = CUDA when present, then Apple
             MPS, then the CPU.
  precision: fp16 or bf16 autocast only where the backend is known to be safe
             with it on that device (AUTOCAST_SAFE), fp32 everywhere else.

Torch is asked at call time (torch.cuda.is_available, torch.backends.mps...),
so tests can change what the machine seems to have with monkeypatch.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from ..errors import InvalidRequest

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")

# Backends known to keep their accuracy under autocast, per device type. A
# backend or a device not listed here runs in fp32. Why each entry is here:
#   basicvsrpp fp16 on CUDA: the runner has always run it so; the network
#     samples its flow warps in fp32 (network.flow_warp), which is the part
#     that half precision would blur.
#   sam2 / sam3 bf16 on CUDA: the upstream sam2 and sam3 demos run the video
#     predictors under bfloat16 autocast; bf16 keeps fp32's range, so the
#     memory attention does not overflow.
# Not listed, with the reason:
#   raft: torchvision's RAFT builds its all-pairs correlation in the input
#     dtype; the original RAFT code forces that to fp32 under mixed precision,
#     torchvision does not, so fp16 is not known to be safe.
#   lama: its Fourier convolutions call torch.fft, which in half precision on
#     CUDA only takes power-of-two sizes; fp32.
#   grounding-dino / owlv2 / clip: never checked against fp32; fp32.
#   MPS and CPU: no backend has been compared there; fp32.
AUTOCAST_SAFE: dict[str, dict[str, str]] = {
    "basicvsrpp": {"cuda": "float16"},
    "sam2": {"cuda": "bfloat16"},
    "sam3": {"cuda": "bfloat16"},
}

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPE_OF = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

_lock = threading.Lock()
_daemon_device = "auto"
_daemon_precision = "auto"


@dataclass(frozen=True)
class Placement:
    """Where one backend runs: `device` for torch, `dtype` for autocast ("float32" = none)."""

    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # "float32", "float16", "bfloat16"
    reason: str  # for logs and `peanut info`: how the device and the precision were chosen

    @property
    def autocast(self) -> bool:
        return self.dtype != "float32"

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def precision(self) -> str:
        """ "fp32", "fp16" or "bf16": the short name shown to users."""
        return {v: k for k, v in _DTYPE_OF.items()}[self.dtype]

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def autocast_context(self):
        """`torch.autocast` for this placement (a no-op context in fp32)."""
        import torch

        return torch.autocast(self.device_type, dtype=self.torch_dtype(), enabled=self.autocast)


def check_device_name(name: str | None) -> str:
    """The normalised device name, or InvalidRequest naming the choices. Does not look at the hardware."""
    value = (name or "auto").strip().lower()
    if not _DEVICE_RE.match(value):
        raise InvalidRequest(f"unknown device {name!r}: choose from {', '.join(DEVICE_CHOICES)}")
    return value


def check_precision_name(name: str | None) -> str:
    value = (name or "auto").strip().lower()
    if value not in PRECISIONS:
        raise InvalidRequest(f"unknown precision {name!r}: choose from {', '.join(PRECISIONS)}")
    return value


def set_daemon_defaults(device: str = "auto", precision: str = "auto") -> None:
    """The daemon's `--device` / `--precision`: used by every job that does not ask for its own."""
    global _daemon_device, _daemon_precision
    device, precision = check_device_name(device), check_precision_name(precision)
    if device != "auto":
        resolve_device(device)  # refuse at start a device this machine does not have
    with _lock:
        _daemon_device, _daemon_precision = device, precision


def daemon_defaults() -> tuple[str, str]:
    with _lock:
        return _daemon_device, _daemon_precision


def _cuda_count() -> int:
    import torch

    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver reads as "no CUDA", never as a crash
        return 0


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    try:
        return bool(backend is not None and backend.is_available())
    except Exception:  # noqa: BLE001
        return False


def device_missing(requested: str | None = None) -> str:
    """ "" when `requested` resolves to a device this machine has; else why not (for availability())."""
    from ..errors import PeanutError

    try:
        resolve_device(requested)
    except PeanutError as exc:
        return exc.message
    return ""


def resolve_device(requested: str | None = None) -> str:
    """A concrete torch device name ("cuda:0", "mps", "cpu") for `requested`.

    "" / None / "auto" fall back to the daemon's default, then to auto
    detection (CUDA, MPS, CPU). An explicit device the machine lacks is
    refused (InvalidRequest), never silently replaced by another.
    """
    name = check_device_name(requested)
    if name == "auto":
        name = daemon_defaults()[0]
    if name == "auto":
        if _cuda_count() > 0:
            return "cuda:0"
        if _mps_available():
            return "mps"
        return "cpu"
    if name == "cpu":
        return "cpu"
    if name == "mps":
        if not _mps_available():
            raise InvalidRequest("device 'mps' requested but Apple MPS is not available on this machine")
        return "mps"
    count = _cuda_count()
    index = int(name.split(":")[1]) if ":" in name else 0
    if count == 0:
        raise InvalidRequest(f"device {name!r} requested but CUDA is not available on this machine")
    if index >= count:
        raise InvalidRequest(
            f"device {name!r} requested but this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
        )
    return f"cuda:{index}"


def _bf16_supported(device: str) -> bool:
    """bfloat16 runs natively from compute capability 8 (Ampere) on."""
    import torch

    try:
        return torch.cuda.get_device_capability(int(device.split(":")[1]))[0] >= 8
    except Exception:  # noqa: BLE001 - a device that cannot say: no bf16
        return False


def select(backend: str, requested: str | None = None, precision: str | None = None) -> Placement:
    """The placement of `backend` ("raft", "lama", "basicvsrpp", "sam2", ...) for one job.

    `precision` "auto" (default: the daemon's) autocasts only where
    AUTOCAST_SAFE says so; "fp32" never autocasts; "fp16"/"bf16" force it on
    CUDA (benchmarks compare precisions) and are refused elsewhere.
    """
    device = resolve_device(requested)
    device_type = device.split(":")[0]
    how = f"device {device}" + (" (auto)" if check_device_name(requested) == "auto" else " (requested)")
    wanted = check_precision_name(precision)
    if wanted == "auto":
        wanted = daemon_defaults()[1]
    if wanted == "fp32":
        return Placement(device, "float32", f"{how}; fp32 (asked for)")
    if wanted in ("fp16", "bf16"):
        if device_type != "cuda":
            raise InvalidRequest(f"precision {wanted} is only offered on CUDA; {backend} runs on {device}")
        dtype = _DTYPE_OF[wanted]
        if dtype == "bfloat16" and not _bf16_supported(device):
            raise InvalidRequest(f"precision bf16 requested but {device} does not support bfloat16")
        return Placement(device, dtype, f"{how}; {wanted} autocast (asked for)")
    dtype = AUTOCAST_SAFE.get(backend, {}).get(device_type)
    if dtype is None:
        return Placement(device, "float32", f"{how}; fp32 (autocast not known safe for {backend} on {device_type})")
    if dtype == "bfloat16" and not _bf16_supported(device):
        return Placement(device, "float32", f"{how}; fp32 ({device} has no bfloat16)")
    short = {v: k for k, v in _DTYPE_OF.items()}[dtype]
    return Placement(device, dtype, f"{how}; {short} autocast (known safe for {backend})")


def describe(backend: str) -> tuple[str, str]:
    """(device, precision) that `backend` would get for a job that asks for nothing; ("", "") without torch."""
    try:
        placement = select(backend)
    except ImportError:
        return "", ""
    return placement.device, placement.precision


def device_pool(device: str) -> str:
    """The memory a device draws on: "cpu" (RAM) for cpu and mps (unified memory), else the CUDA device."""
    if device.startswith("cuda"):
        return device if ":" in device else "cuda:0"
    return "cpu"
