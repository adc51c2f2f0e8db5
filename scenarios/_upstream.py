"""A real HTTP upstream on 127.0.0.1 for the HTTP scenarios, in its own process.

The upstream runs in a separate process (like the real upstream of a service), so
its own per-connection memory never shows up in the scenario process's RSS or
allocated blocks: what the runner measures is the client side only.

Endpoints (any path is served the same way)::

    GET /data?size=N&delay=S   N bytes (default: the server's --size) after S seconds
    GET http://127.0.0.1:PORT/data  the same through the server acting as a forward proxy

A request that carries ``Proxy-Authorization`` is answered as a forward proxy that
does not keep client connections alive (``Connection: close``), the behaviour of
many outbound proxies; every other connection is kept alive for ``--keepalive``
seconds of idleness (5 s by default, like Node's ``http.Server``).

Used from a scenario::

    upstream = Upstream(response_size=2048).start()
    url = upstream.url("/data")
    ...
    upstream.stop()

Run directly (``python _upstream.py --size 2048``) it prints ``listening PORT`` and
serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

HOST = "127.0.0.1"
#: Upper bounds that keep every request cheap and every wait finite.
MAX_RESPONSE_SIZE = 64 * 2**20
MAX_DELAY_S = 30.0
_NOISE_SIZE = 2**20
_READY_PREFIX = b"listening "


class UpstreamError(RuntimeError):
    """The upstream process did not start or stop as expected."""


class Upstream:
    """An aiohttp web server on 127.0.0.1 (ephemeral port) in a child process."""

    def __init__(
        self, response_size: int = 2048, keepalive: float = 5.0, startup_timeout: float = 30.0
    ) -> None:
        if not 0 <= response_size <= MAX_RESPONSE_SIZE:
            raise ValueError(
                f"response_size must be between 0 and {MAX_RESPONSE_SIZE} bytes, got "
                f"{response_size}"
            )
        self.response_size = int(response_size)
        self.keepalive = float(keepalive)
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise UpstreamError("the upstream is not running; call start() first")
        return f"http://{HOST}:{self.port}"

    def url(self, path: str = "/data", **query: object) -> str:
        """``url("/data", size=100)`` -> ``http://127.0.0.1:PORT/data?size=100``."""
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.base_url}{path}{suffix}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Upstream:
        if self._proc is not None:
            raise UpstreamError("the upstream is already running")
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--size",
            str(self.response_size),
            "--keepalive",
            str(self.keepalive),
        ]
        # stderr is inherited: a server-side error lands in the run's child-stderr.log.
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close_fds=True
        )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamError(
                    f"the upstream did not report its port within {self.startup_timeout:g}s"
                )
            ready, _, _ = select.select([stream], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(stream.fileno(), 64)
            if not chunk:
                raise UpstreamError(
                    f"the upstream exited during startup (exit code {self._proc.wait()})"
                )
            line += chunk
        if not line.startswith(_READY_PREFIX):
            raise UpstreamError(f"unexpected upstream greeting: {line[:80]!r}")
        return int(line[len(_READY_PREFIX) :].strip())

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down, wait for it, kill it if it does not go."""
        proc, self._proc, self.port = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Upstream:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the server process -------------------------------------------------------------------


def _die_with_parent() -> None:
    """On Linux, have the kernel stop this server when the process that started it dies."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _body(noise: bytes, size: int) -> bytes:
    if size <= len(noise):
        return noise[:size]
    repeats, rest = divmod(size, len(noise))
    return noise * repeats + noise[:rest]


def serve(size: int, keepalive: float) -> None:
    import asyncio

    from aiohttp import web

    noise = os.urandom(
        _NOISE_SIZE
    )  # incompressible, so compressing a body costs what it would in production

    async def handle(request: web.Request) -> web.Response:
        try:
            n = int(request.query.get("size", size))
            delay = float(request.query.get("delay", 0))
        except ValueError:
            return web.Response(
                status=400, text="size must be an integer and delay a number of seconds\n"
            )
        if not 0 <= n <= MAX_RESPONSE_SIZE or not 0 <= delay <= MAX_DELAY_S:
            return web.Response(
                status=400, text=f"size must be 0..{MAX_RESPONSE_SIZE}, delay 0..{MAX_DELAY_S:g}\n"
            )
        if delay:
            await asyncio.sleep(delay)
        response = web.Response(body=_body(noise, n), content_type="application/octet-stream")
        if "Proxy-Authorization" in request.headers:
            response.force_close()
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        # handler_cancellation: a client that gives up (a timed-out request) stops the handler
        # instead of leaving it to write into a closed socket.
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=keepalive, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sys.stdout.buffer.write(_READY_PREFIX + f"{port}\n".encode())
        sys.stdout.flush()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve N bytes per request on 127.0.0.1 (ephemeral port)."
    )
    parser.add_argument("--size", type=int, default=2048, help="default response size in bytes")
    parser.add_argument(
        "--keepalive", type=float, default=5.0, help="idle keep-alive timeout in seconds"
    )
    args = parser.parse_args(argv)
    _die_with_parent()
    serve(args.size, args.keepalive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
