"""An aiohttp client session whose cookie jar gains a cookie per request, against a loopback
server (profiler overhead).

One ``ClientSession`` with a ``CookieJar`` (``unsafe=True``: the upstream is addressed by
IP) makes one GET per step to the project's loopback upstream (scenarios/_upstream.py,
its own process on 127.0.0.1). In the ``leaky`` variant every request first stores a
cookie under a new name (a per-request tracking id), so the jar grows without bound;
``fixed`` reuses one name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

_CORPUS = str(Path(__file__).resolve().parents[1] / "corpus")
if _CORPUS not in sys.path:
    sys.path.append(_CORPUS)
from _loopback import Upstream  # noqa: E402

VARIANTS = {"leaky": "a new cookie name per request", "fixed": "one cookie name, overwritten"}


async def setup(variant: str) -> dict[str, Any]:
    upstream = Upstream(response_size=512).start()
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    return {
        "upstream": upstream,
        "session": session,
        "url": upstream.url("/data"),
        "origin": URL(upstream.base_url),
        "unique": variant == "leaky",
        "n": 0,
    }


async def step(state: dict[str, Any]) -> None:
    state["n"] += 1
    name = f"track_{state['n']}" if state["unique"] else "track"
    state["session"].cookie_jar.update_cookies({name: f"{state['n']:016x}"}, state["origin"])
    async with state["session"].get(state["url"]) as response:
        await response.read()


async def teardown(state: dict[str, Any]) -> None:
    await state["session"].close()
    state["upstream"].stop()
