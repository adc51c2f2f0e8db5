"""Service mode (``leaklab run --serve``): the scenario runs as a real HTTP service in the child.

An aiohttp web server listens on 127.0.0.1 (an ephemeral port, sent to the parent in
the ``hello`` message) once ``setup`` has finished:

* ``GET /health`` answers 200 (the server only listens after setup, so a 200 means ready);
* any other request does one unit of the scenario's work and counts as one step:
  ``handle(state, request)`` when the scenario module defines it, else ``step(state)``
  (either may be ``async``). The response is 200 with what ``handle`` returned (text,
  bytes, a dict or list as JSON, or an aiohttp response), or 500 when the work raised.

Every scenario can be served as it is: the step is the work one request does.
A scenario that wants the request itself defines ``handle``.

On the stop signal (SIGINT or SIGTERM) the service shuts down gracefully: it
closes the listening socket (new connections are refused), lets the requests
already in progress finish (at most ``drain_timeout_s``), closes idle keep-alive
connections, and returns so the child takes its final sample and runs teardown.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
HEALTH_PATH = "/health"
#: How often the service looks at the stop flag and the sampling clock.
POLL_S = 0.02
DEFAULT_DRAIN_TIMEOUT_S = 10.0


def _response(result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(text="ok")
    if isinstance(result, (bytes, bytearray)):
        return web.Response(body=bytes(result))
    if isinstance(result, (dict, list)):
        return web.Response(text=json.dumps(result, default=repr), content_type="application/json")
    return web.Response(text=str(result))


def request_handler(
    work: Callable[..., Any],
    wants_request: bool,
    state: Any,
    after_step: Callable[[BaseException | None], Any],
) -> Callable[[web.Request], Any]:
    """The aiohttp handler for scenario work: one request is one step."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            result = work(state, request) if wants_request else work(state)
            if inspect.isawaitable(result):
                result = await result
            response = _response(result)
        except Exception as exc:
            after_step(exc)
            return web.Response(status=500, text=f"{type(exc).__name__}: {exc}"[:200])
        after_step(None)
        return response

    return handle


async def serve(
    step_loop: Any,
    module: Any,
    step: Callable[..., Any],
    send_hello: Callable[[dict[str, Any]], None],
    hello: dict[str, Any],
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
) -> None:
    """Serve until ``step_loop.stop_reason`` is set, then shut down gracefully.

    ``step_loop`` is the child's :class:`~leaklab.runner.child.StepLoop`: it counts
    steps and errors, samples on schedule and decides when to stop.
    """
    custom = getattr(module, "handle", None)
    work = custom if callable(custom) else step

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_route(
        "*",
        "/{tail:.*}",
        request_handler(work, callable(custom), step_loop.state, step_loop.after_step),
    )
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=drain_timeout_s
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        port = int(runner.addresses[0][1])
        send_hello({**hello, "port": port})
        step_loop.sample()
        while step_loop.stop_reason is None:
            await asyncio.sleep(POLL_S)
            step_loop.sample_if_due()
            call = step_loop.take_loop_call()
            if call is not None:
                try:
                    # in this frame on purpose, as in the step loops: see ProbeContext.loop_call
                    call()
                except Exception as exc:
                    step_loop.loop_call_failed(exc)
                step_loop.loop_call_done()
    finally:
        # Stop accepting, finish the requests in progress, close idle keep-alive connections.
        await runner.cleanup()
