"""HTTP client agents that keep per-request state, against a real upstream on 127.0.0.1.

Every step makes real requests (``requests_per_step`` x ``speed`` of them) to an
aiohttp server running in its own process on 127.0.0.1 (see ``_upstream.py``).
Each leaky variant reproduces one way a long-lived HTTP "agent" keeps something
per request; ``fixed`` does the same work and keeps nothing; ``seed`` is the
incident preset (about 50 MB at start, about 2.2 KB kept per request at 37 req/s,
578 %/h). docs/scenarios.md explains each variant, its expected growth and its fix.

The retained structures are module-level (``_SHUTDOWN``, ``_SESSIONS``,
``_PROXY_CLIENT``, ``_HISTORY``) so a retention chain ends at a named root, as it
would in a service where the agent is a module or application global.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from leaklab import Param

# The runner puts this folder on sys.path; `leaklab list` loads the file by path only.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
from _expected import NOTHING, Retention  # noqa: E402
from _upstream import Upstream  # noqa: E402

VARIANTS: dict[str, Any] = {
    "listeners": {
        "aliases": ["leaky"],
        "doc": "each request adds a shutdown listener to the agent's long-lived future and never "
        "removes it; the listener's closure pins the response body (the AbortSignal listener "
        "leak)",
    },
    "session_per_key": {
        "doc": "a new aiohttp ClientSession (with its own TCPConnector pool) per auth token, "
        "cached in a dict that is never evicted or closed",
    },
    "proxy_pools": {
        "doc": "requests with a rotating proxy URL per request: requests' HTTPAdapter keeps one "
        "urllib3 ProxyManager per proxy URL, forever",
    },
    "response_log": {
        "doc": (
            "an httpx event hook keeps every Response (request, headers, body) in a list for "
            "retries and debugging"
        ),
    },
    "fixed": {
        "doc": "one shared aiohttp session, bounded pool, per-request headers, bodies read, "
        "listeners removed in finally: nothing kept",
    },
    "seed": {
        "doc": "the incident preset: the listeners leak tuned to ~2.2 KB kept per request, a ~50 "
        "MB starting RSS and 37 req/s (578 %/h); --param speed=N runs N requests per step to "
        "compress time N-fold",
        "params": {"response_size": "1625B", "baseline": "50MB"},
        "rate": "37/s",
    },
}

PARAMS: dict[str, Any] = {
    "response_size": Param("2KB", kind="size", help="bytes the upstream sends per response"),
    "requests_per_step": Param(1, help="requests made one after another in each step"),
    "speed": Param(
        1,
        help="time compression: multiplies the requests per step, so at a fixed --rate the same "
        "growth per request unfolds speed times faster",
    ),
    "keys": Param(
        0,
        help="session_per_key/proxy_pools: distinct keys (0: a new one per request, unbounded; "
        "N: cycle through N, so the cache plateaus)",
    ),
    "baseline": Param(
        "0B", kind="size", help="allocate a ballast in setup so RSS starts near this (0B: none)"
    ),
    "keepalive": Param(
        "5s",
        kind="duration",
        help="upstream: close connections idle this long (Node's default is 5 s)",
    ),
    "client_keepalive": Param(
        "15s",
        kind="duration",
        help="session_per_key: idle keep-alive of each cached session's pool "
        "(aiohttp's default is 15 s)",
    ),
    "pool_size": Param(10, help="fixed: connections in the shared pool"),
    "timeout": Param("10s", kind="duration", help="per-request timeout of every client"),
}


#: Expected retention per request, by variant (``fixed`` keeps nothing).
EXPECTED: dict[str, Retention] = {
    # function + 2 cells + callback tuple + Context + list slot; the body through the closure's
    # cell.
    "listeners": Retention(bytes=447, blocks=8, body_copies=1),
    "seed": Retention(bytes=447, blocks=8, body_copies=1),
    # ClientSession + TCPConnector + CookieJar + headers + resolver and DNS cache, once the pool has
    # dropped its connection (SESSION_PER_KEY_PHASES: what each request holds before that).
    "session_per_key": Retention(bytes=6710, blocks=41),
    # urllib3 ProxyManager + HTTPConnectionPool (queue, locks, the closed HTTPConnection) + the dict
    # entry.
    "proxy_pools": Retention(bytes=7531, blocks=71),
    # httpx.Response + Request + both header sets + URL + the stream wrappers, and the body.
    "response_log": Retention(bytes=5981, blocks=100, body_copies=1),
    "fixed": NOTHING,
}


#: session_per_key, over the life of one request's session: while its keep-alive connection is
#: open (until the upstream's ``keepalive`` or the pool's ``client_keepalive``, whichever is
#: first), after the upstream closed it (the closed protocol stays in the pool until the pool's
#: next cleanup, ``client_keepalive``), and for good once the pool dropped it.
SESSION_PER_KEY_PHASES: dict[str, Retention] = {
    "open": Retention(bytes=14536, blocks=124),
    "closed_by_upstream": Retention(bytes=9633, blocks=61),
    "dropped": EXPECTED["session_per_key"],
}


def requests_per_step(params: dict[str, Any]) -> int:
    return int(params["requests_per_step"]) * int(params["speed"])


def expected_per_step(variant: str, params: dict[str, Any]) -> tuple[float, float]:
    """Expected ``(bytes, allocated blocks)`` kept per step by ``variant`` with ``params``."""
    retention = EXPECTED[variant]
    n = requests_per_step(params)
    return n * retention.bytes_for(int(params["response_size"])), n * retention.blocks


_log = logging.getLogger(__name__)

#: Resolved when the agent shuts down; in-flight requests listen to it (listeners, seed, fixed).
_SHUTDOWN: asyncio.Future[None] | None = None
#: The shared aiohttp agent (listeners, seed, fixed).
_AGENT: aiohttp.ClientSession | None = None
#: session_per_key: one ClientSession per auth token.
_SESSIONS: dict[str, aiohttp.ClientSession] = {}
#: proxy_pools: the shared requests.Session whose adapter grows one ProxyManager per proxy URL.
_PROXY_CLIENT: Any = None
#: response_log: the shared httpx.Client and every Response it has returned.
_HTTPX_CLIENT: Any = None
_HISTORY: list[Any] = []
#: The starting-RSS ballast (stands for the caches and code of a real service).
_BALLAST: bytearray | None = None


@dataclass
class State:
    variant: str
    upstream: Upstream
    url: str
    requests: int
    keys: int
    timeout: float
    client_keepalive: float
    request: Callable[[State], Awaitable[int]]
    ids: itertools.count[int] = field(default_factory=itertools.count)
    received: int = 0

    def next_key(self) -> str:
        n = next(self.ids)
        return f"{n % self.keys if self.keys else n:08d}"


async def _listener_request(state: State) -> int:
    """Leaky: the listener's closure keeps ``body`` (late-bound cell) for as long as the agent
    lives."""
    assert _AGENT is not None and _SHUTDOWN is not None
    request_id = next(state.ids)
    async with _AGENT.get(state.url) as resp:
        body = b""

        def on_shutdown(_: asyncio.Future[None]) -> None:
            _log.debug("request %d cut short by shutdown after %d bytes", request_id, len(body))

        _SHUTDOWN.add_done_callback(on_shutdown)
        body = await resp.read()
    return len(body)


async def _session_per_key_request(state: State) -> int:
    """Leaky: a session (and its connection pool) per token, never evicted, never closed."""
    token = state.next_key()
    session = _SESSIONS.get(token)
    if session is None:
        session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(keepalive_timeout=state.client_keepalive),
            timeout=aiohttp.ClientTimeout(total=state.timeout),
        )
        _SESSIONS[token] = session
    async with session.get(state.url) as resp:
        return len(await resp.read())


async def _proxy_pools_request(state: State) -> int:
    """Leaky: requests caches a ProxyManager per distinct proxy URL (here: per sticky proxy
    session)."""
    port = state.upstream.port
    proxy = f"http://session-{state.next_key()}:secret@127.0.0.1:{port}"
    response = _PROXY_CLIENT.get(state.url, proxies={"http": proxy}, timeout=state.timeout)
    response.raise_for_status()
    return len(response.content)


def _keep_response(response: Any) -> None:
    _HISTORY.append(response)  # "so failed calls can be retried and inspected later"


async def _response_log_request(state: State) -> int:
    """Leaky: the event hook above keeps every httpx.Response."""
    response = _HTTPX_CLIENT.get(state.url)
    response.raise_for_status()
    return len(response.content)


async def _fixed_request(state: State) -> int:
    """The fix: one shared bounded agent, per-request headers, the listener removed when the
    request ends."""
    assert _AGENT is not None and _SHUTDOWN is not None
    request_id = next(state.ids)
    token = state.next_key()
    body = b""

    def on_shutdown(_: asyncio.Future[None]) -> None:
        _log.debug("request %d cut short by shutdown after %d bytes", request_id, len(body))

    _SHUTDOWN.add_done_callback(on_shutdown)
    try:
        async with _AGENT.get(state.url, headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.read()
            return len(body)
    finally:
        _SHUTDOWN.remove_done_callback(on_shutdown)


_REQUESTS: dict[str, Callable[[State], Awaitable[int]]] = {
    "listeners": _listener_request,
    "seed": _listener_request,
    "session_per_key": _session_per_key_request,
    "proxy_pools": _proxy_pools_request,
    "response_log": _response_log_request,
    "fixed": _fixed_request,
}


def _allocate_ballast(target_rss: int) -> int:
    """Grow RSS to about ``target_rss`` with touched memory; returns the ballast size."""
    global _BALLAST
    missing = target_rss - psutil.Process().memory_info().rss
    if missing <= 0:
        return 0
    _BALLAST = bytearray(b"\xa5") * missing  # written, so every page is resident
    return missing


def _check(params: dict[str, Any]) -> None:
    for name, low in (("requests_per_step", 1), ("speed", 1), ("keys", 0), ("pool_size", 1)):
        if params[name] < low:
            raise ValueError(f"--param {name} must be at least {low}, got {params[name]}")
    for name in ("timeout", "client_keepalive", "keepalive"):
        if params[name] <= 0:
            raise ValueError(f"--param {name} must be a positive duration, got {params[name]}")


async def setup(variant: str, params: dict[str, Any]) -> State:
    global _SHUTDOWN, _AGENT, _PROXY_CLIENT, _HTTPX_CLIENT
    _check(params)
    _reset_globals()
    upstream = Upstream(
        response_size=params["response_size"], keepalive=params["keepalive"]
    ).start()
    state = State(
        variant=variant,
        upstream=upstream,
        url=upstream.url("/data"),
        requests=requests_per_step(params),
        keys=int(params["keys"]),
        timeout=float(params["timeout"]),
        client_keepalive=float(params["client_keepalive"]),
        request=_REQUESTS[variant],
    )
    try:
        _SHUTDOWN = asyncio.get_running_loop().create_future()
        timeout = aiohttp.ClientTimeout(total=state.timeout)
        if variant in ("listeners", "seed"):
            _AGENT = aiohttp.ClientSession(timeout=timeout)
        elif variant == "fixed":
            _AGENT = aiohttp.ClientSession(
                timeout=timeout, connector=aiohttp.TCPConnector(limit=int(params["pool_size"]))
            )
        elif variant == "proxy_pools":
            import requests  # imported here so the other variants' baseline stays free of it

            _PROXY_CLIENT = requests.Session()
            _PROXY_CLIENT.trust_env = (
                False  # never let an environment proxy send loopback traffic elsewhere
            )
        elif variant == "response_log":
            import httpx

            _HTTPX_CLIENT = httpx.Client(
                trust_env=False, timeout=state.timeout, event_hooks={"response": [_keep_response]}
            )
        # One request before the ballast, so imports and first-use caches count as baseline.
        await step(state)
        if params["baseline"]:
            _allocate_ballast(int(params["baseline"]))
    except BaseException:
        await teardown(state)
        raise
    return state


async def step(state: State) -> None:
    for _ in range(state.requests):
        state.received += await state.request(state)


async def teardown(state: State) -> None:
    try:
        if _SHUTDOWN is not None and not _SHUTDOWN.done():
            _SHUTDOWN.set_result(None)
            await asyncio.sleep(0)  # let the listeners run once, as a real shutdown would
        await _close_clients()
    finally:
        state.upstream.stop()
        _reset_globals()


async def _close_clients() -> None:
    sessions = [s for s in (_AGENT, *_SESSIONS.values()) if s is not None]
    for session in sessions:
        await session.close()
    if sessions:
        await asyncio.sleep(0)  # transports finish closing on the next loop iteration
    if _PROXY_CLIENT is not None:
        _PROXY_CLIENT.close()
    if _HTTPX_CLIENT is not None:
        _HTTPX_CLIENT.close()


def _reset_globals() -> None:
    global _SHUTDOWN, _AGENT, _PROXY_CLIENT, _HTTPX_CLIENT, _BALLAST
    _SHUTDOWN = None
    _AGENT = None
    _SESSIONS.clear()
    _PROXY_CLIENT = None
    _HTTPX_CLIENT = None
    _HISTORY.clear()
    _BALLAST = None
