"""aiohttp client and server on loopback; the leaky variant files every response in a
module-level registry."""

from __future__ import annotations

import aiohttp
from aiohttp import web

PARAMS = {"response_size": 512}
VARIANTS = {
    "leaky": "keep a RequestRecord per request in the module-level _REGISTRY",
    "fixed": "build the same RequestRecord and drop it",
}

_REGISTRY: dict[int, RequestRecord] = {}


class RequestRecord:
    """What a careless client keeps about each request."""

    def __init__(self, number: int, status: int, headers: dict[str, str], body: bytes) -> None:
        self.number = number
        self.status = status
        self.headers = headers
        self.body = body


async def setup(variant, response_size):
    payload = b"x" * response_size

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=payload)

    app = web.Application()
    app.router.add_get("/", handle)
    app_runner = web.AppRunner(app, access_log=None)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    session = aiohttp.ClientSession()
    return {
        "runner": app_runner,
        "session": session,
        "url": f"http://127.0.0.1:{port}/",
        "keep": variant == "leaky",
        "n": 0,
    }


async def step(state):
    state["n"] += 1
    async with state["session"].get(state["url"]) as response:
        body = await response.read()
        record = RequestRecord(state["n"], response.status, dict(response.headers), body)
    if state["keep"]:
        _REGISTRY[state["n"]] = record


async def teardown(state):
    _REGISTRY.clear()
    await state["session"].close()
    await state["runner"].cleanup()
