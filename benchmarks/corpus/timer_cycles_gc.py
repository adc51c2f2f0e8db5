"""Look-alike (GC noise): each fired timer leaves a reference cycle the collector frees.

Look-alike (GC noise): each timer call leaves a small group of cyclically linked objects after
it fires; they are garbage the cyclic collector frees, so allocated blocks oscillate around a
flat level.

Modelled on twisted/twisted issue #9780 (pull request #1232), point 3: the asyncio reactor's
``callLater()`` "leaves many cyclically linked objects after timer is fired", raising memory
and GC work in timer-heavy programs, but nothing is retained: a collection frees them.

Each step schedules a DelayedCall-like object with ``loop.call_soon``; the object, its asyncio
handle and its callback's closure refer to each other (the cycle), and nothing outside refers
to them once it has fired.

Source: https://github.com/twisted/twisted/issues/9780
Affected: Twisted AsyncioSelectorReactor before pull request #1232 (2020-03).
"""

from __future__ import annotations

import asyncio

EXPECTED = "NOT_LEAK"
SHAPE = "gc-noise"
NATURAL_STEPS = 300_000
SOURCE = "https://github.com/twisted/twisted/issues/9780"
AFFECTED = "Twisted asyncio reactor before PR #1232 (2020-03)"


class DelayedCall:
    def __init__(self, loop: asyncio.AbstractEventLoop, func, args: tuple) -> None:
        self.func = func
        self.args = args
        self.kw = {"reactor": "asyncio", "args": list(args)}
        self.called = False

        def run() -> None:
            self.called = True  # the closure refers to the call, which refers to its handle
            self.func(*self.args)

        self._run = run
        self.handle = loop.call_soon(run)


async def setup():
    return {"loop": asyncio.get_running_loop(), "fired": 0}


async def step(state):
    def tick(n: int) -> None:
        state["fired"] += 1

    DelayedCall(state["loop"], tick, (state["fired"],))
    await asyncio.sleep(0)
