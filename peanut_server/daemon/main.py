"""`peanut-server`: start the daemon.

    peanut-server [--state-dir DIR] [--host 127.0.0.1] [--port 50517] [--unix PATH]
                  [--executor local|ray --ray-address local|auto|ray://HOST:PORT]

Listens on loopback only unless --allow-remote is given, and then only with
TLS (--tls-cert/--tls-key): the token alone must not cross a network in clear.
Writes its address to <state dir>/server.json and the client token to
<state dir>/token (0600); the token file is re-read when it changes and written
again if it is deleted. With TLS, the certificate goes to <state dir>/tls-ca.pem
for local clients to trust.

One daemon per state directory: an OS lock on <state dir>/daemon.lock is taken
before anything touches the queue; a second daemon exits 2 naming the first.

--executor ray sends each job's masking and erasing to a Ray cluster as tasks
(pipeline/executor.py); the queue, events, cancellation, resume and outputs
stay here.

SIGTERM/SIGINT: stop taking requests, interrupt the running job (it can be
resumed), leave queued jobs QUEUED (they run after the next start), join the
worker and the server, exit 0.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from filelock import FileLock, Timeout
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .. import __version__
from ..api import peanut_pb2 as pb
from ..api import peanut_pb2_grpc as pb_grpc
from ..errors import PeanutError
from ..models.cache import ModelCache, install_model_cache
from ..models.device import set_daemon_defaults
from ..pipeline import Pipeline
from ..statedir import (
    DEFAULT_PORT,
    TLS_CA_FILE,
    _write_private,
    ensure_state_dir,
    load_or_create_token,
    read_server_file,
    remove_server_file,
    resolve_state_dir,
    write_server_file,
)
from .budget import MIB, MemoryBudget, default_budget_bytes
from .jobs import JobStore, damaged_reason
from .service import MAX_WATCHERS, PeanutService, Worker

log = logging.getLogger("peanut_server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Peanut"].full_name
# Health checks and reflection carry no user data; load balancers and grpcurl
# use them without a token.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# RPC threads for unary calls; Watch streams get MAX_WATCHERS more (see service.py).
UNARY_THREADS = 32
# Seconds SIGTERM/SIGINT may take, all told: the running job stops at its next frame.
SHUTDOWN_GRACE = 20.0


class StartupError(Exception):
    """The daemon cannot start; the message is the one line it prints before exiting 2."""


class TokenFile:
    """The token the daemon accepts: <state dir>/token, re-read when it changes.

    An admin may rotate the token by writing the file; a client then reads the new
    one. If the file is deleted, refresh() writes the current token back, so
    clients started afterwards still find one.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "token"
        self._token = load_or_create_token(state_dir)
        self._stamp = self._stat()
        self._lock = threading.Lock()

    def _stat(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def current(self) -> str:
        stamp = self._stat()
        with self._lock:
            if stamp is not None and stamp != self._stamp:
                try:
                    new = self.path.read_text().strip()
                except OSError:
                    new = ""
                if new:  # an empty read is a write in progress: look again next time
                    if new != self._token:
                        log.info("token file %s changed: the new token is in force", self.path)
                    self._token, self._stamp = new, stamp
            return self._token

    def refresh(self) -> None:
        token = self.current()
        if self._stat() is None:
            log.warning("token file %s was deleted; writing the current token back", self.path)
            _write_private(self.path, token + "\n")
            with self._lock:
                self._stamp = self._stat()


class TokenInterceptor(grpc.ServerInterceptor):
    """Every PEANUT RPC needs `authorization: Bearer <token>`, compared in constant time."""

    def __init__(self, token: TokenFile) -> None:
        self._token = token

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method.startswith(OPEN_METHOD_PREFIXES):
            return continuation(handler_call_details)
        supplied = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                supplied = value
        if hmac.compare_digest(supplied.encode(), f"Bearer {self._token.current()}".encode()):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        message = "missing token" if not supplied else "wrong token"

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{message}: read it from the daemon's state directory")

        if handler is not None and handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            deny,
            handler.request_deserializer if handler else None,
            handler.response_serializer if handler else None,
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="peanut-server", description="PEANUT daemon: hosts the models and runs removal jobs."
    )
    parser.add_argument("--state-dir", help="state directory (default: $PEANUT_STATE_DIR or the per-user default)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port (default {DEFAULT_PORT}; 0 = any free port; -1 = no TCP)",
    )
    parser.add_argument("--unix", metavar="PATH", help="also listen on this unix socket (created 0600)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (needs --tls-cert and --tls-key)"
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain for TLS")
    parser.add_argument("--tls-key", help="PEM private key for TLS")
    parser.add_argument("--queue-size", type=int, default=32, help="jobs that may wait, at least 1 (default 32)")
    parser.add_argument(
        "--memory-budget-mb",
        type=int,
        default=None,
        help="memory for loaded models and a job's frames; least recently used models are "
        "unloaded past it and jobs that cannot fit are refused (default: 75%% of RAM)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where learned backends run unless a job asks otherwise: auto (CUDA, then Apple MPS, "
        "then CPU), cpu, cuda, cuda:N, mps (default auto)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="auto: fp16/bf16 autocast only for backends known to be safe with it, fp32 otherwise; "
        "fp32: never autocast (default auto)",
    )
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where jobs run: in this process (default) or as tasks on a Ray cluster",
    )
    parser.add_argument(
        "--ray-address",
        default="local",
        help="with --executor ray: 'local' starts a Ray runtime on this machine, 'auto' joins the "
        "cluster this node belongs to, ray://HOST:PORT joins a cluster through Ray Client",
    )
    parser.add_argument(
        "--ray-cpus",
        type=int,
        default=None,
        help="with --ray-address local: CPUs the local runtime may use (default: all)",
    )
    parser.add_argument("--ray-cpus-per-task", type=float, default=1.0, help="CPUs each Ray task asks for (default 1)")
    parser.add_argument(
        "--ray-gpus-per-task",
        type=float,
        default=0.0,
        help="GPUs each Ray task asks for (default 0; set it for learned backends on GPU nodes)",
    )
    parser.add_argument(
        "--ray-max-tasks",
        type=int,
        default=0,
        help="erase tasks of one job in flight at once (default: the cluster's CPUs / CPUs per task)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--version", action="version", version=f"peanut-server {__version__}")
    return parser.parse_args(argv)


def lock_state_dir(state_dir: Path) -> FileLock:
    """Hold <state dir>/daemon.lock for the daemon's life; the OS drops it when the process ends."""
    lock = FileLock(str(state_dir / "daemon.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        info = read_server_file(state_dir) or {}
        where = ", ".join(info.get("addresses") or []) or "an address it has not published yet"
        pid = f", pid {info['pid']}" if info.get("pid") else ""
        raise StartupError(
            f"another peanut-server already runs on state directory {state_dir} "
            f"(listening on {where}{pid}); use it, stop it, or pass another --state-dir"
        ) from None
    return lock


def open_job_store(path: Path) -> JobStore:
    """The job database; a damaged one is moved aside (kept, never deleted) and an empty one started."""
    reason = damaged_reason(path)
    if reason:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(f"{path}{suffix}"):
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
        except OSError as exc:
            raise StartupError(
                f"job database {path} {reason}, and it cannot be moved aside ({exc.strerror}); "
                f"move it away yourself and start again"
            ) from None
        log.error(
            "job database %s %s. It was moved aside to %s (kept as it was) and the daemon starts with an "
            "empty job queue: jobs recorded there are not listed. Restore it with sqlite3 `.recover` if you "
            "need them.",
            path,
            reason,
            aside.name,
        )
    try:
        return JobStore(path)
    except Exception as exc:  # sqlite3.Error, OSError: a file the daemon cannot open
        raise StartupError(
            f"cannot open the job database {path}: {exc}; check its permissions, or move it away and start again"
        ) from None


def check_unix_path(path: str) -> None:
    """--unix may name a new path, or a stale socket (nobody listening) that this user owns; nothing else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"--unix {path}: exists and is not a socket; refusing to replace it, choose another path")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise StartupError(f"--unix {path}: a socket of another user; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # stale: left by a daemon that did not stop cleanly
        log.info("--unix %s: removed a stale socket", path)
        return
    except OSError as exc:
        raise StartupError(
            f"--unix {path}: cannot tell whether the socket is in use ({exc}); remove it yourself if it is stale"
        ) from None
    finally:
        probe.close()
    raise StartupError(
        f"--unix {path}: the socket is in use (something listens on it); stop that or choose another path"
    )


def start_executor(args: argparse.Namespace):
    """None for --executor local; for ray, a started RayExecutor (StartupError if Ray cannot be reached)."""
    if args.executor == "local":
        return None
    from ..pipeline.executor import ExecutorError, RayExecutor, RayOptions

    address = args.ray_address
    if address not in ("local", "auto") and not address.startswith("ray://"):
        raise StartupError(f"--ray-address {address!r}: use local, auto or ray://HOST:PORT")
    options = RayOptions(
        address=address,
        local_cpus=args.ray_cpus,
        cpus_per_task=args.ray_cpus_per_task,
        gpus_per_task=args.ray_gpus_per_task,
        max_in_flight=args.ray_max_tasks,
    )
    executor = RayExecutor(options)
    try:
        executor.start()
    except ExecutorError as exc:
        raise StartupError(exc.message) from None
    return executor


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return serve(args)
    except StartupError as exc:
        print(f"peanut-server: {exc}", file=sys.stderr)
        return 2


def serve(args: argparse.Namespace) -> int:
    # Libraries under the models (the sam2 package) draw tqdm bars on stderr; a daemon's log is no terminal.
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if not is_loopback(args.host) and args.port >= 0:
        if not args.allow_remote:
            print(
                f"peanut-server: refusing to listen on non-loopback address {args.host}; "
                "pass --allow-remote with --tls-cert and --tls-key",
                file=sys.stderr,
            )
            return 2
        if not (args.tls_cert and args.tls_key):
            print("peanut-server: --allow-remote needs --tls-cert and --tls-key", file=sys.stderr)
            return 2
    if args.port < 0 and not args.unix:
        print("peanut-server: nothing to listen on (--port -1 and no --unix)", file=sys.stderr)
        return 2

    if args.memory_budget_mb is not None and args.memory_budget_mb <= 0:
        print("peanut-server: --memory-budget-mb must be positive", file=sys.stderr)
        return 2
    if args.queue_size < 1:
        print(f"peanut-server: --queue-size must be at least 1 (got {args.queue_size})", file=sys.stderr)
        return 2
    try:
        set_daemon_defaults(args.device, args.precision)
    except PeanutError as exc:  # an unknown name, or a device this machine does not have
        print(f"peanut-server: --device/--precision: {exc.message}", file=sys.stderr)
        return 2

    state_dir = ensure_state_dir(resolve_state_dir(args.state_dir))
    state_lock = lock_state_dir(state_dir)  # before anything touches the queue
    unix_path = os.path.abspath(args.unix) if args.unix else None
    if unix_path:
        check_unix_path(unix_path)
    token = TokenFile(state_dir)
    store = open_job_store(state_dir / "jobs.sqlite")
    interrupted = store.interrupt_running()
    if interrupted:
        log.warning("jobs interrupted by an earlier stop: %s (peanut resume JOB)", ", ".join(interrupted))

    budget_bytes = args.memory_budget_mb * MIB if args.memory_budget_mb else default_budget_bytes()
    if budget_bytes > 0:
        budget = MemoryBudget(budget_bytes)
        log.info("memory budget %.0f MiB", budget_bytes / MIB)
    else:
        # Refusing every job for want of a number would be worse than no net at all.
        budget = None
        log.warning("the size of this machine's RAM is unknown: no memory budget; pass --memory-budget-mb to set one")
    # One model cache for the daemon: the Pipeline's backend instances and every
    # network the backends load (models/cache.py) are counted and unloaded together.
    cache = budget.cache if budget else ModelCache(budget_bytes=None)
    install_model_cache(cache)
    executor = start_executor(args)
    worker = Worker(
        store, Pipeline(instances=cache, executor=executor), capacity=args.queue_size, warm=executor is None
    )
    service = PeanutService(worker, str(state_dir), budget)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=UNARY_THREADS + MAX_WATCHERS, thread_name_prefix="peanut-rpc"),
        interceptors=[TokenInterceptor(token)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
        # Past this many calls at once gRPC answers RESOURCE_EXHAUSTED itself, before a thread is used.
        maximum_concurrent_rpcs=2 * (UNARY_THREADS + MAX_WATCHERS),
    )
    pb_grpc.add_PeanutServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    addresses = []
    if args.port >= 0:
        host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
        if args.tls_cert:
            try:
                key, chain = Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes()
            except OSError as exc:
                raise StartupError(f"cannot read the TLS key or certificate: {exc}") from None
            creds = grpc.ssl_server_credentials([(key, chain)])
            port = server.add_secure_port(f"{host}:{args.port}", creds)
            # Local clients trust what the daemon serves (a self-signed certificate is its own CA).
            _write_private(state_dir / TLS_CA_FILE, chain.decode())
        else:
            port = server.add_insecure_port(f"{host}:{args.port}")
        if port == 0:
            print(f"peanut-server: cannot listen on {host}:{args.port} (in use?)", file=sys.stderr)
            return 1
        addresses.append(f"{host}:{port}")
    if unix_path:
        old_umask = os.umask(0o177)  # the socket file is created 0600
        try:
            server.add_insecure_port(f"unix:{unix_path}")
        finally:
            os.umask(old_umask)
        addresses.append(f"unix:{unix_path}")

    service.prime_info()
    server.start()
    worker.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    write_server_file(state_dir, addresses, os.getpid(), tls=bool(args.tls_cert))
    log.info(
        "peanut-server %s listening on %s (state %s, device %s)",
        __version__,
        ", ".join(addresses),
        state_dir,
        service.device,
    )

    stopping = threading.Event()

    def on_signal(signum, frame):
        log.info("signal %s: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping.wait(1.0):
        token.refresh()

    # Stop intake first (Submit and Resume answer "shutting down"), then the worker:
    # the running job stops at its next frame and keeps its staging; queued jobs stay QUEUED.
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if not worker.stop(timeout=SHUTDOWN_GRACE - 3.0):
        # A stage stuck in native code: leaving the interpreter with it running could abort, so
        # leave at once. The job is RUNNING in the database and becomes INTERRUPTED at the next start.
        log.error(
            "the running job did not stop within %.0fs; exiting now (it will be INTERRUPTED)", SHUTDOWN_GRACE - 3.0
        )
        remove_server_file(state_dir, os.getpid())
        logging.shutdown()
        os._exit(1)
    # Watch streams end once the worker has stopped; unary calls in flight get a moment to finish.
    server.stop(grace=max(0.5, min(2.0, deadline - time.monotonic()))).wait()
    store.close()
    if executor is not None:
        executor.shutdown()
    if unix_path and os.path.exists(unix_path):
        os.unlink(unix_path)
    remove_server_file(state_dir, os.getpid())
    state_lock.release()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
