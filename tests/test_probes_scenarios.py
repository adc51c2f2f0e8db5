"""The default profile on the built-in scenarios: for every leaky variant it names the
leaking type, the leaking allocation site (file and function) and a retention chain
from the scenario's module-level root; for the fixed variants nothing leaks.

Each run lasts 8 s with a snapshot every second: on a loaded 2-core machine the cost-driven
cadence may fit only one or two tracemalloc windows into 8 s, and a fixed cadence makes the
test independent of the load (docs/testing.md has what the runs recorded).

One leaky variant per scenario runs with the default test suite; the others are
marked slow (run by ``make soak``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from leaklab import probes, runner, units
from leaklab.analysis import analyze

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass(frozen=True)
class Expect:
    types: tuple[str, ...]  # each must be among the leaking types
    sites: tuple[tuple[str, str], ...]  # (file ending, function): one must be a leaking site
    root: str  # the root the chains reach


LEAKY = {
    ("http_agent", "listeners"): Expect(
        ("function", "cell", "_contextvars.Context"),
        (
            ("scenarios/http_agent.py", "_listener_request.<locals>.on_shutdown"),
            ("scenarios/http_agent.py", "_listener_request"),
        ),
        "http_agent._SHUTDOWN",
    ),
    ("http_agent", "session_per_key"): Expect(
        ("aiohttp.client.ClientSession", "aiohttp.connector.TCPConnector"),
        (("scenarios/http_agent.py", "_session_per_key_request"),),
        "http_agent._SESSIONS",
    ),
    ("http_agent", "proxy_pools"): Expect(
        ("urllib3.poolmanager.ProxyManager",),
        (("urllib3/poolmanager.py", "PoolManager._new_pool"),),
        "http_agent._PROXY_CLIENT",
    ),
    ("http_agent", "response_log"): Expect(
        ("httpx.Response", "httpx.Request"),
        (("httpx/_models.py", "Headers.__init__"),),
        "http_agent._HISTORY",
    ),
    ("promise_retention", "pending_map"): Expect(
        ("promise_retention.PendingCall", "_asyncio.Future"),
        (
            ("scenarios/promise_retention.py", "_pending_map_leaky"),
            ("scenarios/promise_retention.py", "_payload"),
        ),
        "promise_retention._PENDING",
    ),
    ("promise_retention", "task_set"): Expect(
        ("_asyncio.Task",),
        (("scenarios/promise_retention.py", "_task_set_leaky"),),
        "promise_retention._BACKGROUND",
    ),
    ("promise_retention", "race"): Expect(
        ("asyncio.queues.Queue",),
        (("scenarios/promise_retention.py", "_race_leaky"),),
        "promise_retention._SHUTDOWN",
    ),
    ("promise_retention", "tracebacks"): Expect(
        ("ValueError", "traceback"),
        (
            ("scenarios/promise_retention.py", "_parse_records"),
            ("scenarios/promise_retention.py", "_tracebacks_leaky"),
        ),
        "promise_retention._ERRORS",
    ),
    ("promise_retention", "executor_futures"): Expect(
        ("concurrent.futures._base.Future",),
        (("scenarios/promise_retention.py", "_executor_leaky"),),
        "promise_retention._SUBMITTED",
    ),
}
IN_DEFAULT_SUITE = {("http_agent", "session_per_key"), ("promise_retention", "race")}


def analysed(tmp_path: Path, name: str, variant: str):
    result = runner.run(
        runner.RunConfig(
            scenario=str(SCENARIOS / f"{name}.py"),
            variant=variant,
            duration_s=8.0,
            out=str(tmp_path),
            progress=False,
            profile="default",
            probes=probes.resolve("default", []),
            probe_options={"snapshot_every": {"steps": None, "seconds": 1.0}},
        )
    )
    assert result.status == "completed", result.message
    return analyze(result.run_dir)


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        pytest.param(
            name,
            variant,
            id=f"{name}-{variant}",
            marks=() if (name, variant) in IN_DEFAULT_SUITE else pytest.mark.slow,
        )
        for name, variant in LEAKY
    ],
)
def test_default_profile_names_what_leaks_where_and_who_holds_it(tmp_path, name, variant):
    expect = LEAKY[(name, variant)]
    analysis = analysed(tmp_path, name, variant)
    types = [t["type"] for t in analysis.top_types]
    assert set(expect.types) <= set(types), types
    sites = [(s["file"], s["function"]) for s in analysis.top_sites]
    assert any(
        f.endswith(ending) and fn == function
        for f, fn in sites
        for ending, function in expect.sites
    ), sites
    roots = {c["type"]: (c["root"], c["root_kind"]) for c in analysis.chains if c["found"]}
    assert (expect.root, "module") in roots.values(), roots
    assert all(roots[t] == (expect.root, "module") for t in expect.types if t in roots), roots


@pytest.mark.parametrize("name", ["http_agent", "promise_retention"])
def test_fixed_variants_report_nothing_leaking(tmp_path, name):
    analysis = analysed(tmp_path, name, "fixed")
    assert analysis.top_types == [] and analysis.top_sites == [] and analysis.chains == []


@pytest.mark.slow  # 14 s of service under load: the soak job runs it
def test_fixed_service_under_the_default_profile_keeps_its_memory_flat(tmp_path):
    """http_agent ``fixed`` served over HTTP at 100 requests/s (5 upstream requests each)
    for 14 s, 5 s of warm-up, under the default probes: after the warm-up its allocated
    blocks and RSS stay flat. Each probe pause used to leave something behind in a
    service: the load generator's keep-alive pool (first in, first out) kept every
    connection a pause had made it open, the tracemalloc windows leaked their tracebacks
    on CPython < 3.12.5, and the first pauses came right after the warm-up.

    Measured (2 cores, CPython 3.11), eight runs each: before, blocks 1.75-2.84/step
    (95% CI upper 2.7-8.9) and RSS 0.63-1.23 KB/step; now, blocks -0.74 to -0.13/step
    (CI upper -0.05 to 0.32) and RSS 0-9 B/step. The margins sit between: blocks under
    0.5/step with a CI upper bound under 1, RSS under 100 B/step. (A run this short is
    too noisy for a verdict: the connections a pause opens come and go.)
    """
    result = runner.run(
        runner.RunConfig(
            scenario=str(SCENARIOS / "http_agent.py"),
            variant="fixed",
            params={"speed": "5"},
            serve=True,
            rate=100,
            duration_s=14.0,
            warmup=units.parse_steps_or_duration("5s"),
            interval_s=0.1,
            out=str(tmp_path),
            progress=False,
            profile="default",
            probes=probes.resolve("default", []),
        )
    )
    assert result.status == "completed", result.message
    analysis = analyze(result.run_dir)
    blocks, rss = analysis.growth["blocks"], analysis.growth["rss"]
    summary = (
        f"blocks {blocks.bytes_per_step:.3f}/step (95% CI "
        f"{blocks.ci95_per_step[0]:.3f}..{blocks.ci95_per_step[1]:.3f}), RSS "
        f"{rss.bytes_per_step:.1f} B/step, verdict {analysis.verdict.label}"
    )
    assert blocks.bytes_per_step < 0.5 and blocks.ci95_per_step[1] < 1.0, summary
    assert rss.bytes_per_step < 100, summary
