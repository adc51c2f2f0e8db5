"""Attribution over recorded events: each rule on a run built to exercise it.

The runs are plain data (what the probes write): type counts every 1,000 steps,
tracemalloc windows of 50, 100 and 200 steps, and an ``allocated_blocks`` column
with a chosen slope and a +-40 block wobble (the size of the GC sawtooth in the
fixed variants recorded for this module: 10-40 blocks).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from leaklab import store
from leaklab.analysis import analyze
from leaklab.analysis import attribution as attr

STEPS_PER_S = 1000.0


def make_run(
    events: list[dict[str, Any]],
    blocks_per_step: float = 0.0,
    steps: int = 20_000,
    rows: int = 60,
    tmp: Path | None = None,
) -> store.RunData:
    t = [i * steps / STEPS_PER_S / (rows - 1) for i in range(rows)]
    done = [i * steps / (rows - 1) for i in range(rows)]
    blocks = [200_000 + blocks_per_step * s + (40 if i % 2 else -40) for i, s in enumerate(done)]
    columns = {
        "t": t,
        "steps": done,
        "allocated_blocks": blocks,
        "rss": [50e6 + 100 * s for s in done],
        "generation": [0.0] * rows,
    }
    meta = {
        "status": "completed",
        "config": {"interval_s": t[1], "warmup": {"steps": 0}},
        "warmup_end": {"t": 0.0, "steps": 0},
        "scenario": "synthetic",
        "variant": "x",
    }
    return store.RunData(path=tmp or Path("synthetic"), meta=meta, columns=columns, events=events)


def gc_events(series: dict[str, list[int]], every: int = 1000) -> list[dict[str, Any]]:
    """A gc_types baseline and one snapshot per later value of each series."""
    n = len(next(iter(series.values())))
    events = [
        {
            "kind": "gc_types",
            "snapshot": 0,
            "baseline": True,
            "steps": 0,
            "types": {k: v[0] for k, v in series.items()},
            "base": {k: v[0] for k, v in series.items()},
        }
    ]
    for i in range(1, n):
        events.append(
            {
                "kind": "gc_types",
                "snapshot": i,
                "baseline": False,
                "steps": i * every,
                "types": {k: v[i] for k, v in series.items()},
                "base": {k: v[0] for k, v in series.items()},
            }
        )
    return events


def site(name: str, line: int, size: int, count: int, kind: str = "user") -> dict[str, Any]:
    return {
        "site": f"{name}:{line}",
        "file": f"/src/{name}",
        "line": line,
        "function": "step",
        "code": "x = y",
        "user": kind == "user",
        "kind": kind,
        "size": size,
        "count": count,
        "alloc": f"{name}:{line}",
        "traceback": [],
    }


def windows(
    per_window: list[list[dict[str, Any]]], lengths: tuple[int, ...] = (50, 100, 200)
) -> list[dict[str, Any]]:
    return [
        {
            "kind": "tracemalloc_snapshot",
            "mode": "window",
            "snapshot": i + 1,
            "steps": lengths[i % len(lengths)],
            "sites": sites,
        }
        for i, sites in enumerate(per_window)
    ]


def leak_and_in_flight(n: int = 6) -> list[dict[str, Any]]:
    """A leak of 2 blocks (96 B) per step, and 20 blocks in flight whatever the window's length."""
    lengths = (50, 100, 200)
    return windows(
        [
            [
                site("app.py", 10, 48 * 2 * lengths[i % 3], 2 * lengths[i % 3]),
                site("app.py", 20, 20 * 64, 20),
            ]
            for i in range(n)
        ]
    )


def test_steady_growth_is_a_leak_with_rates_per_step_and_per_hour():
    run = make_run(
        gc_events({"app.Session": [100 + 1000 * i for i in range(8)], "dict": [5000] * 8}),
        blocks_per_step=3.0,
    )
    ranked = {t["type"]: t for t in attr.rank_types(run, STEPS_PER_S)}
    session = ranked["app.Session"]
    assert session["leaking"] and not ranked["dict"]["leaking"]
    assert session["per_step"] == pytest.approx(1.0)
    assert session["per_hour"] == pytest.approx(3600 * STEPS_PER_S)
    assert (session["start"], session["end"], session["snapshots"]) == (100, 7100, 7)


def test_a_restarted_process_does_not_break_the_series():
    """A recycled run: the counts of a later generation start from zero (a fresh process,
    without a baseline); only the baseline's own process makes the series."""
    events = gc_events(
        {
            "app.Session": [100 + 1000 * i for i in range(8)],
            "tuple": [500 + 2000 * i for i in range(8)],
        }
    )
    for e in events:
        e["generation"] = 0
    events.append(
        {
            "kind": "gc_types",
            "snapshot": 1,
            "baseline": False,
            "steps": 0,
            "generation": 1,
            "types": {"app.Session": 0, "tuple": 30},
            "base": {"app.Session": 100, "tuple": 500},
        }
    )
    ranked = {
        t["type"]: t for t in attr.rank_types(make_run(events, blocks_per_step=3.0), STEPS_PER_S)
    }
    assert ranked["tuple"]["leaking"] and ranked["tuple"]["per_step"] == pytest.approx(2.0)
    assert ranked["app.Session"]["snapshots"] == 7


def test_a_one_off_spike_and_a_wobble_are_not_leaks():
    spike = [100, 100, 5100, 5100, 5100, 5100, 5100, 5100]  # one jump, then flat
    wobble = [100, 160, 90, 170, 80, 180, 120, 150]
    run = make_run(gc_events({"app.Spike": spike, "app.Wobble": wobble}))
    ranked = {t["type"]: t for t in attr.rank_types(run, STEPS_PER_S)}
    assert not ranked["app.Spike"]["leaking"], ranked["app.Spike"]
    assert not ranked["app.Wobble"]["leaking"], ranked["app.Wobble"]


def test_a_slow_steady_type_leaks_only_when_the_run_retains_blocks():
    """1 object per 100 steps, steadily: cancelled timers piling up until the event loop
    prunes them look like this in a short fixed run (0.014/step recorded, with blocks
    swelling 0.05-0.14/step while tracing windows slow the steps); the same rise with
    blocks growing 0.5/step is a slow leak of big objects."""
    slow = {"asyncio.events.TimerHandle": [5 + 10 * i for i in range(8)]}
    flat, growing = make_run(gc_events(slow)), make_run(gc_events(slow), blocks_per_step=0.5)
    swelling = make_run(
        gc_events(slow), blocks_per_step=0.1
    )  # what tracing windows cause: judged a LEAK, too little
    assert attr.attribute(flat).top_types == [] and attr.attribute(swelling).top_types == []
    assert [t["type"] for t in attr.attribute(growing).top_types] == ["asyncio.events.TimerHandle"]


def test_the_most_specific_leaking_type_comes_first():
    run = make_run(
        gc_events(
            {
                "dict": [1000 + 3000 * i for i in range(6)],
                "collections.deque": [10 + 2000 * i for i in range(6)],
                "app.Session": [1 + 1000 * i for i in range(6)],
            }
        ),
        blocks_per_step=6,
    )
    assert [t["type"] for t in attr.attribute(run).top_types] == [
        "app.Session",
        "collections.deque",
        "dict",
    ]


def test_window_sites_split_the_leak_from_what_was_in_flight():
    run = make_run(leak_and_in_flight(), blocks_per_step=2.0)
    ranked = {
        s["line"]: s
        for s in attr.rank_sites(run, STEPS_PER_S, attr.blocks_growth(run), retains=True)
    }
    leak, in_flight = ranked[10], ranked[20]
    assert leak["leaking"] and leak["count_per_step"] == pytest.approx(2.0)
    assert leak["bytes_per_step"] == pytest.approx(96.0) and leak[
        "bytes_per_hour"
    ] == pytest.approx(96 * 3600 * STEPS_PER_S)
    assert not in_flight["leaking"] and abs(in_flight["count_per_step"]) < 1e-9


def test_no_site_leaks_in_a_run_that_does_not_retain():
    """Churn (a pool replacing connections) looks like a leak inside every window; a run whose
    blocks stay flat and whose types do not grow has none."""
    run = make_run(leak_and_in_flight(), blocks_per_step=0.0)
    found = attr.attribute(run)
    assert found.top_sites == [] and found.top_types == []
    assert all(
        not s["leaking"]
        for s in attr.rank_sites(run, STEPS_PER_S, attr.blocks_growth(run), retains=False)
    )


def test_a_site_faster_than_the_whole_run_grows_is_not_a_leak():
    """2 blocks/step at the site against 0.2 blocks/step for the whole process: not explained."""
    run = make_run(leak_and_in_flight(), blocks_per_step=0.2)
    blocks = attr.blocks_growth(run)
    assert blocks.ci95_per_step[0] > 0.1
    ranked = {s["line"]: s for s in attr.rank_sites(run, STEPS_PER_S, blocks, retains=True)}
    assert not ranked[10]["leaking"]


def test_a_site_missing_from_windows_is_not_steady():
    sporadic = windows([[site("app.py", 30, 4800, 100)] if i in (0, 3) else [] for i in range(6)])
    run = make_run(sporadic + leak_and_in_flight(), blocks_per_step=2.0)
    ranked = {
        s["line"]: s
        for s in attr.rank_sites(run, STEPS_PER_S, attr.blocks_growth(run), retains=True)
    }
    assert ranked[30]["present"] == 2 and not ranked[30]["leaking"]


def test_user_sites_come_before_package_and_standard_library_sites():
    lengths = (50, 100, 200)
    events = windows(
        [
            [
                site("threading.py", 265, 300 * n, 6 * n, kind="stdlib"),
                site("urllib3/pool.py", 281, 100 * n, 2 * n, kind="package"),
                site("app.py", 12, 10 * n, n),
            ]
            for n in (lengths[i % 3] for i in range(6))
        ]
    )
    run = make_run(events, blocks_per_step=9.0)
    assert [s["kind"] for s in attr.attribute(run).top_sites] == ["user", "package", "stdlib"]


def test_continuous_snapshots_judge_each_site_as_a_series():
    events = []
    for i in range(1, 7):
        events.append(
            {
                "kind": "tracemalloc_snapshot",
                "mode": "continuous",
                "snapshot": i,
                "steps": 1000 * i,
                "sites": [site("app.py", 40, 64_000 * i, 1000 * i), site("app.py", 41, 640, 10)],
            }
        )
    run = make_run(events, blocks_per_step=1.0)
    ranked = {s["line"]: s for s in attr.rank_sites(run, STEPS_PER_S)}
    assert ranked[40]["leaking"] and ranked[40]["bytes_per_step"] == pytest.approx(64.0)
    assert not ranked[41]["leaking"]


def chain_event(name: str, text: str) -> dict[str, Any]:
    root = text.split(" -> ")[0]
    return {
        "kind": "retention_chain",
        "object_type": name,
        "found": True,
        "text": text,
        "root": root,
        "root_kind": "module",
        "hops": [{"label": h, "type": h, "via": None} for h in text.split(" -> ")],
        "depth": text.count(" -> "),
        "search": "forward",
        "png": None,
        "dot": None,
        "reason": "end",
    }


def test_chains_are_kept_for_leaking_types_only():
    events = gc_events({"app.Session": [10 + 500 * i for i in range(6)], "app.Cache": [50] * 6})
    events += [
        chain_event("app.Session", "app._SESSIONS -> dict -> Session"),
        chain_event("app.Cache", "app._CACHE -> dict -> Cache"),
    ]
    found = attr.attribute(make_run(events, blocks_per_step=1.0))
    assert [(c["type"], c["text"]) for c in found.chains] == [
        ("app.Session", "app._SESSIONS -> dict -> Session")
    ]


def test_a_run_without_probes_says_how_to_get_them():
    found = attr.attribute(make_run([], blocks_per_step=1.0))
    assert found.top_types == [] and found.top_sites == [] and found.chains == []
    assert any("--profile default" in note for note in found.notes)


def test_snapshot_errors_are_noted():
    events = [
        {
            "kind": "snapshot_error",
            "probe": "pympler",
            "what": "summary",
            "error": "RuntimeError: size refused",
        }
    ]
    assert any("size refused" in note for note in attr.attribute(make_run(events)).notes)


def test_analyze_fills_top_types_sites_and_chains(tmp_path):
    events = gc_events({"app.Session": [10 + 500 * i for i in range(6)]}) + leak_and_in_flight()
    events.append(chain_event("app.Session", "app._SESSIONS -> dict -> Session"))
    with store.RunWriter(tmp_path, make_run([]).meta, list(make_run([]).columns)) as writer:
        run = make_run(events, blocks_per_step=2.0)
        for i in range(len(run.columns["t"])):
            writer.sample({k: v[i] for k, v in run.columns.items()})
        for event in events:
            writer.event(event["kind"], None, **{k: v for k, v in event.items() if k != "kind"})
    data = analyze(tmp_path).to_dict()
    assert [t["type"] for t in data["top_types"]] == ["app.Session"]
    assert [s["site"] for s in data["top_sites"]] == ["app.py:10"]
    assert [c["text"] for c in data["chains"]] == ["app._SESSIONS -> dict -> Session"]
    assert all(math.isfinite(s["bytes_per_hour"]) for s in data["top_sites"])


def test_summary_lines_show_the_top_few():
    found = attr.attribute(
        make_run(
            gc_events({"app.Session": [10 + 500 * i for i in range(6)]})
            + leak_and_in_flight()
            + [chain_event("app.Session", "app._S -> dict -> Session")],
            blocks_per_step=2.0,
        )
    )
    text = "\n".join(attr.summary_lines(found.top_types, found.top_sites, found.chains))
    assert "grows     app.Session  +0.5/step" in text
    assert "where     app.py:10 in step  +96 B/step" in text
    assert "held by   app._S -> dict -> Session" in text
