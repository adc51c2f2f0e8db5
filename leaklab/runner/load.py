"""The parent's load generator for service mode: real HTTP requests at a fixed rate.

Open loop, like real traffic: request ``i`` is sent at ``start + i / rate`` whether
or not earlier ones have come back, so a slow or restarting service piles up
failures instead of slowing the load down. Bounded in count (``max_requests``),
in time (``duration_s``), in requests in flight (``max_in_flight``) and per
request (``timeout_s``).

Requests go to the port of the generation the parent points it at
(:meth:`LoadGenerator.set_target`); while a generation restarts, requests keep
going to the old port and fail the way a client would see it (connection refused,
reset, disconnected). Every result is handed to ``record`` as one row of
``requests.csv`` (see :data:`leaklab.store.REQUEST_COLUMNS`), from the load
generator's own thread.

Keep-alive connections are reused most recently used first, like Node's
``http.Agent`` (``scheduling: 'lifo'``), and close after ``IDLE_S`` unused: the
service holds as many connections as its recent concurrency needs, not the most it
ever needed (see :class:`Connections`).
"""

from __future__ import annotations

import asyncio
import errno
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: every leaklab command loads this module
    import aiohttp

HOST = "127.0.0.1"
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_IN_FLIGHT = 512
#: Longest single sleep of the pacing loop, so a stop request is seen quickly.
_TICK_S = 0.05
#: An idle keep-alive connection is closed after this long: what Node's global http.Agent
#: uses (since Node 19), and short next to a run, so the connections a burst opened are
#: gone within seconds instead of drifting out of a two-minute run's analysed stretch.
IDLE_S = 5.0


@dataclass(frozen=True)
class LoadConfig:
    rate: float  # requests per second
    duration_s: float | None = None
    max_requests: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    path: str = "/"

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(
                f"rate must be a positive number of requests per second, got {self.rate!r}"
            )
        if self.duration_s is None and self.max_requests is None:
            raise ValueError("a load needs a bound: duration_s, max_requests or both")

    def event_fields(self) -> dict[str, Any]:
        """The fields of the ``load_start`` event that records this load."""
        return {
            "rate": self.rate,
            "duration_s": self.duration_s,
            "max_requests": self.max_requests,
            "timeout_s": self.timeout_s,
        }


def classify(exc: BaseException) -> str:
    """A short name for why a request got no response, as a client sees it."""
    import aiohttp

    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = getattr(exc.os_error, "errno", None)
        return {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset"}.get(code or 0, "connect")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset" if exc.errno in (errno.ECONNRESET, errno.EPIPE) else "oserror"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated"
    return type(exc).__name__


class Connections:
    """Keep-alive connections to the service, handed out last in, first out.

    aiohttp's pool hands its idle connections out first in, first out: at a steady
    rate every connection ever opened comes round again well within its keep-alive,
    so none is ever closed. A moment of extra concurrency (the service paused for a
    full collection, a probe's snapshot) then leaves the service holding that many
    connections, and the memory of each, for the rest of the run: its memory
    follows the largest pause so far, a slow climb that reads as a leak. Here each
    connection is a one-connection session; the most recently used idle one goes out
    first, so the ones a burst added fall idle and are closed after ``idle_s``.
    """

    def __init__(self, timeout_s: float, idle_s: float = IDLE_S) -> None:
        import aiohttp

        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.idle_s = idle_s
        #: (session, last used), least recently used first
        self._idle: list[tuple[aiohttp.ClientSession, float]] = []
        self._open: set[aiohttp.ClientSession] = set()

    @property
    def open(self) -> int:
        return len(self._open)

    def take(self) -> aiohttp.ClientSession:
        if self._idle:
            return self._idle.pop()[0]
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=self.idle_s),
            timeout=self.timeout,
        )
        self._open.add(session)
        return session

    def give(self, session: aiohttp.ClientSession) -> None:
        self._idle.append((session, time.monotonic()))

    async def expire(self) -> None:
        """Close the connections idle for longer than ``idle_s``."""
        deadline = time.monotonic() - self.idle_s
        while self._idle and self._idle[0][1] < deadline:
            session, _ = self._idle.pop(0)
            self._open.discard(session)
            await session.close()

    async def close(self) -> None:
        self._idle.clear()
        sessions, self._open = self._open, set()
        for session in sessions:
            await session.close()


def start_load(
    config: LoadConfig,
    t0: float,
    record: Callable[[dict[str, Any]], None],
    port: int,
    generation: int,
) -> LoadGenerator:
    """A :class:`LoadGenerator` aimed at ``port`` (process generation ``generation``), started."""
    load = LoadGenerator(config, t0, record)
    load.set_target(port, generation)
    load.start()
    return load


class LoadGenerator:
    """Sends the load from a thread of its own (its own event loop and connection pool)."""

    def __init__(
        self, config: LoadConfig, t0: float, record: Callable[[dict[str, Any]], None]
    ) -> None:
        self.config = config
        self.t0 = t0
        self.record = record
        self.sent = 0
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.started_at: float | None = None  # seconds since t0
        self.ended_at: float | None = None
        self.finished = threading.Event()
        self._target: tuple[int, int] | None = None  # (port, generation)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None

    def set_target(self, port: int, generation: int) -> None:
        """Send the next requests to ``port`` (a tuple swap: atomic for the other thread)."""
        self._target = (port, generation)

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leaklab-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send no more requests; the ones in flight finish or time out."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def summary(self) -> dict[str, Any]:
        span = (self.ended_at or 0.0) - (self.started_at or 0.0)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "errors": dict(self.errors),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "throughput_rps": round(self.ok / span, 3) if span > 0 else None,
        }

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # the parent reports it; the run itself goes on
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended_at = time.monotonic() - self.t0
            self.finished.set()

    async def _main(self) -> None:
        config = self.config
        connections = Connections(config.timeout_s)
        try:
            start = time.monotonic()
            self.started_at = start - self.t0
            in_flight: set[asyncio.Task[None]] = set()
            i = 0
            while not self._stop.is_set():
                if config.max_requests is not None and i >= config.max_requests:
                    break
                due = start + i / config.rate
                if config.duration_s is not None and due - start >= config.duration_s:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await connections.expire()
                    await asyncio.sleep(min(wait, _TICK_S))
                    continue
                i += 1
                if len(in_flight) >= config.max_in_flight:
                    self._count(time.monotonic() - self.t0, None, 0.0, None, "overload")
                    continue
                task = asyncio.create_task(self._one(connections))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.wait(in_flight, timeout=config.timeout_s + 1)
        finally:
            await connections.close()

    async def _one(self, connections: Connections) -> None:
        target = self._target
        sent = time.monotonic()
        t = sent - self.t0
        if target is None:
            self._count(t, None, 0.0, None, "no_target")
            return
        port, generation = target
        status: int | None = None
        error: str | None = None
        session = connections.take()
        try:
            async with session.get(f"http://{HOST}:{port}{self.config.path}") as response:
                await response.read()
                status = response.status
        except Exception as exc:
            error = classify(exc)
        finally:
            connections.give(session)
        self._count(t, generation, time.monotonic() - sent, status, error)

    def _count(
        self,
        t: float,
        generation: int | None,
        latency: float,
        status: int | None,
        error: str | None,
    ) -> None:
        self.sent += 1
        if error is None and status is not None and 200 <= status < 400:
            self.ok += 1
        else:
            self.errors[error or f"http_{status}"] += 1
        self.record(
            {
                "t": round(t, 6),
                "generation": generation,
                "latency_s": round(latency, 6),
                "status": status,
                "error": error,
            }
        )
