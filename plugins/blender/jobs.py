"""Background threads that talk to the daemon, so Blender's UI thread never waits on the network.

No bpy here: the operators start a task, then poll its fields from a modal
timer (or in a loop, for EXEC_DEFAULT). Only this module imports the client.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


def client_module():
    """The thin client: the copy vendored into the built extension, else an installed peanut_server."""
    try:
        from .vendor.peanut_server import client  # type: ignore[import-not-found]
    except ImportError:
        from peanut_server import client  # type: ignore[no-redef]  # running from a source checkout
    return client


def make_client(address: str = "", state_dir: str = "", timeout: float = 10.0):
    mod = client_module()
    return mod.PeanutClient(address or None, state_dir=state_dir or None, timeout=timeout)


def describe_error(exc: BaseException) -> str:
    """One line for a Blender report."""
    mod = client_module()
    if isinstance(exc, mod.ClientError):
        return exc.message if exc.code in ("UNAVAILABLE",) else f"{exc.message} ({exc.code})"
    return f"{type(exc).__name__}: {exc}"


class Task:
    """A daemon call on a thread; `done`, `result` and `error` are read by the UI thread."""

    def __init__(self, fn: Callable[[], Any], name: str = "peanut-task") -> None:
        self._fn = fn
        self.result: Any = None
        self.error: str = ""
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Task:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except Exception as exc:  # reported to the user, never raised into Blender
            log.debug("task failed", exc_info=True)
            self.error = describe_error(exc)
        finally:
            self.done.set()


@dataclass
class RemovalRequest:
    address: str
    state_dir: str
    source_path: str
    start: int
    end: int
    output_path: str
    matte_path: str
    prompt: str = ""
    mask_path: str = ""
    mode: str = "remove"  # or "matte"
    options: dict = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None  # x, y, w, h in source pixels, on source frame box_frame
    box_frame: int = 0
    mask_frame: int | None = None  # mask_path is one image of the object on this frame: track it
    # (source frame, (x, y, w, h)) boxes on other frames (core.job_boxes): the earliest of all the
    # boxes starts the tracking, each later one corrects it there
    kept_boxes: list[tuple[int, tuple[int, int, int, int]]] = field(default_factory=list)
    approximate: bool = False


class RemovalJob:
    """Submits one job and follows its events on a thread.

    UI-thread readers use: finished (Event), state ("queued", "running",
    "succeeded", "failed", "cancelled", "interrupted", or "" before submit),
    stage, frames_done, frames_total, eta, error, job (last Job message).
    """

    def __init__(self, request: RemovalRequest) -> None:
        self.request = request
        self.job_id = ""
        self.job = None
        self.state = ""
        self.stage = "connecting"
        self.frames_done = 0
        self.frames_total = request.end - request.start
        self.eta = -1.0
        self.error = ""
        self.warnings: list[str] = []
        self.finished = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._client = None
        self._thread = threading.Thread(target=self._run, name="peanut-job", daemon=True)

    def start(self) -> RemovalJob:
        self._thread.start()
        return self

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the daemon to stop the job; returns at once (the RPC runs on its own thread)."""
        self._cancel.set()
        with self._lock:
            job_id, client = self.job_id, self._client
        if job_id and client is not None:
            threading.Thread(target=self._send_cancel, args=(client, job_id), daemon=True).start()
        # Before submit returns, _run sees the flag and cancels right after submitting.

    def _send_cancel(self, client, job_id: str) -> None:
        try:
            client.cancel(job_id)
        except Exception as exc:
            log.warning("cancel of %s failed: %s", job_id, exc)

    def _update(self, job) -> None:
        mod = client_module()
        self.job = job
        self.state = mod.state_name(job.state)
        self.stage = job.stage or self.state
        self.frames_done = int(job.frames_done)
        if job.frames_total:
            self.frames_total = int(job.frames_total)
        self.eta = float(job.eta_seconds)
        self.warnings = list(job.warnings)

    def _run(self) -> None:
        mod = client_module()
        r = self.request
        try:
            # No deadline on the event stream itself: a job may run for hours.
            client = make_client(r.address, r.state_dir)
            with self._lock:
                self._client = client
            frame_prompts = []
            if r.box is not None:
                frame_prompts.append(mod.box_prompt(r.box_frame, *r.box))
            elif r.mask_frame is not None:
                # The proto's way to say "this one mask image is the object on that frame".
                frame_prompts.append(mod.pb.FramePrompt(frame=r.mask_frame))
            frame_prompts += [mod.box_prompt(frame, *box) for frame, box in r.kept_boxes]
            job = client.submit(
                r.source_path,
                r.start,
                r.end,
                output_path=r.output_path,
                matte_path=r.matte_path,
                prompt=r.prompt,
                mask_path=r.mask_path,
                mode=r.mode,
                options=r.options,
                client_name="blender",
                frame_prompts=frame_prompts,
                approximate=r.approximate,
            )
            with self._lock:
                self.job_id = job.id
            self._update(job)
            if self._cancel.is_set():
                self._send_cancel(client, job.id)
            final = client.wait(job.id, on_event=lambda ev: self._update(ev.job))
            self._update(final)
            if final.state == mod.pb.JOB_STATE_FAILED:
                code = f" ({final.error_code})" if final.error_code else ""
                self.error = (final.error or "the job failed") + code
            elif final.state == mod.pb.JOB_STATE_INTERRUPTED:
                self.error = "the daemon stopped while the job ran; resume it with `peanut resume " + final.id + "`"
        except Exception as exc:
            log.debug("job failed", exc_info=True)
            self.error = describe_error(exc)
            if not self.state:
                self.state = "failed"
        finally:
            if self.state == "cancelled" or (self._cancel.is_set() and self.state != "succeeded"):
                self.state = "cancelled"
                self.remove_partial_output()
            self.finished.set()

    def remove_partial_output(self) -> None:
        """The daemon removes partial output on cancel; make sure, for the paths this job owns."""
        for path in (self.request.output_path, self.request.matte_path):
            if path and os.path.exists(path):
                log.info("removing partial output %s", path)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.remove(path)
                    except OSError:
                        pass


# -- connection state, shown in the panel --------------------------------------------------------


@dataclass
class ServerStatus:
    checked: bool = False
    ok: bool = False
    address: str = ""
    message: str = "not checked"
    version: str = ""
    device: str = ""
    backends: list[tuple[str, str, bool, str]] = field(default_factory=list)  # stage, name, available, reason
    checked_at: float = 0.0


def fetch_status(address: str, state_dir: str, timeout: float = 3.0) -> ServerStatus:
    """GetInfo, turned into what the panel shows. Runs on a Task thread."""
    mod = client_module()
    client = make_client(address, state_dir, timeout=timeout)
    status = ServerStatus(checked=True, address=client.address, checked_at=time.time())
    try:
        info = client.info()
    except mod.ClientError as exc:
        status.message = exc.message
        return status
    finally:
        client.close()
    status.ok = True
    status.version = info.version
    status.device = info.device
    status.message = f"connected: PEANUT {info.version} on {info.device}"
    for b in info.backends:
        stage = mod.pb.Stage.Name(b.stage).removeprefix("STAGE_").lower()
        status.backends.append((stage, b.name, bool(b.available), b.reason))
    return status


def start_daemon(command: list[str], log_path: str) -> subprocess.Popen:
    """Start `peanut-server` detached; never waits for it (the panel polls GetInfo)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    logfile = open(log_path, "ab")
    kwargs: dict[str, Any] = {"stdout": logfile, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # survives Blender and its Ctrl-C
    else:
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(
            subprocess, "DETACHED_PROCESS", 0
        )
    try:
        return subprocess.Popen(command, **kwargs)
    finally:
        logfile.close()
