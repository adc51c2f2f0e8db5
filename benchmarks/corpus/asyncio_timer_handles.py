"""Asyncio leak: a call_later TimerHandle per request, kept and never cancelled (curl_cffi).

Asyncio leak: a timeout TimerHandle per request from loop.call_later, kept in a list and never
cancelled (curl_cffi AsyncCurl).

Modelled on lexiforest/curl_cffi issue #164, "AsyncCurl TimerHandle leaks": AsyncCurl keeps
the TimerHandle of every ``call_later`` it makes for libcurl's timer function in
``self._timers`` and never releases it. Here each request arms its timeout with
``loop.call_later(30 s)`` and keeps the handle in ``_timers``; the request completes, nothing
cancels the timer, so the event loop's scheduled heap and the list both keep every handle
(with its callback and arguments) for the whole run.

Source: https://github.com/lexiforest/curl_cffi/issues/164
Affected: curl_cffi 0.5.9-0.5.10 (reported fixed in 0.6.0b7).
"""

from __future__ import annotations

import asyncio

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 150_000
SOURCE = "https://github.com/lexiforest/curl_cffi/issues/164"
AFFECTED = "curl_cffi 0.5.9-0.5.10"
PER_STEP_BYTES = 480


class AsyncCurl:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._timers: list[asyncio.TimerHandle] = []

    def _on_timeout(self, request_id: int, url: str) -> None:
        pass

    async def request(self, request_id: int, url: str) -> bytes:
        # libcurl asks for a timer; the handle is kept and never cancelled (the bug).
        self._timers.append(self.loop.call_later(30.0, self._on_timeout, request_id, url))
        await asyncio.sleep(0)
        return b"ok"


async def setup():
    return {"curl": AsyncCurl(asyncio.get_running_loop()), "n": 0}


async def step(state):
    state["n"] += 1
    await state["curl"].request(state["n"], f"http://127.0.0.1/item/{state['n']}")


async def teardown(state):
    for handle in state["curl"]._timers:
        handle.cancel()
    state["curl"]._timers.clear()
