"""The HTTP scenarios clean up after themselves and talk to 127.0.0.1 only.

Each variant runs in this process (setup, a few steps, teardown, as the runner's child
would): while it runs, the upstream is a child process listening on 127.0.0.1 and every
connection goes to 127.0.0.1; after teardown no thread, socket or process it started is
left. ``leaklab list`` shows both scenarios with their variants and parameters.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from scenario_support import SCENARIOS, load

from leaklab.cli import cli as cli_main

LOOPBACK = "127.0.0.1"
#: Few steps per variant, but enough for every fixed pattern and the pools to be used.
STEPS = 12


def _variants(name: str) -> list[tuple[str, str]]:
    return [(name, variant) for variant in load(name).variants]


CASES = _variants("http_agent") + _variants("promise_retention")


def _inet_connections() -> list[Any]:
    return [
        c for c in psutil.Process().net_connections(kind="inet") if c.status != psutil.CONN_NONE
    ]


def _snapshot() -> dict[str, Any]:
    proc = psutil.Process()
    return {
        "threads": {t.ident for t in threading.enumerate()},
        "connections": {(c.laddr, c.raddr, c.status) for c in _inet_connections()},
        "children": {p.pid for p in proc.children(recursive=True)},
        "fds": proc.num_fds(),
    }


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _drive(name: str, variant: str) -> dict[str, Any]:
    """setup, STEPS steps, teardown in this process; returns what was open mid-run, what was
    still open right after teardown (before the loop closes: closing the loop would hide
    sockets that only the garbage collector closed), and what the loop reported."""
    reports: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: reports.append(context["message"])
    )
    scenario = load(name)
    params = scenario.resolve_params(variant, {"speed": "1"} if "speed" in scenario.params else {})
    state = await _maybe(scenario.setup(**scenario.setup_kwargs(variant, params)))
    try:
        for _ in range(STEPS):
            await _maybe(scenario.step(state))
        upstream = state.upstream
        server = psutil.Process(upstream.pid)
        during = {
            "upstream_pid": upstream.pid,
            "upstream_port": upstream.port,
            "children": {p.pid for p in psutil.Process().children(recursive=True)},
            "listening": [
                c.laddr
                for c in server.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ],
            "remote": [c.raddr for c in _inet_connections() if c.raddr],
        }
    finally:
        await _maybe(scenario.teardown(state))
    during["after_teardown"] = _snapshot()
    during["loop_reports"] = reports
    return during


@pytest.mark.parametrize(("name", "variant"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_teardown_leaves_no_threads_sockets_or_processes(name, variant):
    before = _snapshot()
    during = asyncio.run(_drive(name, variant))

    assert during["upstream_pid"] in during["children"]
    assert during["listening"] and all(addr.ip == LOOPBACK for addr in during["listening"])
    assert all(addr.ip == LOOPBACK for addr in during["remote"]), during["remote"]

    assert not during["loop_reports"], during["loop_reports"]  # e.g. "Unclosed client session"
    after = _snapshot()
    assert during["after_teardown"]["connections"] <= before["connections"], (
        "sockets left for the GC to close"
    )
    assert (
        not psutil.pid_exists(during["upstream_pid"])
        or psutil.Process(during["upstream_pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert after["children"] <= before["children"]
    assert after["threads"] <= before["threads"], "threads left behind"
    leftover = after["connections"] - before["connections"]
    assert not leftover, f"sockets left open: {leftover}"
    assert after["fds"] <= before["fds"], (
        f"{after['fds'] - before['fds']} file descriptors left open"
    )


def test_keep_alive_variants_hold_connections_while_running():
    """The check above has teeth: a keep-alive client holds a loopback connection to the
    upstream mid-run (so a teardown that forgot to close it would be caught)."""
    during = asyncio.run(_drive("http_agent", "session_per_key"))
    port = during["upstream_port"]
    assert any(addr.port == port for addr in during["remote"]), during["remote"]


def test_list_shows_both_scenarios_with_variants_and_parameters():
    result = CliRunner().invoke(cli_main, ["list", "--scenarios", str(SCENARIOS), "--json"])
    assert result.exit_code == 0, result.output
    entries = {entry["name"]: entry for entry in json.loads(result.output)}
    http_agent, promises = entries["http-agent"], entries["promise-retention"]
    assert {"listeners", "session_per_key", "proxy_pools", "response_log", "fixed", "seed"} <= set(
        http_agent["variants"]
    )
    assert {"response_size", "requests_per_step", "speed", "baseline"} <= set(http_agent["params"])
    assert http_agent["params"]["response_size"]["type"] == "size"
    assert {"pending_map", "task_set", "race", "tracebacks", "executor_futures", "fixed"} <= set(
        promises["variants"]
    )
    assert {"payload_size", "timeout", "pattern"} <= set(promises["params"])
    assert not any(name.startswith("_") for name in entries), "helper modules must not be listed"

    text = CliRunner().invoke(cli_main, ["list", "--scenarios", str(SCENARIOS)])
    assert text.exit_code == 0
    assert "variant seed" in text.output and "--param speed=1" in text.output
