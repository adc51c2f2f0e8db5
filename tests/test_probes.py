"""The probes in this process: what each records, the chains they find, and that none of
them keeps a reference to what it measured."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import time
import tracemalloc
import types
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from leaklab import chain_graph, naming, probes
from leaklab.kinds import EventKind
from leaklab.naming import Classifier, blame, function_at, group_sites, source_lines
from leaklab.probes import ProbeContext, referrers, support, tracemalloc_probe
from leaklab.probes.gc_types import GcTypesProbe
from leaklab.probes.memray_probe import MemrayProbe, tracking
from leaklab.probes.pympler_probe import PymplerProbe
from leaklab.probes.retention_probe import RetentionProbe
from leaklab.probes.tracemalloc_probe import TracemallocFullProbe, TracemallocProbe

HERE = str(Path(__file__).resolve())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Recorder:
    """A ProbeContext's ``emit``: keeps the events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, **fields: Any) -> None:
        self.events.append((kind, fields))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, f in self.events if k == kind]


def context(tmp_path: Path, **options: Any) -> tuple[ProbeContext, Recorder]:
    recorder = Recorder()
    ctx = ProbeContext(
        artifacts=tmp_path,
        emit=recorder,
        options=options,
        plan={"steps": None, "duration_s": None, "scenario_path": HERE},
    )
    ctx.warmup_done = True
    return ctx, recorder


@pytest.fixture
def user_module(tmp_path):
    """A module of the user's (its file is outside the standard library and site-packages)."""
    name = f"leaklab_user_{os.getpid()}_{id(tmp_path)}"
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    sys.modules[name] = module
    yield module
    del sys.modules[name]


# -- names, counts, cadence -----------------------------------------------------------------


def test_type_names_are_module_and_qualified_name():
    class Inner:
        pass

    html = type("<script>alert(1)</script>", (), {})
    assert naming.type_name(dict) == "dict"
    assert (
        naming.type_name(Inner)
        == f"{__name__}.test_type_names_are_module_and_qualified_name.<locals>.Inner"
    )
    assert naming.type_name(html) == f"{__name__}.<script>alert(1)</script>"
    assert [
        naming.type_tier(n) for n in ("aiohttp.client.ClientSession", "asyncio.Future", "dict")
    ] == [0, 1, 2]


def test_count_types_counts_live_instances_exactly():
    class Counted:
        pass

    name = naming.type_name(Counted)
    kept = [Counted() for _ in range(123)]
    assert support.count_types()[name] == 123
    del kept
    assert support.count_types()[name] == 0


def test_cadence_fixed_in_steps_or_seconds_or_following_cost():
    by_steps = support.Cadence({"snapshot_every": {"steps": 500, "seconds": None}}, 0.02, 1.0, 60.0)
    by_steps.schedule(now=10.0, steps=1000, cost_s=5.0)
    assert not by_steps.due(11.0, 1499) and by_steps.due(11.0, 1500)
    by_time = support.Cadence(
        {"snapshot_every": {"steps": None, "seconds": 2.0}}, 0.02, 1.0, 60.0, stretch=4
    )
    by_time.schedule(now=10.0, steps=0, cost_s=5.0)
    assert by_time.next_t == 18.0
    by_cost = support.Cadence({}, 0.02, 1.0, 60.0)
    by_cost.schedule(now=10.0, steps=0, cost_s=0.1)  # 0.1 s at 2 %: every 5 s
    assert by_cost.next_t == pytest.approx(15.0)
    by_cost.schedule(now=10.0, steps=0, cost_s=0.0001)
    assert by_cost.next_t == pytest.approx(11.0)  # never more often than min_s
    by_cost.schedule(now=10.0, steps=0, cost_s=100.0)
    assert by_cost.next_t == pytest.approx(70.0)  # never less often than max_s


def test_followed_types_stay_reported_and_stale_ones_make_room():
    followed = support.Followed(top=2, limit=2, min_growth=2)
    assert followed.update({"a": 10, "b": 5, "c": 1}) == ["a", "b"]
    assert followed.update({"a": 11, "b": 5, "c": 9}) == ["a", "b"]  # full, and both still grow
    assert followed.update({"a": 11, "b": 0, "c": 9}) == ["a", "c"]  # b stopped: c takes its place


def test_resolve_orders_probes_and_names_the_known_ones():
    assert probes.resolve("rss", []) == []
    assert (
        probes.resolve("deep", [])[0] == "memray"
    )  # its tracker stops before the others' end-of-run work
    assert probes.resolve("default", ["tracemalloc-full"]) == [
        "tracemalloc",
        "tracemalloc-full",
        "gc-types",
        "retention",
    ]
    assert probes.columns_of(["tracemalloc-full", "gc-types"]) == ["traced"]
    with pytest.raises(
        KeyError, match="known probes: gc-types, memray, memray-native, pympler, retention"
    ):
        probes.resolve("default", ["objgraph"])


# -- sites --------------------------------------------------------------------------------


def test_classifier_tells_user_code_from_libraries(tmp_path):
    import json

    import aiohttp

    import leaklab.runner.child as child

    classifier = Classifier(str(tmp_path / "scenario.py"))
    kinds = [
        classifier.kind(f)
        for f in (
            HERE,
            str(tmp_path / "scenario.py"),
            json.__file__,
            aiohttp.__file__,
            child.__file__,
            "<frozen importlib._bootstrap>",
        )
    ]
    assert kinds == ["user", "user", "stdlib", "package", "leaklab", "other"]


def test_blame_prefers_the_users_frame_and_drops_leaklabs_own():
    import json

    import aiohttp

    import leaklab.runner.child as child

    classifier = Classifier()
    pkg, std, own = aiohttp.__file__, json.__file__, child.__file__
    assert blame([(own, 1), (HERE, 20), (pkg, 30), (std, 40)], classifier) == ((HERE, 20), True)
    assert blame([(own, 1), (std, 40)], classifier) is None  # the child reporting, not the scenario
    assert blame([(own, 1), (pkg, 30), (std, 40)], classifier) == (
        (std, 40),
        False,
    )  # a callback the loop ran


def outer_function() -> Any:
    def inner() -> int:
        return 1

    return inner


class Holder:
    def method(self) -> int:
        return 2


def test_function_at_names_methods_and_closures():
    assert (
        function_at(HERE, outer_function.__code__.co_firstlineno + 2)
        == "outer_function.<locals>.inner"
    )
    assert function_at(HERE, Holder.method.__code__.co_firstlineno + 1) == "Holder.method"
    assert function_at(HERE, 1) is None


Frame = namedtuple("Frame", "filename lineno")


def test_group_sites_sums_by_blamed_line_and_keeps_the_allocating_frame():
    import json

    line = outer_function.__code__.co_firstlineno
    user_then_lib = (Frame(HERE, line), Frame(json.__file__, 100))
    stats = [
        (user_then_lib, 1000, 10, 1000, 10),
        ((Frame(HERE, line),), 500, 5, 500, 5),
        ((Frame(json.__file__, 7),), 50, 1, 50, 1),
    ]
    top = group_sites(stats, Classifier(), top=5)
    assert [(s["line"], s["size"], s["count"], s["user"]) for s in top] == [
        (line, 1500, 15, True),
        (7, 50, 1, False),
    ]
    assert top[0]["alloc"].endswith("json/__init__.py:100")
    assert top[0]["kind"] == "user" and top[1]["kind"] == "stdlib"
    # Functions and source lines are read once, after the steps (reading sources fills linecache).
    assert "function" not in top[0] and top[0]["traceback"] == [
        {"file": HERE, "line": line},
        {"file": json.__file__, "line": 100},
    ]
    lines = source_lines([(HERE, line)])
    assert lines == {f"{HERE}:{line}": ["outer_function", "def outer_function() -> Any:"]}


# -- chains -------------------------------------------------------------------------------


def find(roots_state: Any, name: str) -> dict[str, Any]:
    classifier = Classifier()
    instances = referrers.sample_instances(name, 3)
    chain = referrers.forward_chain(
        referrers.user_roots(roots_state, classifier), instances, 1e18, 10
    )
    instances.clear()
    assert chain is not None
    described = referrers.describe(chain, roots_state, classifier)
    chain.clear()
    return described


def test_forward_chain_names_the_global_and_the_key(user_module):
    class Thing:
        pass

    user_module._REGISTRY = {"first": Thing()}
    found = find(None, naming.type_name(Thing))
    assert found["text"] == f"{user_module.__name__}._REGISTRY -> dict -> Thing"
    assert found["root_kind"] == "module" and found["user_root"]
    assert [h["via"] for h in found["hops"]] == [None, None, "['first']"]


def test_chains_through_attributes_slots_class_attributes_and_state(user_module):
    class Thing:
        pass

    class Slotted:
        __slots__ = ("item",)

    class Owner:
        pass

    Registry = type("Registry", (), {"members": [Thing()], "__module__": user_module.__name__})
    user_module.Registry = Registry
    found = find(None, naming.type_name(Thing))
    assert found["text"] == f"{user_module.__name__}.Registry.members -> list -> Thing"
    assert found["root_kind"] == "class"

    class Other:
        pass

    owner, slotted = Owner(), Slotted()
    slotted.item = Other()
    owner.child = slotted
    user_module._OWNER = owner
    del owner, slotted
    found = find(None, naming.type_name(Other))
    assert found["text"] == f"{user_module.__name__}._OWNER -> Owner -> Slotted -> Other"
    assert [h["via"] for h in found["hops"]][2:] == [".child", ".item"]

    class Kept:
        pass

    state = {"cache": [Kept()]}
    found = find(state, naming.type_name(Kept))
    assert (found["text"], found["root_kind"]) == ("state['cache'] -> list -> Kept", "state")


def test_a_key_whose_repr_raises_and_a_type_named_with_markup(user_module):
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    scripted = type("<script>alert(1)</script>", (), {})
    user_module._BY_KEY = {Unprintable(): scripted()}
    found = find(None, naming.type_name(scripted))
    assert found["text"] == f"{user_module.__name__}._BY_KEY -> dict -> <script>alert(1)</script>"
    assert (
        found["hops"][-1]["via"].startswith("[<")
        and "repr raised RuntimeError" in found["hops"][-1]["via"]
    )


def test_backward_search_finds_a_librarys_global_when_no_user_root_holds_it(tmp_path):
    class Pooled:
        pass

    library = types.ModuleType("leaklab_test_library")  # no __file__: not the user's
    library._POOL = [Pooled() for _ in range(20)]
    sys.modules[library.__name__] = library
    try:
        ctx, _ = context(tmp_path)
        result = RetentionProbe()._search_type(
            ctx, naming.type_name(Pooled), Classifier(), budget=5.0
        )
    finally:
        del sys.modules[library.__name__]
    assert result["found"] and result["search"] == "backward" and not result["user_root"]
    assert result["text"] == "leaklab_test_library._POOL -> list -> Pooled"


def test_retention_probe_records_chains_and_keeps_no_reference(tmp_path, user_module):
    class Leaked:
        pass

    ctx, recorder = context(tmp_path)
    probe = RetentionProbe()
    probe.start(ctx)
    user_module._KEPT = {}
    for i in range(200):
        user_module._KEPT[i] = Leaked()
    sample = user_module._KEPT[100]
    before = sys.getrefcount(sample)
    probe.finish(ctx)
    gc.collect()
    assert sys.getrefcount(sample) == before
    assert [type(r) for r in gc.get_referrers(sample)] == [dict]
    (event,) = [
        e
        for e in recorder.of(EventKind.RETENTION_CHAIN)
        if e["object_type"] == naming.type_name(Leaked)
    ]
    assert (
        event["text"] == f"{user_module.__name__}._KEPT -> dict -> Leaked"
        and event["growth"] == 200
    )
    assert (tmp_path / event["dot"].removeprefix("artifacts/")).is_file()
    if shutil.which("dot"):
        assert (tmp_path / event["png"].removeprefix("artifacts/")).read_bytes()[:8] == PNG_MAGIC


def test_retention_probe_searches_on_sigusr1(tmp_path, user_module):
    class Asked:
        pass

    ctx, recorder = context(tmp_path)
    probe = RetentionProbe()
    probe.start(ctx)
    try:
        user_module._ASKED = [Asked() for _ in range(50)]
        os.kill(os.getpid(), signal.SIGUSR1)
        probe.tick(ctx)
        events = [
            e
            for e in recorder.of(EventKind.RETENTION_CHAIN)
            if e["object_type"] == naming.type_name(Asked)
        ]
        assert [(e["reason"], e["text"]) for e in events] == [
            ("signal", f"{user_module.__name__}._ASKED -> list -> Asked")
        ]
    finally:
        probe.finish(ctx)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_dot_labels_are_escaped_and_drawn(tmp_path):
    chain = {
        "root_kind": "module",
        "hops": [
            {"label": 'mod._X"quoted"\\back', "via": None},
            {"label": "<script>alert(1)</script>", "via": "['a\"b']"},
        ],
    }
    text = chain_graph.to_dot(chain)
    assert 'label="mod._X\\"quoted\\"\\\\back\\n(module)"' in text
    assert 'label="<script>alert(1)</script>"' in text and 'label="[\'a\\"b\']"' in text
    png = chain_graph.render_png(chain, tmp_path / "chain.dot")
    if shutil.which("dot"):
        assert png is not None and png.read_bytes()[:8] == PNG_MAGIC
    else:
        assert png is None


# -- snapshotting probes ------------------------------------------------------------------


def line_marked(marker: str) -> int:
    """The line of this file that carries ``marker`` in a comment."""
    lines = Path(HERE).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


class LeakedBlock:
    def __init__(self, n: int) -> None:
        self.n = n


@pytest.mark.skipif(tracemalloc.is_tracing(), reason="tracemalloc is already on in this process")
def test_tracemalloc_windows_find_the_leaking_line(tmp_path):
    ctx, recorder = context(tmp_path, snapshot_every={"steps": 400, "seconds": None})
    probe = TracemallocProbe()
    kept: list[LeakedBlock] = []
    leak_line = line_marked("<- leak_line")
    probe.start(ctx)
    for i in range(4000):
        kept.append(LeakedBlock(i))  # <- leak_line
        ctx.steps = i + 1
        if i % 5 == 0:
            probe.tick(ctx)
    probe.finish(ctx)
    assert not tracemalloc.is_tracing()
    windows = recorder.of("tracemalloc_snapshot")
    assert len(windows) >= 5 and sorted({w["steps"] // 50 for w in windows[:3]}) == [1, 2, 4]
    for window in windows:
        top = window["sites"][0]
        assert (top["file"], top["line"]) == (HERE, leak_line)
        assert top["count"] >= window["steps"]  # the instance, at least, per step
    assert probe.overhead()["snapshots"] == len(windows)
    (lines,) = recorder.of("source_lines")
    assert lines["lines"][f"{HERE}:{leak_line}"] == [
        "test_tracemalloc_windows_find_the_leaking_line",
        "kept.append(LeakedBlock(i))  # <- leak_line",
    ]


@pytest.mark.skipif(tracemalloc.is_tracing(), reason="tracemalloc is already on in this process")
def test_tracemalloc_windows_collect_only_after_the_warmup(tmp_path):
    """A window closed in the warm-up leaves the full collection (which empties the free lists its
    snapshot filled) to the one at the warm-up's end; a window after it collects at once."""
    ctx, _recorder = context(tmp_path, snapshot_every={"steps": 300, "seconds": None})
    ctx.warmup_done = False
    probe = TracemallocProbe()
    kept: list[LeakedBlock] = []
    collections: list[bool] = []  # ctx.warmup_done at each full collection

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            collections.append(ctx.warmup_done)

    threshold = gc.get_threshold()
    gc.set_threshold(10**7)  # no collection of the interpreter's own in between
    gc.callbacks.append(on_gc)
    try:
        probe.start(ctx)
        for i in range(3000):
            kept.append(LeakedBlock(i))
            ctx.steps = i + 1
            if ctx.steps == 1500:
                ctx.warmup_done = True
                probe.warmup_end(ctx)
            probe.tick(ctx)
        probe.finish(ctx)
    finally:
        gc.callbacks.remove(on_gc)
        gc.set_threshold(*threshold)
    assert probe.primed >= 2 and probe.count >= 2  # windows on both sides of the warm-up's end
    assert collections and all(collections)


@pytest.mark.skipif(tracemalloc.is_tracing(), reason="tracemalloc is already on in this process")
def test_where_stopping_tracing_leaks_the_next_window_waits_for_ten_times_the_warmup(
    tmp_path, monkeypatch
):
    """Where tracemalloc.stop() leaks, the three reported windows run in the warm-up; the next
    waits until the run is LEAKY_GROWTH times as old as at the warm-up's end (so none in a run
    whose warm-up is its tenth), however early in the warm-up the three closed."""
    monkeypatch.setattr(tracemalloc_probe, "STOP_LEAKS", True)
    ctx, recorder = context(tmp_path)
    ctx.warmup_done = False
    ctx.plan["warmup"] = {"steps": 1000}
    probe = TracemallocProbe()
    kept: list[LeakedBlock] = []
    probe.start(ctx)
    assert probe.leaky and probe.name in ctx.warmup_holds  # until its windows have run
    for i in range(1000):
        kept.append(LeakedBlock(i))
        time.sleep(0.0002)  # steps that take time: the pause after a window is as long as it
        ctx.steps = i + 1
        probe.tick(ctx)
    assert probe.count == len(probe.LENGTHS) and probe.window is None
    assert not ctx.warmup_holds
    ctx.warmup_done = True
    warmup_end = time.monotonic()
    probe.warmup_end(ctx)
    assert probe.cadence is not None and probe.cadence.next_t is not None
    assert probe.cadence.next_t >= probe.started + probe.LEAKY_GROWTH * (warmup_end - probe.started)
    probe.finish(ctx)
    assert len(recorder.of("tracemalloc_snapshot")) == len(probe.LENGTHS)


@pytest.mark.skipif(tracemalloc.is_tracing(), reason="tracemalloc is already on in this process")
def test_tracemalloc_full_compares_with_the_baseline(tmp_path):
    ctx, recorder = context(tmp_path, snapshot_every={"steps": 1000, "seconds": None})
    probe = TracemallocFullProbe()
    kept: list[LeakedBlock] = []
    probe.start(ctx)
    traced = []
    for i in range(3000):
        kept.append(LeakedBlock(i))
        ctx.steps = i + 1
        if i % 100 == 0:
            traced.append(probe.sample(ctx)["traced"])
            probe.tick(ctx)
    probe.finish(ctx)
    assert not tracemalloc.is_tracing()
    snapshots = recorder.of("tracemalloc_snapshot")
    assert [s["mode"] for s in snapshots] == ["continuous"] * len(snapshots) and len(snapshots) >= 3
    growth = [s["sites"][0]["count"] for s in snapshots]
    assert growth == sorted(growth) and growth[-1] >= 3000
    assert traced[-1] > traced[0] + 3000 * 48


def test_gc_types_reports_the_growing_type(tmp_path):
    class Grows:
        pass

    ctx, recorder = context(tmp_path, snapshot_every={"steps": 100, "seconds": None})
    probe = GcTypesProbe()
    probe.start(ctx)
    kept = []
    for i in range(500):
        kept.append(Grows())
        ctx.steps = i + 1
        probe.tick(ctx)
    probe.finish(ctx)
    name = naming.type_name(Grows)
    snapshots = [e for e in recorder.of("gc_types") if not e["baseline"]]
    assert len(snapshots) == 6  # every 100 steps, and the final one
    assert [s["types"][name] - s["base"][name] for s in snapshots] == [100, 200, 300, 400, 500, 500]


def test_a_failed_pympler_summary_is_recorded_and_the_probe_goes_on(tmp_path):
    class Unsizable:
        def __sizeof__(self) -> int:
            raise RuntimeError("size refused")

    ctx, recorder = context(tmp_path, snapshot_every={"steps": 10, "seconds": None})
    probe = PymplerProbe()
    hostile = [Unsizable()]
    probe.start(ctx)  # the baseline fails
    ctx.steps = 40
    probe.tick(ctx)  # so does the next snapshot
    hostile.clear()
    ctx.steps = 80
    probe.tick(ctx)  # and this one works
    errors = recorder.of(EventKind.SNAPSHOT_ERROR)
    assert [e["what"] for e in errors] == ["baseline summary", "summary"]
    assert all("size refused" in e["error"] for e in errors)
    assert [e["snapshot"] for e in recorder.of("pympler_summary")] == [0, 1]


def test_pympler_baseline_is_left_out_where_it_would_cost_more_than_its_share(tmp_path):
    """Without --snapshot-every the baseline is taken only when its expected cost (a summary of a
    sample of the heap, timed and scaled to the heap) fits 5 % of the run."""
    short, recorder = context(tmp_path)
    short.plan["duration_s"] = 1e-6  # no summary of a real heap fits in 5 % of this
    probe = PymplerProbe()
    probe.start(short)
    probe.tick(short)
    probe.finish(short)
    (skipped,) = recorder.of("pympler_skipped")
    assert skipped["objects"] > 1_000 and skipped["expected_s"] > 0.05 * 1e-6
    assert recorder.of("pympler_summary") == []

    long, recorder = context(tmp_path)
    long.plan["duration_s"] = 1e6
    probe = PymplerProbe()
    probe.start(long)
    probe.finish(long)
    assert recorder.of("pympler_skipped") == []
    assert [e["snapshot"] for e in recorder.of("pympler_summary")] == [0, 1]


def _allocating_step() -> int:
    return len([{"i": i} for i in range(200)])


def _drive_memray(ctx: ProbeContext, probe: MemrayProbe, timed: bool = False) -> None:
    """Steps and ticks until the tracker has ended (at most 3 s after the plan's start), the
    tracker started between two steps as the step loop starts it (and timed as it times it)."""
    end = ctx.plan["started"] + 3.0  # bounded: the plan's second and time for the traced steps
    while time.monotonic() < end and not probe.ended:
        if ctx.loop_call is not None:
            call, ctx.loop_call = ctx.loop_call, None
            began = time.perf_counter()
            call()  # the tracker starts in the loop's own frame, as in the step loop
            if timed:
                ctx.loop_call_s = time.perf_counter() - began
        _allocating_step()
        ctx.steps += 1
        probe.tick(ctx)


def test_memray_tracks_the_end_of_the_run_and_stops_once_its_slowed_steps_cost_the_budget(tmp_path):
    """The tracker starts near the planned end and stops, before the last step, once the steps
    it slowed down have lost ``BUDGET`` of the planned run against the untraced rate."""
    ctx, recorder = context(tmp_path)
    probe = MemrayProbe()
    probe.start(ctx)
    ctx.plan.update(duration_s=1.0, started=time.monotonic())
    _drive_memray(ctx, probe)
    assert probe.ended and probe.stopped_early and not tracking()
    (started,) = recorder.of("memray_started")
    # Due within the last TAIL_FRACTION of the plan (a step or a tick late at most on a busy
    # machine).
    assert probe.track_t - ctx.plan["started"] >= (1 - probe.TAIL_FRACTION) * 1.0 - 0.05
    assert 0 < started["steps"] < ctx.steps
    assert probe.slowdown_s >= probe.BUDGET * 1.0
    assert (tmp_path / "memray" / "capture.bin").stat().st_size > 0


def test_memrays_budget_is_a_share_of_the_stretch_after_the_warmup(tmp_path):
    """A warm-up that took half the planned run leaves half the budget (the share is of the stretch
    the analysis reads); the tracker's start counts against it, and so does its stop."""
    ctx, _recorder = context(tmp_path)
    ctx.warmup_done = False
    probe = MemrayProbe()
    probe.start(ctx)
    ctx.plan.update(duration_s=1.0, started=time.monotonic() - 0.5)
    ctx.warmup_done = True
    probe.warmup_end(ctx)
    _drive_memray(ctx, probe, timed=True)
    assert probe.ended and probe.stopped_early and not tracking()
    assert probe.budget_s == pytest.approx(probe.BUDGET * 0.5, rel=0.01)
    assert ctx.loop_call_s is not None and ctx.loop_call_s > 0
    # What it lost, its start and stop included, reached the budget once the start was counted.
    assert probe.slowdown_s + ctx.loop_call_s >= probe.budget_s
