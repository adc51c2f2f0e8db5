"""Service mode with real processes: the child serves HTTP on 127.0.0.1, the parent sends the load.

retain_service leaky (size=50KB, delay=0.2s) keeps about 50 KB of RSS per request; every
request is answered (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
from aiohttp import web

from leaklab import runner, store
from leaklab.analysis import recycling
from leaklab.runner import load


def test_service_serves_real_requests_and_stops_gracefully(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("retain_service"),
            params={"size": "50KB", "delay": "0.2s"},
            serve=True,
            rate=50,
            duration_s=3.0,
            interval_s=0.1,
            out=str(tmp_path),
            progress=False,
            probes=[],
        )
    )
    assert result.status == "completed", result.message
    run = store.read_run(result.run_dir)
    req = run.requests
    statuses = np.asarray(req["status"])
    # Open loop at 50/s for 3 s: request i goes out at i/50 s.
    assert len(statuses) == 150
    assert (statuses == 200).all(), dict(
        zip(*np.unique(req["error"], return_counts=True), strict=True)
    )
    latency = np.asarray(req["latency_s"])
    assert latency.min() >= 0.2 and np.median(latency) < 0.5
    assert result.steps == 150 and result.requests == {
        **result.requests,
        "sent": 150,
        "ok": 150,
        "failed": 0,
    }
    assert set(req["generation"]) == {0.0}
    kinds = [e["kind"] for e in run.events]
    for kind in ("start", "ready", "healthy", "load_start", "load_end", "done", "exit"):
        assert kind in kinds, kind
    assert (
        kinds.index("healthy")
        < kinds.index("load_start")
        < kinds.index("load_end")
        < kinds.index("done")
    )
    ready = run.events_of("ready")[0]
    assert isinstance(ready["port"], int) and ready["port"] > 0
    # The stop at the end of the load is graceful: teardown ran, nothing in flight was cut.
    assert run.events_of("done")[0]["reason"] == "interrupted"
    assert run.meta["config"]["serve"] is True and run.meta["counters"]["requests"]["ok"] == 150
    # Each request keeps 50 KB: the service's RSS grows by the bytes its requests keep.
    slope = recycling.generation_slopes(run)[0]
    assert 50_000 * 0.95 <= slope.bytes_per_step <= 50_000 * 1.15, slope


def test_handle_hook_gets_the_request_and_errors_are_500s(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("handle_service"),
            serve=True,
            rate=100,
            steps=200,
            duration_s=10.0,
            max_errors=1_000,
            interval_s=0.1,
            out=str(tmp_path),
            progress=False,
            probes=[],
        )
    )
    assert result.status == "completed", (
        result.message
    )  # teardown checked that handle() saw every request
    run = store.read_run(result.run_dir)
    statuses = np.asarray(run.requests["status"])
    assert len(statuses) == 200  # --steps bounds the number of requests
    assert (statuses == 500).sum() == 20 and (statuses == 200).sum() == 180
    assert result.errors == 20 and result.steps == 200
    metrics = recycling.analyze_recycling(run)
    assert metrics.failures_by_error == {"http_500": 20} and metrics.success_rate == 0.9


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", "run", *args], capture_output=True, text=True, timeout=60
    )


def test_service_and_recycling_usage_errors(test_scenario):
    path = test_scenario("retain_service")
    no_rate = _cli(path, "--serve")
    assert no_rate.returncode == 2 and "--serve needs a request rate" in no_rate.stderr
    orphan = _cli(path, "--kill-timeout", "3s")
    assert orphan.returncode == 2 and "only applies with --recycle" in orphan.stderr
    bad_signal = _cli(path, "--recycle", "100MB", "--kill-signal", "SIGFOO")
    assert (
        bad_signal.returncode == 2
        and "accepted forms" in bad_signal.stderr
        and "SIGTERM" in bad_signal.stderr
    )
    bad_limit = _cli(path, "--recycle", "lots")
    assert bad_limit.returncode == 2 and "accepted forms" in bad_limit.stderr


def test_load_reuses_the_latest_connection_and_closes_the_ones_a_burst_opened():
    """Three requests at once open three connections; one at a time afterwards, the most
    recently used one serves them all and the other two close once idle for ``idle_s``.
    (aiohttp's own pool would hand the three out in turn and keep all of them open.)"""

    async def scenario() -> tuple[int, set[int], int]:
        peers: list[int] = []

        async def handle(request: web.Request) -> web.Response:
            peers.append(request.transport.get_extra_info("peername")[1])
            await asyncio.sleep(0.05)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", handle)
        server = web.AppRunner(app, access_log=None)
        await server.setup()
        site = web.TCPSite(server, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{server.addresses[0][1]}/"
        connections = load.Connections(timeout_s=5.0, idle_s=0.3)

        async def one() -> None:
            session = connections.take()
            try:
                async with session.get(url) as response:
                    await response.read()
            finally:
                connections.give(session)

        try:
            await asyncio.gather(one(), one(), one())
            burst = connections.open
            peers.clear()
            for _ in range(8):
                await one()
                await asyncio.sleep(0.05)
                await connections.expire()
            return burst, set(peers), connections.open
        finally:
            await connections.close()
            await server.cleanup()

    burst, ports, after = asyncio.run(scenario())
    assert burst == 3
    assert len(ports) == 1  # one connection served every request after the burst
    assert after == 1  # the two the burst opened were closed
