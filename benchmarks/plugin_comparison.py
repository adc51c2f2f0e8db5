"""The pytest plugin against pytest-memray's ``limit_leaks`` and a plain tracemalloc diff.

Every case is a function called once per "call"; each tool gets it as its documented
usage asks:

* **leaklab**: ``@pytest.mark.leaklab`` with default options (5 warm-up calls, then
  rounds of 25 calls that must all retain; confirmed by as many rounds again once
  1,000 calls have been made);
* **memray**: ``@pytest.mark.limit_leaks("1 KB")`` around a loop of 100 calls, run with
  ``--memray`` (memray's docs: run the code in a loop, allow a small amount per stack);
* **tracemalloc diff**: ``tracemalloc.start()``, 100 calls, ``gc.collect()``, fail when
  the traced memory grew by more than 1 KB (10 B per call).

Cases: one 64-byte object kept per call; a cache that fills to a bound of 64 entries;
lazy initialisation spread over the first 8 calls; temporaries only; and one step of
the built-in scenarios (real HTTP on 127.0.0.1), leaky and fixed. Each tool runs in
its own pytest process; outcomes and call-phase times come from JUnit XML.

    .venv/bin/python benchmarks/plugin_comparison.py

Targets: every leaky case caught, no false positive, one leaked 64-byte object per
call caught in under 2 s. A second table shows what the plugin costs unmarked tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOP_CALLS = 100
LIMIT = "1 KB"
LIMIT_BYTES = 1024


@dataclass(frozen=True)
class Case:
    name: str
    test: str  # test function suffix
    body: str  # expression calling the case once (may use the fixture ``step``)
    leaky: bool
    fixture: str | None = None  # scenario fixture name
    marker_args: str = ""  # leaklab options; a case with options is run by leaklab only


CASES = [
    Case("1 object (64 B) kept per call", "one_object", "cases.leak_one_object()", True),
    Case("cache filling to a bound (64)", "bounded_cache", "cases.bounded_cache()", False),
    Case("lazy init over the first 8 calls", "lazy_init", "cases.lazy_init()", False),
    Case("temporaries only", "no_leak", "cases.no_leak()", False),
    Case(
        "http-agent listeners: one step", "http_agent_leaky", "step()", True, "http_agent_listeners"
    ),
    Case("http-agent fixed: one step", "http_agent_fixed", "step()", False, "http_agent_fixed"),
    Case(
        "promise-retention pending_map: one step",
        "promise_leaky",
        "step()",
        True,
        "promise_retention_pending_map",
    ),
    Case(
        "promise-retention fixed: one step",
        "promise_fixed",
        "step()",
        False,
        "promise_retention_fixed",
    ),
    # Its bounded error log (100 entries, one per 5 steps) fills for 500 calls: past the
    # measured rounds; without patience every round retains.
    Case(
        "promise-retention fixed, patience=0",
        "promise_fixed_impatient",
        "step()",
        False,
        "promise_retention_fixed",
        marker_args="patience=0",
    ),
]

CASES_MODULE = '''
"""The cases, shared by every tool's test file."""
import asyncio
import functools
import gc
import tracemalloc

from leaklab import scenario as scenario_mod

_KEPT = []


def leak_one_object():
    _KEPT.append(bytes(31))  # sys.getsizeof(bytes(31)) == 64


_N = [0]


@functools.lru_cache(maxsize=64)
def _render(n):
    return "x" * 200 + f"{n:08d}"


def bounded_cache():
    _N[0] += 1
    _render(_N[0])


_LAZY = {}


def lazy_init():
    part = len(_LAZY)
    if part < 8:
        _LAZY[part] = [bytearray(256) for _ in range(20)]


def no_leak():
    return sorted(str(i) for i in range(50))


class ScenarioStep:
    """One built-in scenario, set up once on its own event loop; calling it runs one step."""

    def __init__(self, path, variant):
        self.scenario = scenario_mod.load(path)
        variant = self.scenario.resolve_variant(variant)
        params = self.scenario.resolve_params(variant, {})
        self.loop = asyncio.new_event_loop()
        kwargs = self.scenario.setup_kwargs(variant, params)
        self.state = self.loop.run_until_complete(self.scenario.setup(**kwargs))

    def __call__(self):
        self.loop.run_until_complete(self.scenario.step(self.state))

    def close(self):
        try:
            self.loop.run_until_complete(self.scenario.teardown(self.state))
        finally:
            self.loop.close()


def tracemalloc_diff(call, calls, limit):
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            call()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown <= limit, f"traced memory grew {grown} bytes over {calls} calls (limit {limit})"
'''

CONFTEST = """
import pytest
import cases

SCENARIOS = {root!r}


def _step(path, variant):
    step = cases.ScenarioStep(path, variant)
    yield step
    step.close()


@pytest.fixture
def http_agent_listeners():
    yield from _step(SCENARIOS + "/http_agent.py", "listeners")


@pytest.fixture
def http_agent_fixed():
    yield from _step(SCENARIOS + "/http_agent.py", "fixed")


@pytest.fixture
def promise_retention_pending_map():
    yield from _step(SCENARIOS + "/promise_retention.py", "pending_map")


@pytest.fixture
def promise_retention_fixed():
    yield from _step(SCENARIOS + "/promise_retention.py", "fixed")
"""


def test_file(tool: str) -> str:
    lines = ["import pytest", "import cases", ""]
    for case in CASES:
        rename = f"    step = {case.fixture}\n" if case.fixture else ""
        signature = f"def test_{case.test}({case.fixture or ''}):"
        if tool == "leaklab":
            marker = (
                f"@pytest.mark.leaklab({case.marker_args})"
                if case.marker_args
                else "@pytest.mark.leaklab"
            )
            lines += [marker, signature, rename + f"    {case.body}", ""]
        elif case.marker_args:
            continue
        elif tool == "memray":
            lines += [
                f'@pytest.mark.limit_leaks("{LIMIT}")',
                signature,
                rename + f"    for _ in range({LOOP_CALLS}):\n        {case.body}",
                "",
            ]
        else:
            call = f"lambda: {case.body}"
            lines += [
                signature,
                rename + f"    cases.tracemalloc_diff({call}, {LOOP_CALLS}, {LIMIT_BYTES})",
                "",
            ]
    return "\n".join(lines)


TOOLS = {
    "leaklab": ["-p", "no:memray"],
    "memray": ["--memray", "-p", "no:leaklab", "--hide-memray-summary"],
    "tracemalloc diff": ["-p", "no:leaklab", "-p", "no:memray"],
}


def run_tool(folder: Path, tool: str) -> dict[str, tuple[str, float]]:
    name = "test_" + tool.replace(" ", "_") + ".py"
    (folder / name).write_text(test_file(tool.split()[0]), encoding="utf-8")
    xml = folder / f"{tool.replace(' ', '_')}.xml"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "junit_duration_report=call",
            "--junit-xml",
            str(xml),
            name,
            *TOOLS[tool],
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    results: dict[str, tuple[str, float]] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        if case.find("failure") is not None:
            outcome = "LEAK"
        elif case.find("error") is not None:
            outcome = "error"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "ok"
        results[case.get("name", "").removeprefix("test_")] = (
            outcome,
            float(case.get("time", "nan")),
        )
    return results


def unmarked_overhead(folder: Path, tests: int, repeat: int) -> tuple[float, float]:
    """Best-of wall time of a session of trivial unmarked tests, with and without the plugin."""
    body = "\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(tests))
    (folder / "test_unmarked.py").write_text(body, encoding="utf-8")
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for enabled in (True, False):
            extra = [] if enabled else ["-p", "no:leaklab"]
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "test_unmarked.py",
                    *extra,
                ],
                cwd=folder,
                capture_output=True,
                check=True,
                timeout=300,
            )
            times[enabled].append(time.perf_counter() - started)
    return min(times[True]), min(times[False])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--unmarked-tests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leaklab-plugin-bench-") as tmp:
        folder = Path(tmp)
        (folder / "cases.py").write_text(textwrap.dedent(CASES_MODULE), encoding="utf-8")
        (folder / "conftest.py").write_text(
            CONFTEST.format(root=str(ROOT / "scenarios")), encoding="utf-8"
        )
        results = {tool: run_tool(folder, tool) for tool in TOOLS}
        with_plugin, without = unmarked_overhead(folder, args.unmarked_tests, args.repeat)

    print(
        f"verdicts and call-phase seconds per test (memray and tracemalloc: {LOOP_CALLS} "
        f"calls, limit {LIMIT})"
    )
    print(" | ".join(["case", "deserves", *TOOLS]))
    print(" | ".join(["---"] * (2 + len(TOOLS))))
    for case in CASES:
        cells = []
        for tool in TOOLS:
            if case.test not in results[tool]:
                cells.append("n/a")
                continue
            outcome, seconds = results[tool][case.test]
            right = (outcome == "LEAK") == case.leaky and outcome in ("LEAK", "ok")
            cells.append(f"{outcome} {seconds:.2f}s" + ("" if right else " (wrong)"))
        print(" | ".join([case.name, "LEAK" if case.leaky else "ok", *cells]))
    print()
    print("over the cases each tool ran with its default options:")
    print(" | ".join(["tool", "leaks caught", "false positives", "median s/test", "total s"]))
    print(" | ".join(["---"] * 5))
    for tool in TOOLS:
        got = results[tool]
        defaults = [c for c in CASES if c.test in got and not c.marker_args]
        leaky = [c for c in defaults if c.leaky]
        clean = [c for c in defaults if not c.leaky]
        caught = sum(got.get(c.test, ("",))[0] == "LEAK" for c in leaky)
        false = sum(got.get(c.test, ("",))[0] != "ok" for c in clean)
        seconds = [got[c.test][1] for c in defaults]
        print(
            " | ".join(
                [
                    tool,
                    f"{caught}/{len(leaky)}",
                    f"{false}/{len(clean)}",
                    f"{statistics.median(seconds):.2f}",
                    f"{sum(seconds):.2f}",
                ]
            )
        )
    one = results["leaklab"].get("one_object", ("missing", float("nan")))
    print()
    print(
        f"one leaked 64-byte object per call: leaklab says {one[0]} in {one[1]:.2f}s (target: "
        "caught, under 2 s)"
    )
    print(
        f"{args.unmarked_tests} unmarked tests, best of {args.repeat}: {with_plugin:.2f}s with "
        f"the plugin, {without:.2f}s without (-p no:leaklab): ratio {with_plugin / without:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
