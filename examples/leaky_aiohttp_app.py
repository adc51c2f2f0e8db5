"""An aiohttp service that leaks: every request schedules a callback on a future that
never completes, and the callback holds the request's session record.

    python examples/leaky_aiohttp_app.py --port 8000           # leaky
    python examples/leaky_aiohttp_app.py --port 8000 --fixed   # the future is cancelled after use

Diagnosed, unchanged, with:

    leaklab run --load 'http://127.0.0.1:{port}/work' --rate 200/s --duration 20s \\
        -- python examples/leaky_aiohttp_app.py --port {port}
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

#: the future every request waits on "for shutdown": it never completes
SHUTDOWN: asyncio.Future[None] | None = None
FIXED = False


class SessionRecord:
    """What the service keeps for one request."""

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.payload = bytearray(1024)


async def work(request: web.Request) -> web.Response:
    app = request.app
    app["served"] += 1
    record = SessionRecord(app["served"])
    if FIXED:
        done = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda _f: record.request_id)
        done.cancel()
    else:
        assert SHUTDOWN is not None
        SHUTDOWN.add_done_callback(lambda _f: record.request_id)
    return web.json_response({"id": record.request_id})


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def start(_app: web.Application) -> None:
    global SHUTDOWN
    SHUTDOWN = asyncio.get_running_loop().create_future()


def main() -> None:
    global FIXED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fixed", action="store_true")
    args = parser.parse_args()
    FIXED = args.fixed
    app = web.Application()
    app["served"] = 0
    app.on_startup.append(start)
    app.router.add_get("/health", health)
    app.router.add_get("/work", work)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
