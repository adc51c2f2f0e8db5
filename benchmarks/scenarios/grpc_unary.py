"""gRPC unary calls in steady state, against a loopback server in its own process (profiler
overhead).

One insecure channel to a gRPC server on 127.0.0.1 (an ephemeral port, its own process, so
its memory never shows in the client's figures) makes one unary call per step: 256 bytes out,
the same bytes back. The method is registered as a generic handler on raw bytes, so no
generated code is needed. Nothing is kept between calls: the heap stays level, and what a
profile costs here is its cost on a steady service.

Run directly (``python grpc_unary.py --serve``) it prints ``listening PORT`` and serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from concurrent import futures
from typing import Any

import grpc

VARIANTS = {"steady": "one channel, one unary call of 256 bytes per step"}

HOST = "127.0.0.1"
SERVICE, NAME = "leaklab.bench.Echo", "Call"
METHOD = f"/{SERVICE}/{NAME}"
PAYLOAD = b"x" * 256
#: Seconds a call may take before the step fails (a server gone away is an error, not a hang).
CALL_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 30.0


def setup(variant: str) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = _read_port(server)
        channel = grpc.insecure_channel(f"{HOST}:{port}")
        grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT_S)
    except BaseException:
        _stop(server)
        raise
    return {"server": server, "channel": channel, "call": channel.unary_unary(METHOD)}


def step(state: dict[str, Any]) -> None:
    reply = state["call"](PAYLOAD, timeout=CALL_TIMEOUT_S)
    if reply != PAYLOAD:
        raise RuntimeError(f"the echo server answered {len(reply)} bytes, not {len(PAYLOAD)}")


def teardown(state: dict[str, Any]) -> None:
    state["channel"].close()
    _stop(state["server"])


def _read_port(server: subprocess.Popen[str]) -> int:
    """The port the server prints once it listens; an error if it does not within the timeout."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(server.stdout.readline()), daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT_S)
    line = found[0] if found else ""
    if not line.startswith("listening "):
        raise RuntimeError(f"the gRPC echo server did not start (it printed {line!r})")
    return int(line.split()[1])


def _stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def serve() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    echo = grpc.unary_unary_rpc_method_handler(lambda request, _context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {NAME: echo}),))
    port = server.add_insecure_port(f"{HOST}:0")
    server.start()
    print(f"listening {port}", flush=True)
    stop.wait()
    server.stop(grace=None)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
