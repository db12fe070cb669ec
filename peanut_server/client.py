"""The thin gRPC client used by the CLI, the Blender extension and the Resolve script.

Imports only grpc, the generated stubs and the stdlib-only state-dir helpers,
so a plugin can vendor it next to grpcio and protobuf without numpy or torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2  # googleapis-common-protos: the status details

from .api import peanut_pb2 as pb
from .api import peanut_pb2_grpc as pb_grpc
from .statedir import DEFAULT_PORT, TLS_CA_FILE, read_server_file, read_token, resolve_state_dir

FINAL_STATES = (
    pb.JOB_STATE_SUCCEEDED,
    pb.JOB_STATE_FAILED,
    pb.JOB_STATE_CANCELLED,
    pb.JOB_STATE_INTERRUPTED,
)
# Frames travel as files, not in messages; this only bounds mask previews.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ClientError(Exception):
    """An RPC failed. `code` is the gRPC status name, `message` one line for people, `reason`
    the daemon's stable error code (e.g. OUTPUT_EXISTS) from the status details, or ""."""

    def __init__(self, code: str, message: str, reason: str = "") -> None:
        super().__init__(f"{message} ({reason or code})")
        self.code = code
        self.message = message
        self.reason = reason


class DaemonUnavailable(ClientError):
    """No daemon answers at the address."""


def error_reason(exc: grpc.RpcError) -> str:
    """The ErrorInfo reason in a failed call's status details (grpc-status-details-bin), or ""."""
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


def state_name(state: int) -> str:
    return pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def _options_message(options: dict | None) -> pb.Options:
    message = pb.Options()
    for key, value in (options or {}).items():
        if value is None:
            continue
        if key == "preset" and isinstance(value, str):
            value = pb.Preset.Value("PRESET_" + value.upper())
        try:
            setattr(message, key, value)
        except (AttributeError, ValueError, TypeError) as exc:
            raise ClientError("INVALID_ARGUMENT", f"bad option {key}={value!r}: {exc}") from None
    return message


def box_prompt(frame: int, x: float, y: float, width: float, height: float) -> pb.FramePrompt:
    """A box on source frame `frame`, in source pixels (top-left corner, width, height)."""
    return pb.FramePrompt(frame=frame, box=pb.Box(x0=x, y0=y, x1=x + width, y1=y + height))


class PeanutClient:
    def __init__(
        self,
        address: str | None = None,
        *,
        state_dir: str | Path | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        tls_ca: str | Path | None = None,
    ) -> None:
        """`tls_ca`: a PEM file of the CA (or the self-signed certificate) to trust; TLS is then used.
        Without it, TLS is used when the state directory says the daemon serves TLS, trusting
        the certificate it left there."""
        state = resolve_state_dir(state_dir)
        self.state_dir = state
        published = read_server_file(state) or {}
        addresses = published.get("addresses") or []
        self.address = address or (addresses[0] if addresses else None) or f"127.0.0.1:{DEFAULT_PORT}"
        # Where the address came from, for the message when nobody answers there.
        self._address_from = "given" if address else ("published" if addresses else "default")
        self.token = token if token is not None else read_token(state)
        self.timeout = timeout
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # A connection of its own: the daemon counts Watch streams per connection, and channels
            # to one address would otherwise share one, pooling every client of a process together.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        ca = self._tls_ca(state, published, tls_ca)
        if ca is None:
            self._channel = grpc.insecure_channel(self.address, options=options)
        else:
            self._channel = grpc.secure_channel(
                self.address, grpc.ssl_channel_credentials(root_certificates=ca), options=options
            )
        self._stub = pb_grpc.PeanutStub(self._channel)

    def _tls_ca(self, state: Path, published: dict, tls_ca: str | Path | None) -> bytes | None:
        """The CA certificate to trust, or None for a plain channel (unix sockets are never TLS)."""
        if self.address.startswith("unix:"):
            return None
        if tls_ca:
            try:
                return Path(tls_ca).read_bytes()
            except OSError as exc:
                raise ClientError("INVALID_ARGUMENT", f"cannot read the TLS CA file {tls_ca}: {exc.strerror}") from None
        if published.get("tls") and self.address in (published.get("addresses") or []):
            try:
                return (state / TLS_CA_FILE).read_bytes()
            except OSError:
                raise ClientError(
                    "UNAVAILABLE",
                    f"the daemon at {self.address} serves TLS but {state / TLS_CA_FILE} "
                    "is missing; pass the CA certificate (--tls-ca)",
                ) from None
        return None

    # -- plumbing ---------------------------------------------------------

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def _call(self, method: Callable, request, timeout: float | None = None):
        try:
            return method(request, metadata=self._metadata(), timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: grpc.RpcError) -> ClientError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else "") or str(code)
        reason = error_reason(exc)
        if code == grpc.StatusCode.UNAVAILABLE and reason == "SHUTTING_DOWN":
            return ClientError(code.name, details, reason)
        if code == grpc.StatusCode.UNAVAILABLE:
            return DaemonUnavailable("UNAVAILABLE", self._unavailable_message())
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if self.token:
                details += f" (the token given or read from {self.state_dir / 'token'} is not the daemon's)"
            else:
                details += (
                    f" (no token: {self.state_dir / 'token'} is missing or empty; is this the daemon's "
                    "state directory? pass --state-dir)"
                )
        return ClientError(code.name, details, reason)

    def _unavailable_message(self) -> str:
        message = f"no PEANUT daemon answers at {self.address}"
        if self._address_from == "given":
            return message + "; start one with `peanut-server`"
        where = (
            "the address published in"
            if self._address_from == "published"
            else "the default address: no daemon has published one in"
        )
        # A daemon started with --state-dir publishes its address there, not in the default.
        return (
            f"{message} ({where} the state directory {self.state_dir}); start one with `peanut-server`, "
            "or, for a daemon started with --state-dir DIR, pass the same --state-dir DIR "
            "(or set PEANUT_STATE_DIR=DIR)"
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> PeanutClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- RPCs -------------------------------------------------------------

    def info(self, timeout: float | None = None) -> pb.Info:
        return self._call(self._stub.GetInfo, pb.GetInfoRequest(), timeout)

    def submit(
        self,
        source_path: str,
        start: int = 0,
        end: int | None = None,
        *,
        output_path: str,
        prompt: str = "",
        mask_path: str = "",
        mode: str = "remove",
        matte_path: str = "",
        overwrite: bool = False,
        patch_layer: bool = False,
        options: dict | None = None,
        client_name: str = "",
        frame_prompts: list[pb.FramePrompt] | None = None,
        approximate: bool = False,
    ) -> pb.Job:
        source = pb.MediaRange(path=str(source_path), start_frame=start)
        if end is not None:
            source.end_frame = end
        modes = {"remove": pb.MODE_REMOVE, "matte": pb.MODE_MATTE_ONLY}
        if mode not in modes:
            raise ClientError("INVALID_ARGUMENT", f"mode must be 'remove' or 'matte', not {mode!r}")
        request = pb.SubmitRequest(
            source=source,
            mask=pb.MaskSpec(
                text=prompt,
                mask_path=str(mask_path) if mask_path else "",
                frame_prompts=frame_prompts or [],
                approximate=approximate,
            ),
            mode=modes[mode],
            options=_options_message(options),
            output=pb.OutputSpec(
                path=str(output_path),
                matte_path=str(matte_path) if matte_path else "",
                overwrite=overwrite,
                patch_layer=patch_layer,
            ),
            client=client_name,
        )
        return self.submit_request(request)

    def submit_request(self, request: pb.SubmitRequest) -> pb.Job:
        return self._call(self._stub.Submit, request)

    def watch(self, job_id: str) -> Iterator[pb.JobEvent]:
        try:
            yield from self._stub.Watch(pb.WatchRequest(job_id=job_id), metadata=self._metadata())
        except grpc.RpcError as exc:
            raise self._translate(exc) from None

    def wait(
        self,
        job_id: str,
        on_event: Callable[[pb.JobEvent], None] | None = None,
        timeout: float | None = None,
    ) -> pb.Job:
        """Follow a job's events until it ends; returns the final Job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        for event in self.watch(job_id):
            last = event.job
            if on_event is not None:
                on_event(event)
            if event.job.state in FINAL_STATES:
                return event.job
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError("DEADLINE_EXCEEDED", f"job {job_id} still {state_name(last.state)} after {timeout}s")
        # The stream ended without a final state (daemon stopped): report what we know.
        return self.get_job(job_id) if last is None else last

    def cancel(self, job_id: str) -> pb.Job:
        return self._call(self._stub.Cancel, pb.CancelRequest(job_id=job_id))

    def resume(self, job_id: str) -> pb.Job:
        return self._call(self._stub.Resume, pb.ResumeRequest(job_id=job_id))

    def get_job(self, job_id: str) -> pb.Job:
        return self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id))

    def list_jobs(self, limit: int = 100) -> list[pb.Job]:
        return list(self._call(self._stub.ListJobs, pb.ListJobsRequest(limit=limit)).jobs)

    def list_jobs_page(
        self, limit: int = 100, page_token: str = "", states: tuple[int, ...] = ()
    ) -> tuple[list[pb.Job], str]:
        """One page of jobs, newest first, and the token of the next page ("" after the last)."""
        response = self._call(
            self._stub.ListJobs, pb.ListJobsRequest(limit=limit, page_token=page_token, states=list(states))
        )
        return list(response.jobs), response.next_page_token

    def preview_mask(
        self,
        path: str,
        frame: int,
        *,
        prompt: str = "",
        mask_path: str = "",
        options: dict | None = None,
        timeout: float = 120.0,
        frame_prompts: list[pb.FramePrompt] | None = None,
        approximate: bool = False,
    ) -> pb.PreviewMaskResponse:
        request = pb.PreviewMaskRequest(
            path=str(path),
            frame=frame,
            mask=pb.MaskSpec(
                text=prompt,
                mask_path=str(mask_path) if mask_path else "",
                frame_prompts=frame_prompts or [],
                approximate=approximate,
            ),
            options=_options_message(options),
        )
        return self._call(self._stub.PreviewMask, request, timeout)

    def process_timeline(
        self,
        timeline_path: str,
        output_path: str,
        media_dir: str,
        *,
        options: dict | None = None,
        overwrite: bool = False,
        client_name: str = "",
    ) -> pb.Job:
        request = pb.ProcessTimelineRequest(
            timeline_path=str(timeline_path),
            output_path=str(output_path),
            media_dir=str(media_dir),
            options=_options_message(options),
            overwrite=overwrite,
            client=client_name,
        )
        return self._call(self._stub.ProcessTimeline, request)
