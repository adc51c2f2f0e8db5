"""Attribution: which types and allocation sites grow, how fast, and who holds them.

Pure functions over a run's events (see ``docs/run-format.md``, "Profiler
events"). Growth is ranked per step and per hour, and steady growth is preferred
over one-off spikes:

* **types** (``gc_types``, ``pympler_summary``): each type's count over the
  snapshots is a series from the post-warm-up baseline. A type *leaks* when its
  count rose between most consecutive snapshots (``MIN_UP_FRACTION``), a line
  explains the series (``MIN_R2``), it grew by at least ``MIN_OBJECTS``, and either
  it grows by ``MIN_TYPE_PER_STEP`` or more or the run clearly retains blocks
  (``MIN_RETAINED_BLOCKS_PER_STEP``).
  A spike rises once and stays or falls: it fails the first two tests.
* **sites** (``tracemalloc_snapshot``): in window mode each window says what it
  allocated and still held at its end. Windows come in different lengths, so a
  line through (window steps, blocks held) splits each site's survivors into a
  per-step part (the leak) and a constant part (what was in flight). A site leaks
  when it held ``MIN_WINDOW_COUNT`` or more blocks in all windows but one in four
  (``MISSES_ALLOWED``), most of that grows with the window (``MIN_SCALING``), the run
  as a whole retains Python objects (some type leaks, or it clearly retains blocks),
  and the site's rate fits within the blocks' growth. The last two tests keep a bounded cache or a
  pool that churns inside each window from being called a leak in a run that does not
  grow. In
  continuous mode (``tracemalloc-full``) each site's growth since the baseline is a
  series, judged like a type's.
* **chains** (``retention_chain``): the recorded chain of each leaking type.

``attribute(run)`` returns plain dicts (JSON-ready); ``rank_types`` and
``rank_sites`` return every candidate with its ``leaking`` verdict, for a reader
who wants to see what was ruled out and why.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leaklab import kinds, store, units
from leaklab.analysis import growth as growth_mod
from leaklab.analysis import retention as retention_mod
from leaklab.analysis import verdict as verdict_mod
from leaklab.analysis import window as window_mod
from leaklab.naming import type_tier

#: Share of consecutive snapshots across which a leaking type's count must rise.
MIN_UP_FRACTION = 0.6
#: Share of a series' variance a straight line must explain.
MIN_R2 = 0.6
#: Growth below this many objects since the baseline is not called a leak.
MIN_OBJECTS = 10
#: Objects per step below which a steady type is a leak only if the run clearly retains blocks
#: (below): in a short run a bounded structure still filling (cancelled timers waiting in the
#: event loop's heap) rises steadily, slowly.
MIN_TYPE_PER_STEP = 0.05
#: The run clearly retains Python objects when the analysis judges ``allocated_blocks`` a LEAK
#: and the lower end of its 95 % interval is at least this many blocks per step. Tracing windows
#: slow the steps down, and timing-bound structures (timeouts, pools) swell a little meanwhile,
#: so a fixed variant may show a small positive rate (docs/analysis.md gives the figures measured).
MIN_RETAINED_BLOCKS_PER_STEP = 0.25
#: Snapshots after the baseline needed before steady growth can be told from a spike.
MIN_SNAPSHOTS = 2
#: Blocks a site must hold at the end of a window to count as present in it.
MIN_WINDOW_COUNT = 3
#: Windows a leaking site may be missing from: one in four (none of three).
MISSES_ALLOWED = 0.25
#: Share of a site's window survivors that must grow with the window's length (the rest was in
#: flight).
MIN_SCALING = 0.7
#: A site's blocks per step may exceed the run's block growth by this factor (tracemalloc
#: also sees raw-domain blocks that ``allocated_blocks`` does not count).
SITE_TO_BLOCKS = 3.0
#: Floor for that comparison, in blocks per step (noise in a slowly growing run).
SITE_BLOCKS_FLOOR = 0.05
#: Order of leaking sites by where their blamed frame is (``kind`` as the probe recorded it).
SITE_KINDS = {"user": 0, "package": 1, "stdlib": 2, "other": 3}


@dataclass
class Attribution:
    """Growing types, growing sites and retention chains, most important first."""

    top_types: list[dict[str, Any]] = field(default_factory=list)
    top_sites: list[dict[str, Any]] = field(default_factory=list)
    chains: list[dict[str, Any]] = field(default_factory=list)
    memray: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "top_types": self.top_types,
            "top_sites": self.top_sites,
            "chains": self.chains,
            "memray": self.memray,
            "notes": self.notes,
        }


@dataclass
class Trend:
    """How one series grows: Theil-Sen slope per step, share of rises, fit of a line."""

    slope: float
    up_fraction: float
    r2: float
    total: float
    first: float
    last: float
    points: int

    def steady(self, min_total: float) -> bool:
        return (
            self.points >= MIN_SNAPSHOTS + 1
            and self.slope > 0
            and self.total >= min_total
            and self.up_fraction >= MIN_UP_FRACTION
            and self.r2 >= MIN_R2
        )


def trend(x: list[float], y: list[float]) -> Trend:
    """Trend of ``y`` over ``x`` (steps), points in order; the first point is the baseline."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(xs)
    if n < 2:
        value = float(ys[0]) if n else math.nan
        return Trend(math.nan, 0.0, 0.0, 0.0, value, value, n)
    i, j = growth_mod.pair_indices(np.zeros(n), xs)
    slope = float(growth_mod.theil_sen(xs, ys, i, j)) if len(i) else math.nan
    rises = np.diff(ys)
    up = float(np.mean(rises > 0))
    flat = np.ptp(ys) == 0 or np.ptp(xs) == 0
    r2 = 0.0 if flat else float(np.corrcoef(xs, ys)[0, 1] ** 2)
    return Trend(slope, up, r2, float(ys[-1] - ys[0]), float(ys[0]), float(ys[-1]), n)


def _per_hour(per_step: float, steps_per_s: float) -> float | None:
    value = per_step * steps_per_s * 3600
    return _num(value)


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _series(
    events: list[dict[str, Any]], value: Any
) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """Per type: ``[(steps, value)]`` from the baseline on, and the number of snapshots after it."""
    baseline = next((e for e in events if e.get("baseline")), None)
    if baseline is None:
        return {}, 0
    # Counts from one process only: a recycled run's later generations start from zero
    # and have no baseline of their own (only generation 0 has a warm-up).
    generation = baseline.get("generation")
    later = [e for e in events if not e.get("baseline") and e.get("generation") == generation]
    if baseline is None or not later:
        return {}, 0
    base_steps = float(baseline.get("steps") or 0)
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for event in later:
        steps = float(event.get("steps") or 0)
        base = event.get("base") or {}
        for name, current in (event.get("types") or {}).items():
            if name not in series and name in base:
                series[name].append((base_steps, float(value(base[name]))))
            if series.get(name):
                series[name].append((steps, float(value(current))))
    return dict(series), len(later)


def rank_types(
    run: store.RunData, steps_per_s: float = math.nan, retains_blocks: bool = False
) -> list[dict[str, Any]]:
    """Every followed type with its growth and verdict.

    Leaking types come first, the most specific first (the program's and libraries'
    classes, then the standard library's, then builtins: a leak of sessions grows
    dicts and lists too, the session class names it), then by steady growth per step.
    """
    counts, n_gc = _series(run.events_of(kinds.EventKind.GC_TYPES), lambda v: v)
    p_counts, n_py = _series(
        run.events_of(kinds.EventKind.PYMPLER_SUMMARY), lambda v: v.get("count", 0)
    )
    p_sizes, _ = _series(run.events_of(kinds.EventKind.PYMPLER_SUMMARY), lambda v: v.get("size", 0))
    ranked: list[dict[str, Any]] = []
    for name in dict.fromkeys([*counts, *p_counts]):
        source, points = ("gc", counts[name]) if name in counts else ("pympler", p_counts[name])
        t = trend([p[0] for p in points], [p[1] for p in points])
        entry: dict[str, Any] = {
            "type": name,
            "source": source,
            "leaking": t.steady(MIN_OBJECTS) and (t.slope >= MIN_TYPE_PER_STEP or retains_blocks),
            "per_step": _num(t.slope),
            "per_hour": _per_hour(t.slope, steps_per_s),
            "start": t.first,
            "end": t.last,
            "growth": t.total,
            "snapshots": t.points - 1,
            "steady": _num(t.up_fraction, 3),
            "r2": _num(t.r2, 3),
            "bytes_per_step": None,
            "bytes_per_hour": None,
        }
        if name in p_sizes:
            sizes = p_sizes[name]
            s = trend([p[0] for p in sizes], [p[1] for p in sizes])
            entry.update(
                bytes_per_step=_num(s.slope),
                bytes_per_hour=_per_hour(s.slope, steps_per_s),
                bytes_end=s.last,
            )
        entry["score"] = _num((t.slope if math.isfinite(t.slope) else 0.0) * t.up_fraction * t.r2)
        entry["tier"] = type_tier(name)
        ranked.append(entry)
    ranked.sort(key=lambda e: (not e["leaking"], e["tier"], -(e["score"] or 0.0)))
    return ranked


def _scaling(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Per-step rate of ``values`` over windows of ``steps``, and the share of it in the values.

    A window holds ``leak x steps + in_flight``: with windows of different lengths a
    line through (steps, value) separates the two. With one length only the
    in-flight part cannot be told apart and the whole value counts as per step.
    """
    if np.ptp(steps) > 0 and len(steps) >= 2:
        slope, _ = np.polyfit(steps, values, 1)
    else:
        slope = float(np.mean(values / steps))
    mean = float(np.mean(values))
    share = float(slope * np.mean(steps) / mean) if mean > 0 else 0.0
    return float(slope), share


def _window_sites(
    events: list[dict[str, Any]], steps_per_s: float, retains: bool, blocks_hi: float
) -> list[dict[str, Any]]:
    windows = [e for e in events if int(e.get("steps") or 0) > 0]
    n = len(windows)
    if not n:
        return []
    steps = np.array([float(e["steps"]) for e in windows])
    sizes: dict[tuple[str, int], np.ndarray] = {}
    counts: dict[tuple[str, int], np.ndarray] = {}
    info: dict[tuple[str, int], dict[str, Any]] = {}
    for w, event in enumerate(windows):
        for site in event.get("sites") or []:
            key = (str(site.get("file")), int(site.get("line") or 0))
            if key not in sizes:
                sizes[key], counts[key] = np.zeros(n), np.zeros(n)
            sizes[key][w] += float(site.get("size", 0))
            counts[key][w] += float(site.get("count", 0))
            if key not in info or site.get("size", 0) > info[key].get("size", 0):
                info[key] = site
    ranked = []
    for key in sizes:
        present = int(np.sum(counts[key] >= MIN_WINDOW_COUNT))
        per_step, _ = _scaling(steps, sizes[key])
        count_per_step, share = _scaling(steps, counts[key])
        fits = math.isfinite(blocks_hi) and count_per_step <= max(
            SITE_TO_BLOCKS * blocks_hi, SITE_BLOCKS_FLOOR
        )
        leaking = (
            n >= MIN_SNAPSHOTS
            and n - present <= int(MISSES_ALLOWED * n)
            and per_step > 0
            and count_per_step > 0
            and share >= MIN_SCALING
            and retains
            and fits
        )
        ranked.append(
            _site_entry(
                info[key],
                "window",
                leaking,
                per_step,
                count_per_step,
                steps_per_s,
                snapshots=n,
                present=present,
                steady=present / n,
                scaling=share,
            )
        )
    return ranked


def _continuous_sites(events: list[dict[str, Any]], steps_per_s: float) -> list[dict[str, Any]]:
    series: dict[tuple[str, int], list[tuple[float, float, float]]] = defaultdict(list)
    info: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        steps = float(event.get("steps") or 0)
        for site in event.get("sites") or []:
            key = (str(site.get("file")), int(site.get("line") or 0))
            series[key].append((steps, float(site.get("size", 0)), float(site.get("count", 0))))
            info[key] = site
    ranked = []
    for key, points in series.items():
        points = [(0.0, 0.0, 0.0), *points]  # growth is measured from the post-warm-up baseline
        size = trend([p[0] for p in points], [p[1] for p in points])
        count = trend([p[0] for p in points], [p[2] for p in points])
        leaking = size.steady(0.0) and count.steady(MIN_OBJECTS)
        ranked.append(
            _site_entry(
                info[key],
                "continuous",
                leaking,
                size.slope,
                count.slope,
                steps_per_s,
                snapshots=size.points - 1,
                present=size.points - 1,
                steady=size.up_fraction,
                r2=size.r2,
            )
        )
    return ranked


def _site_entry(
    site: dict[str, Any],
    mode: str,
    leaking: bool,
    per_step: float,
    count_per_step: float,
    steps_per_s: float,
    **extra: Any,
) -> dict[str, Any]:
    entry = {
        key: site.get(key)
        for key in (
            "site",
            "file",
            "line",
            "function",
            "code",
            "alloc",
            "user",
            "kind",
            "traceback",
        )
    }
    entry.update(
        mode=mode,
        leaking=leaking,
        bytes_per_step=_num(per_step),
        bytes_per_hour=_per_hour(per_step, steps_per_s),
        count_per_step=_num(count_per_step),
    )
    entry.update({k: _num(v, 3) if isinstance(v, float) else v for k, v in extra.items()})
    return entry


def rank_sites(
    run: store.RunData,
    steps_per_s: float = math.nan,
    blocks: growth_mod.Growth | None = None,
    retains: bool = False,
) -> list[dict[str, Any]]:
    """Every reported allocation site with its growth and verdict: leaking ones first, sites in the
    user's own code before installed packages before the standard library (the nearest line the
    user can change or look up), then by bytes per step.

    ``retains`` says the run as a whole keeps Python objects (a type leaks, or
    ``allocated_blocks`` is judged a LEAK); without it no window site is called leaking.
    """
    events = run.events_of(kinds.EventKind.TRACEMALLOC_SNAPSHOT)
    blocks_hi = math.nan
    if blocks is not None and math.isfinite(blocks.ci95_per_step[1]):
        blocks_hi = blocks.ci95_per_step[1]
    ranked = _window_sites(
        [e for e in events if e.get("mode") == "window"], steps_per_s, retains, blocks_hi
    )
    ranked += _continuous_sites([e for e in events if e.get("mode") == "continuous"], steps_per_s)
    _add_sources(ranked, run)

    def where(e: dict[str, Any]) -> int:
        return SITE_KINDS.get(
            str(e.get("kind") or ("user" if e.get("user") else "other")), len(SITE_KINDS)
        )

    ranked.sort(key=lambda e: (not e["leaking"], where(e), -(e["bytes_per_step"] or 0.0)))
    return ranked


def _add_sources(sites: list[dict[str, Any]], run: store.RunData) -> None:
    """Functions and source lines of the sites and their tracebacks, from the ``source_lines``
    events the probe writes after the last step (it records bare file/line while steps run)."""
    lines: dict[str, Any] = {}
    for event in run.events_of(kinds.EventKind.SOURCE_LINES):
        lines.update(event.get("lines") or {})

    def fill(frame: dict[str, Any]) -> dict[str, Any]:
        known = lines.get(f"{frame.get('file')}:{frame.get('line')}")
        if isinstance(known, list) and len(known) == 2:
            frame["function"] = frame.get("function") or known[0]
            frame["code"] = frame.get("code") or known[1]
        return frame

    for entry in sites:
        fill(entry)
        entry["traceback"] = [
            fill(dict(f)) for f in entry.get("traceback") or [] if isinstance(f, dict)
        ]


def blocks_growth(run: store.RunData) -> growth_mod.Growth:
    """Growth of ``allocated_blocks`` after the warm-up (what the analysis computes for
    ``blocks``)."""
    window = window_mod.select(run.columns, run.meta)
    n = len(run.columns.get("t", []))

    def column(name: str) -> np.ndarray:
        values = run.columns.get(name)
        return (
            np.asarray(values, dtype=float)[window.mask]
            if values
            else np.full(int(window.mask.sum()), np.nan)
        )

    if not n:
        return growth_mod.empty_growth("blocks")
    return growth_mod.estimate(
        "blocks",
        column("t"),
        column("steps"),
        column("allocated_blocks"),
        np.nan_to_num(column("generation")),
    )


def attribute(
    run: store.RunData,
    blocks: growth_mod.Growth | None = None,
    blocks_leak: bool | None = None,
    top: int = 10,
) -> Attribution:
    """The ``top`` leaking types and sites of a run and the chains that hold those types.

    ``blocks`` (the run's ``allocated_blocks`` growth) and ``blocks_leak`` (whether
    the analysis judged it a LEAK) are computed here when the caller has not already.
    """
    blocks = blocks if blocks is not None else blocks_growth(run)
    if blocks_leak is None:
        interval = float(run.config.interval_s or math.nan)
        blocks_leak = (
            verdict_mod.judge(blocks, verdict_mod.Thresholds(), interval).label
            == kinds.Verdict.LEAK
        )
    steps_per_s = blocks.steps_per_s
    lower = blocks.ci95_per_step[0]
    retains_blocks = (
        bool(blocks_leak) and math.isfinite(lower) and lower >= MIN_RETAINED_BLOCKS_PER_STEP
    )
    types = rank_types(run, steps_per_s, retains_blocks)
    leaking_types = [t for t in types if t["leaking"]]
    sites = rank_sites(run, steps_per_s, blocks, retains=bool(leaking_types) or retains_blocks)
    chains_by_type = {c.get("object_type"): c for c in retention_mod.chains_of(run)}
    chains = [
        _chain_entry(chains_by_type[t["type"]])
        for t in leaking_types
        if t["type"] in chains_by_type
    ]
    notes: list[str] = []
    if not run.events_of(kinds.EventKind.GC_TYPES) and not run.events_of(
        kinds.EventKind.PYMPLER_SUMMARY
    ):
        notes.append(
            "no type counts recorded: run with --profile default (or --probe gc-types) to see "
            "what grows"
        )
    if not run.events_of(kinds.EventKind.TRACEMALLOC_SNAPSHOT):
        notes.append(
            "no tracemalloc snapshots recorded: run with --profile default (or --probe "
            "tracemalloc) to see where"
        )
    for error in run.events_of(kinds.EventKind.SNAPSHOT_ERROR)[:3]:
        notes.append(f"{error.get('probe')}: {error.get('what')} failed: {error.get('error')}")
    memray = next(iter(run.events_of(kinds.EventKind.MEMRAY_CAPTURE)[-1:]), None)
    if memray is not None:
        memray = {k: v for k, v in memray.items() if k not in ("t", "kind")}
    return Attribution(
        top_types=leaking_types[:top],
        top_sites=[s for s in sites if s["leaking"]][:top],
        chains=chains,
        memray=memray,
        notes=notes,
    )


def _chain_entry(event: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "object_type",
        "found",
        "text",
        "root",
        "root_kind",
        "user_root",
        "hops",
        "depth",
        "search",
        "instances",
        "seconds",
        "png",
        "dot",
        "timed_out",
        "reason",
        "steps",
    )
    entry = {key: event.get(key) for key in keys}
    entry["type"] = entry.pop("object_type")
    return entry


def _count_rate(value: float | None, per: str) -> str:
    """Objects per step or hour: ``+0.5/step``."""
    return units.format_count(value, signed=True) + f"/{per}" if units.finite(value) else units.NA


def _size_rate(value: float | None, per: str) -> str:
    return units.format_growth(value, "bytes", per, signed=True)


def summary_lines(
    top_types: list[dict[str, Any]],
    top_sites: list[dict[str, Any]],
    chains: list[dict[str, Any]],
    n: int = 3,
) -> list[str]:
    """The top few growing types, sites and chains as lines for the terminal summary
    (:mod:`leaklab.report.text`)."""
    lines: list[str] = []
    for i, t in enumerate(top_types[:n]):
        size = (
            f", {_size_rate(t.get('bytes_per_step'), 'step')}"
            if t.get("bytes_per_step") is not None
            else ""
        )
        lines.append(
            f"{'grows' if i == 0 else '':<10}{t['type']}  {_count_rate(t.get('per_step'), 'step')} "
            f"({_count_rate(t.get('per_hour'), 'h')}{size})"
        )
    for i, s in enumerate(top_sites[:n]):
        where = f"{s.get('site')}" + (f" in {s['function']}" if s.get("function") else "")
        lines.append(
            f"{'where' if i == 0 else '':<10}{where}  "
            f"{_size_rate(s.get('bytes_per_step'), 'step')} "
            f"({_size_rate(s.get('bytes_per_hour'), 'h')})"
        )
    for i, c in enumerate(chains[:n]):
        text = c.get("text") if c.get("found") else f"{c.get('type')}: no chain to a root found"
        lines.append(f"{'held by' if i == 0 else '':<10}{text}")
    return lines
