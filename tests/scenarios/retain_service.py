"""Keeps a buffer per request (leaky) or drops it (fixed); each request can wait like an upstream
call."""

import asyncio

from leaklab import Param

PARAMS = {
    "size": Param(100_000, kind="size", help="bytes kept per request"),
    "delay": Param(
        0.0, kind="duration", help="how long each request waits, like a call to an upstream"
    ),
    "startup": Param(0.0, kind="duration", help="how long setup takes"),
    "teardown_delay": Param(0.0, kind="duration", help="how long teardown takes"),
}
VARIANTS = {"leaky": "keep every buffer", "fixed": "drop every buffer"}

_RETAINED: list[bytearray] = []


async def setup(variant, size, delay, startup, teardown_delay):
    await asyncio.sleep(startup)
    return {
        "size": size,
        "delay": delay,
        "keep": variant == "leaky",
        "teardown_delay": teardown_delay,
    }


async def step(state):
    buffer = bytearray(state["size"])
    if state["delay"]:
        await asyncio.sleep(state["delay"])
    if state["keep"]:
        _RETAINED.append(buffer)


async def teardown(state):
    await asyncio.sleep(state["teardown_delay"])
    _RETAINED.clear()
