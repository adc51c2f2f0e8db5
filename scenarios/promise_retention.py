"""asyncio promises that are never released: futures, tasks, callbacks and tracebacks kept per
request.

Every step makes one real request (two for ``task_set``) with a shared aiohttp
session to an upstream in its own process on 127.0.0.1 (see ``_upstream.py``),
then handles it the way one leaky pattern does. ``fixed`` runs the same calls with
their fixes (``--param pattern=NAME`` picks one; ``all`` rotates through them).
docs/scenarios.md explains each variant, its expected growth and its fix.

The retained structures are module-level (``_PENDING``, ``_BACKGROUND``,
``_SHUTDOWN``, ``_ERRORS``, ``_SUBMITTED``) so a retention chain ends at a named root.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import sys
import traceback
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from leaklab import Param

# The runner puts this folder on sys.path; `leaklab list` loads the file by path only.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
from _expected import NOTHING, Retention  # noqa: E402
from _upstream import Upstream  # noqa: E402

LEAKY = ("pending_map", "task_set", "race", "tracebacks", "executor_futures")

VARIANTS: dict[str, Any] = {
    "pending_map": {
        "aliases": ["leaky"],
        "doc": "a pending-request map of Futures keyed by request id; a call that times out is "
        "aborted but its entry (Future and request payload) is only removed when a response "
        "arrives",
    },
    "task_set": "fire-and-forget audit tasks kept in a set so they are not garbage-collected "
    "mid-flight, without the done-callback that discards them: every finished Task and its "
    "result stays",
    "race": "each request races a long-lived shutdown future with asyncio.as_completed() and "
    "takes the first; the abandoned iterator leaves its callback (and queue) on the shutdown "
    "future",
    "tracebacks": "parse errors kept in a list for an error page: each exception's traceback "
    "keeps the frames, and so the response body and its decoded copy, alive",
    "executor_futures": "concurrent.futures.Future objects from a thread pool kept after "
    "completion for progress reporting; each keeps its result and the asyncio future chained to "
    "it",
    "fixed": "the same calls, fixed: cleanup in finally, a discarding done-callback, "
    "asyncio.wait(), bounded error log without tracebacks, futures not kept",
}

PARAMS: dict[str, Any] = {
    "payload_size": Param(
        "2KB", kind="size", help="bytes in each response body and each request payload"
    ),
    "timeout": Param(
        "1ms", kind="duration", help="pending_map: how long a call waits for its response"
    ),
    "upstream_delay": Param(
        "50ms",
        kind="duration",
        help=(
            "pending_map: how long the upstream takes to answer (above timeout: every call times "
            "out)"
        ),
    ),
    "workers": Param(2, help="executor_futures: threads in the pool"),
    "error_log": Param(100, help="fixed: how many recent errors the bounded error log keeps"),
    "pattern": Param(
        "all",
        choices=("all", *LEAKY),
        help="fixed: which pattern's fix to run (all: rotate through them)",
    ),
}


#: Expected retention per step, by variant (``fixed`` keeps nothing).
EXPECTED: dict[str, Retention] = {
    # PendingCall + cancelled Future + int key + dict slot; the request payload.
    "pending_map": Retention(bytes=273, blocks=4, body_copies=1),
    # the finished Task, its finished coroutine, the set slot; the acknowledgement body as its
    # result.
    "task_set": Retention(bytes=730, blocks=6, body_copies=1),
    # as_completed's _on_completion closure, its todo set and asyncio.Queue (four deques), the
    # callback entry and Context on the shutdown future; no body.
    "race": Retention(bytes=3947, blocks=20),
    # the exception, two traceback entries and two frames; the body and its decoded str copy
    # (a latin-1 str has a 73-byte header, counted in bytes).
    "tracebacks": Retention(bytes=800, blocks=9, body_copies=2),
    # concurrent Future (Condition, RLock, deque, bound methods), the chained asyncio Future and its
    # callback closure; the compressed result (random data: about the body's size).
    "executor_futures": Retention(bytes=2327, blocks=24, body_copies=1),
    "fixed": NOTHING,
}


def expected_per_step(variant: str, params: dict[str, Any]) -> tuple[float, float]:
    """Expected ``(bytes, allocated blocks)`` kept per step by ``variant`` with ``params``."""
    retention = EXPECTED[variant]
    return retention.bytes_for(int(params["payload_size"])), retention.blocks


@dataclass(slots=True)
class PendingCall:
    """An entry of the pending-request map: the caller's Future and the payload kept for a retry."""

    future: asyncio.Future[bytes]
    payload: bytes


#: pending_map: request id -> PendingCall, removed when the response arrives.
_PENDING: dict[int, PendingCall] = {}
#: task_set: strong references to fire-and-forget tasks.
_BACKGROUND: set[asyncio.Task[bytes]] = set()
#: race: resolved when the service shuts down; never during a run.
_SHUTDOWN: asyncio.Future[None] | None = None
#: tracebacks (a list, leaky) or a bounded deque of formatted errors (fixed).
_ERRORS: list[BaseException] = []
_ERROR_LOG: collections.deque[str] = collections.deque(maxlen=100)
#: executor_futures: every future submitted to the pool.
_SUBMITTED: list[concurrent.futures.Future[bytes]] = []
_EXECUTOR: concurrent.futures.ThreadPoolExecutor | None = None
_SESSION: aiohttp.ClientSession | None = None


@dataclass
class State:
    variant: str
    upstream: Upstream
    url: str
    slow_url: str
    audit_url: str
    payload: bytes
    timeout: float
    calls: list[Callable[[State], Awaitable[int]]]
    ids: itertools.count[int] = field(default_factory=itertools.count)
    steps: int = 0
    timeouts: int = 0
    errors: int = 0


async def _fetch(url: str, data: bytes | None = None) -> bytes:
    assert _SESSION is not None
    async with _SESSION.request("POST" if data is not None else "GET", url, data=data) as resp:
        resp.raise_for_status()
        return await resp.read()


def _payload(state: State, request_id: int) -> bytes:
    return (
        request_id.to_bytes(8, "big") + state.payload[8:]
    )  # a fresh object per request, like a real body


# --- pending_map ---------------------------------------------------------------------------


async def _send_and_resolve(url: str, request_id: int, payload: bytes) -> None:
    body = await _fetch(url, payload)
    call = _PENDING.pop(request_id)  # the only place entries leave the map
    if not call.future.done():
        call.future.set_result(body)


async def _pending_map_leaky(state: State) -> int:
    request_id = next(state.ids)
    payload = _payload(state, request_id)
    future = asyncio.get_running_loop().create_future()
    _PENDING[request_id] = PendingCall(future, payload)
    sender = asyncio.ensure_future(_send_and_resolve(state.slow_url, request_id, payload))
    try:
        return len(await asyncio.wait_for(future, state.timeout))
    except asyncio.TimeoutError:
        sender.cancel()  # abort the request; its response will never pop the entry
        state.timeouts += 1
        return 0


async def _pending_map_fixed(state: State) -> int:
    request_id = next(state.ids)
    payload = _payload(state, request_id)
    future = asyncio.get_running_loop().create_future()
    _PENDING[request_id] = PendingCall(future, payload)
    sender = asyncio.ensure_future(_send_and_resolve(state.slow_url, request_id, payload))
    try:
        return len(await asyncio.wait_for(future, state.timeout))
    except asyncio.TimeoutError:
        sender.cancel()
        state.timeouts += 1
        return 0
    finally:
        _PENDING.pop(request_id, None)


# --- task_set ------------------------------------------------------------------------------


async def _audit(url: str, payload: bytes) -> bytes:
    return await _fetch(url, payload)  # the upstream's acknowledgement becomes the Task's result


async def _task_set_leaky(state: State) -> int:
    body = await _fetch(state.url)
    task = asyncio.create_task(_audit(state.audit_url, _payload(state, next(state.ids))))
    _BACKGROUND.add(task)  # missing: task.add_done_callback(_BACKGROUND.discard)
    return len(body)


async def _task_set_fixed(state: State) -> int:
    body = await _fetch(state.url)
    task = asyncio.create_task(_audit(state.audit_url, _payload(state, next(state.ids))))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return len(body)


# --- race ----------------------------------------------------------------------------------


async def _race_leaky(state: State) -> int:
    assert _SHUTDOWN is not None
    request = asyncio.ensure_future(_fetch(state.url))
    for first in asyncio.as_completed((request, _SHUTDOWN)):
        return len(await first)  # the iterator is dropped with its callback still on _SHUTDOWN
    raise AssertionError("as_completed yielded nothing")


async def _race_fixed(state: State) -> int:
    assert _SHUTDOWN is not None
    request = asyncio.ensure_future(_fetch(state.url))
    # asyncio.wait removes its callbacks from every future before it returns.
    done, _ = await asyncio.wait((request, _SHUTDOWN), return_when=asyncio.FIRST_COMPLETED)
    if request not in done:
        request.cancel()
        raise asyncio.CancelledError("shutting down")
    return len(request.result())


# --- tracebacks ----------------------------------------------------------------------------


def _parse_records(body: bytes) -> list[str]:
    text = body.decode("latin-1")  # a working copy the size of the body, local to this frame
    if not text.startswith("LLR1"):
        raise ValueError(f"not a record stream: bad magic {text[:4]!r}")
    return text[4:].split("\n")


async def _tracebacks_leaky(state: State) -> int:
    body = await _fetch(state.url)
    try:
        _parse_records(body)
    except ValueError as exc:
        state.errors += 1
        _ERRORS.append(exc)  # exc.__traceback__ -> frames -> body, text
    return len(body)


async def _tracebacks_fixed(state: State) -> int:
    body = await _fetch(state.url)
    try:
        _parse_records(body)
    except ValueError as exc:
        state.errors += 1
        _ERROR_LOG.append("".join(traceback.format_exception_only(type(exc), exc)).strip())
    return len(body)


# --- executor_futures ----------------------------------------------------------------------


async def _executor_leaky(state: State) -> int:
    assert _EXECUTOR is not None
    body = await _fetch(state.url)
    submitted = _EXECUTOR.submit(zlib.compress, body, 1)
    _SUBMITTED.append(submitted)  # "for the progress page"; never pruned
    return len(await asyncio.wrap_future(submitted))


async def _executor_fixed(state: State) -> int:
    assert _EXECUTOR is not None
    body = await _fetch(state.url)
    return len(await asyncio.wrap_future(_EXECUTOR.submit(zlib.compress, body, 1)))


_LEAKY_CALLS: dict[str, Callable[[State], Awaitable[int]]] = {
    "pending_map": _pending_map_leaky,
    "task_set": _task_set_leaky,
    "race": _race_leaky,
    "tracebacks": _tracebacks_leaky,
    "executor_futures": _executor_leaky,
}
_FIXED_CALLS: dict[str, Callable[[State], Awaitable[int]]] = {
    "pending_map": _pending_map_fixed,
    "task_set": _task_set_fixed,
    "race": _race_fixed,
    "tracebacks": _tracebacks_fixed,
    "executor_futures": _executor_fixed,
}


def _check(params: dict[str, Any]) -> None:
    for name in ("workers", "error_log"):
        if params[name] < 1:
            raise ValueError(f"--param {name} must be at least 1, got {params[name]}")
    if params["timeout"] <= 0:
        raise ValueError(f"--param timeout must be a positive duration, got {params['timeout']}")


async def setup(variant: str, params: dict[str, Any]) -> State:
    global _SHUTDOWN, _EXECUTOR, _SESSION, _ERROR_LOG
    _check(params)
    _reset_globals()
    size = int(params["payload_size"])
    upstream = Upstream(response_size=size).start()
    if variant == "fixed":
        pattern = params["pattern"]
        calls = list(_FIXED_CALLS.values()) if pattern == "all" else [_FIXED_CALLS[pattern]]
    else:
        calls = [_LEAKY_CALLS[variant]]
    state = State(
        variant=variant,
        upstream=upstream,
        url=upstream.url("/data"),
        slow_url=upstream.url("/data", delay=float(params["upstream_delay"])),
        audit_url=upstream.url("/audit"),
        payload=b"\x00" * max(8, size),
        timeout=float(params["timeout"]),
        calls=calls,
    )
    try:
        _SHUTDOWN = asyncio.get_running_loop().create_future()
        _SESSION = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        _EXECUTOR = concurrent.futures.ThreadPoolExecutor(
            max_workers=int(params["workers"]), thread_name_prefix="promise-pool"
        )
        _ERROR_LOG = collections.deque(maxlen=int(params["error_log"]))
    except BaseException:
        await teardown(state)
        raise
    return state


async def step(state: State) -> None:
    call = state.calls[state.steps % len(state.calls)]
    state.steps += 1
    await call(state)


async def teardown(state: State) -> None:
    try:
        pending = [t for t in _BACKGROUND if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if _SHUTDOWN is not None and not _SHUTDOWN.done():
            _SHUTDOWN.cancel()
        if _SESSION is not None:
            await _SESSION.close()
            await asyncio.sleep(0)  # transports finish closing on the next loop iteration
        if _EXECUTOR is not None:
            _EXECUTOR.shutdown(wait=True)
    finally:
        state.upstream.stop()
        _reset_globals()


def _reset_globals() -> None:
    global _SHUTDOWN, _EXECUTOR, _SESSION
    _PENDING.clear()
    _BACKGROUND.clear()
    _SHUTDOWN = None
    _ERRORS.clear()
    _ERROR_LOG.clear()
    _SUBMITTED.clear()
    _EXECUTOR = None
    _SESSION = None
