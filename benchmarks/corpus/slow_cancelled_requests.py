"""Slow leak: a pending-request map keeps the entry of every request whose caller was cancelled.

Modelled on tradeparadex/paradex-py pull request #172, "always drop the pending-request entry
in _send_request": the client registers a future in ``_pending_requests`` keyed by message id
and removes it only on ``asyncio.TimeoutError``. When the caller is cancelled (an outer
``asyncio.wait_for`` around the order whose own deadline fires) the entry stays for the life of
the connection. Only the requests that hit the caller's deadline leak, so the leak per request
is small on average: here one request in 8 is not answered before the caller gives up.

Each step sends one request over an in-process transport (an ``asyncio.Queue`` read by a
responder task standing in for the websocket peer) and awaits the answer under the caller's
deadline. The unanswered request's future and id stay in the map.

Source: https://github.com/tradeparadex/paradex-py/pull/172
Affected: paradex-py before the fix of pull request #172 (2026-08).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

EXPECTED = "LEAK"
SHAPE = "slow"
NATURAL_STEPS = 30_000
SOURCE = "https://github.com/tradeparadex/paradex-py/pull/172"
AFFECTED = "paradex-py before PR #172 (2026-08)"
PER_STEP_BYTES = 43

_UNANSWERED_EVERY = 8  # one request in 8 hits the caller's deadline


class WsClient:
    """The shape of the client in the report: a pending map keyed by message id."""

    def __init__(self) -> None:
        self._pending_requests: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self.outbox: asyncio.Queue[int] = asyncio.Queue()

    async def _send(self, msg_id: int) -> None:
        await self.outbox.put(msg_id)

    async def send_request(self, timeout: float) -> object:
        msg_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending_requests[msg_id] = future
        try:
            await self._send(msg_id)
            return await asyncio.wait_for(future, timeout=timeout)
        except asyncio.TimeoutError:
            # The only exit that cleans up (the bug): cancellation is not TimeoutError.
            self._pending_requests.pop(msg_id, None)
            raise

    def deliver(self, msg_id: int) -> None:
        future = self._pending_requests.pop(msg_id, None)
        if future is not None and not future.done():
            future.set_result({"id": msg_id, "result": "ok"})


async def _responder(client: WsClient) -> None:
    while True:
        msg_id = await client.outbox.get()
        if msg_id % _UNANSWERED_EVERY:
            client.deliver(msg_id)


async def setup():
    client = WsClient()
    responder = asyncio.get_running_loop().create_task(_responder(client))
    return {"client": client, "responder": responder}


async def step(state):
    # The caller's own deadline around the order: a cancellation inside send_request.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(state["client"].send_request(timeout=30.0), timeout=0.001)


async def teardown(state):
    state["responder"].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await state["responder"]
    state["client"]._pending_requests.clear()
