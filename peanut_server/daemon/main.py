"""`peanut-server`: start the daemon.

    peanut-server [--state-dir DIR] [--host 127.0.0.1] [--port 50517] [--unix PATH]

Listens on loopback only unless --allow-remote is given, and then only with
TLS (--tls-cert/--tls-key): the token alone must not cross a network in clear.
Writes its address to <state dir>/server.json and the client token to
<state dir>/token (0600). SIGTERM/SIGINT: stop taking requests, interrupt the
running job (it can be resumed), exit 0.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .. import __version__
from ..api import peanut_pb2 as pb
from ..api import peanut_pb2_grpc as pb_grpc
from ..pipeline import Pipeline
from ..statedir import (
    DEFAULT_PORT,
    ensure_state_dir,
    load_or_create_token,
    remove_server_file,
    resolve_state_dir,
    write_server_file,
)
from .budget import MIB, MemoryBudget, default_budget_bytes
from .jobs import JobStore
from .service import PeanutService, Worker

log = logging.getLogger("peanut_server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Peanut"].full_name
# Health checks and reflection carry no user data; load balancers and grpcurl
# use them without a token.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class TokenInterceptor(grpc.ServerInterceptor):
    """Every PEANUT RPC needs `authorization: Bearer <token>`, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method or ""
        if method.startswith(OPEN_METHOD_PREFIXES):
            return continuation(handler_call_details)
        supplied = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                supplied = value
        if hmac.compare_digest(supplied.encode(), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        message = "missing token" if not supplied else "wrong token"

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{message}: read it from the daemon's state directory")

        if handler is not None and handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                deny, handler.request_deserializer, handler.response_serializer
            )
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
    parser = argparse.ArgumentParser(prog="peanut-server", description="PEANUT daemon: hosts the models and runs removal jobs.")
    parser.add_argument("--state-dir", help="state directory (default: $PEANUT_STATE_DIR or the per-user default)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 = any free port; -1 = no TCP)")
    parser.add_argument("--unix", metavar="PATH", help="also listen on this unix socket (created 0600)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (needs --tls-cert and --tls-key)")
    parser.add_argument("--tls-cert", help="PEM certificate chain for TLS")
    parser.add_argument("--tls-key", help="PEM private key for TLS")
    parser.add_argument("--queue-size", type=int, default=32, help="jobs that may wait (default 32)")
    parser.add_argument("--memory-budget-mb", type=int, default=None,
                        help="memory for loaded models and a job's frames; least recently used models are "
                             "unloaded past it and jobs that cannot fit are refused (default: 75%% of RAM)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--version", action="version", version=f"peanut-server {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Libraries under the models (the sam2 package) draw tqdm bars on stderr; a daemon's log is no terminal.
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if not is_loopback(args.host) and args.port >= 0:
        if not args.allow_remote:
            print(f"peanut-server: refusing to listen on non-loopback address {args.host}; "
                  "pass --allow-remote with --tls-cert and --tls-key", file=sys.stderr)
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

    state_dir = ensure_state_dir(resolve_state_dir(args.state_dir))
    token = load_or_create_token(state_dir)
    store = JobStore(state_dir / "jobs.sqlite")
    interrupted = store.interrupt_running()
    if interrupted:
        log.warning("jobs interrupted by an earlier stop: %s (peanut resume JOB)", ", ".join(interrupted))

    budget_bytes = args.memory_budget_mb * MIB if args.memory_budget_mb else default_budget_bytes()
    budget = MemoryBudget(budget_bytes)
    log.info("memory budget %.0f MiB", budget_bytes / MIB)
    worker = Worker(store, Pipeline(instances=budget.cache), capacity=args.queue_size)
    service = PeanutService(worker, str(state_dir), budget)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="peanut-rpc"),
        interceptors=[TokenInterceptor(token)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=256,
    )
    pb_grpc.add_PeanutServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    addresses = []
    if args.port >= 0:
        host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
        if args.tls_cert:
            creds = grpc.ssl_server_credentials([(Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes())])
            port = server.add_secure_port(f"{host}:{args.port}", creds)
        else:
            port = server.add_insecure_port(f"{host}:{args.port}")
        if port == 0:
            print(f"peanut-server: cannot listen on {host}:{args.port} (in use?)", file=sys.stderr)
            return 1
        addresses.append(f"{host}:{port}")
    if args.unix:
        unix_path = os.path.abspath(args.unix)
        if os.path.exists(unix_path):
            os.unlink(unix_path)
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
    write_server_file(state_dir, addresses, os.getpid())
    log.info("peanut-server %s listening on %s (state %s, device %s)", __version__, ", ".join(addresses), state_dir, service.device)

    stopping = threading.Event()

    def on_signal(signum, frame):
        log.info("signal %s: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    remove_server_file(state_dir, os.getpid())
    server.stop(grace=2.0)
    worker.stop()
    store.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
