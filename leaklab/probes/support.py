"""What several probes share: type names and counts, snapshot cadence, failure records.

Nothing here keeps a reference to a scenario object once a function returns.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections import Counter
from typing import Any

from leaklab.kinds import EventKind
from leaklab.naming import type_name
from leaklab.probes import Probe, ProbeContext


def count_types(collect: bool = True) -> Counter[str]:
    """Live gc-tracked objects per type name.

    ``collect`` first frees unreachable cycles so the counts show what is really
    kept alive, not garbage waiting for the next collection. Counting over
    ``map(type, ...)`` runs in C, several times faster than ``objgraph.typestats``
    (the same counts, a Python loop; ``docs/profiles.md``).
    """
    if collect:
        gc.collect()
    counted: list[Counter[type]] = []
    # The list of every tracked object (a pointer each) is made on a thread of its own,
    # so it comes from that thread's malloc arena: made every second or so on the main
    # heap, it leaves a hole there that other allocations split (tracemalloc's, the
    # program's), and a later count extends the heap, a growth of RSS that is the
    # probe's, not the program's (docs/profiles.md).
    # The collection above stays on the calling thread: finalizers run where they
    # would have run anyway.
    worker = threading.Thread(
        target=lambda: counted.append(_count_by_type()), name="leaklab-count-types"
    )
    worker.start()
    worker.join()
    if not counted:
        raise RuntimeError("counting objects by type failed")
    names: Counter[str] = Counter()
    for cls, n in counted[0].items():
        names[type_name(cls)] += n
    return names


def _count_by_type() -> Counter[type]:
    objects = gc.get_objects()
    try:
        return Counter(map(type, objects))
    finally:
        del objects


def count_types_at(ctx: ProbeContext) -> Counter[str]:
    """:func:`count_types` once per round of probe calls (``ctx.shared``): the probes
    that count in the same round (gc-types and retention both take their baseline when
    the warm-up ends) share one collection instead of pausing the process twice in a
    row, a pause long enough in a service for requests to pile up and open connections
    that stay."""
    if ctx.shared is None:
        return count_types()
    counts = ctx.shared.get("type_counts")
    if counts is None:
        counts = ctx.shared["type_counts"] = count_types()
    return Counter(counts)


def record_failure(ctx: ProbeContext, probe: str, what: str, exc: BaseException) -> None:
    """A snapshot that failed: recorded as an event; the probe and the run go on."""
    ctx.emit(
        EventKind.SNAPSHOT_ERROR,
        probe=probe,
        what=what,
        error=f"{type(exc).__name__}: {exc}",
        traceback=traceback.format_exc(limit=8),
    )


def safe_text(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters; an object whose ``__repr__`` raises gets a
    placeholder."""
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<{type(value).__name__} repr raised {type(exc).__name__}>"
    if not isinstance(text, str):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Followed:
    """The types a snapshotting probe reports: the top growers, each followed to the end once seen.

    Reporting every type a probe ever reported gives the analysis a series per
    type; when ``limit`` types are followed, one that stopped growing makes room.
    """

    def __init__(self, top: int, limit: int, min_growth: float) -> None:
        self.top = top
        self.limit = limit
        self.min_growth = min_growth
        self.names: list[str] = []

    def update(self, growth: dict[str, float]) -> list[str]:
        ranked = sorted(growth.items(), key=lambda item: item[1], reverse=True)[: self.top]
        for name, grew in ranked:
            if grew < self.min_growth or name in self.names:
                continue
            if len(self.names) >= self.limit:
                stale = min(self.names, key=lambda n: growth.get(n, 0))
                if growth.get(stale, 0) > 0:
                    continue
                self.names.remove(stale)
            self.names.append(name)
        return list(self.names)


class TypeSnapshots(Probe):
    """A probe that reports figures per type in snapshots against a baseline taken when the
    warm-up ends (gc-types, pympler): the types it follows, its cadence, and a final snapshot
    after the last step."""

    #: types reported per snapshot (by growth since the baseline)
    TOP = 25
    #: most types followed over the run (each reported once stays in every later snapshot)
    MAX_TRACKED = 60
    #: growth since the baseline that gets a type followed
    MIN_GROWTH: float = 2
    base: Any  # the baseline, None until the warm-up ends

    def __init__(self) -> None:
        self.cadence: Cadence | None = None
        self.base_steps = 0
        self.followed = Followed(self.TOP, self.MAX_TRACKED, self.MIN_GROWTH)
        self.count = 0

    def finish(self, ctx: ProbeContext) -> None:
        if self.base is not None:
            self.snapshot(ctx, final=True)

    def overhead(self) -> dict[str, float]:
        return {"snapshots": self.count}

    def snapshot(self, ctx: ProbeContext, final: bool = False) -> None:
        raise NotImplementedError


class Cadence:
    """When the next snapshot is due.

    With ``--snapshot-every`` (``options["snapshot_every"]``) the cadence is fixed, in
    steps or seconds, times ``stretch`` (a probe that should run less often than the
    others). Otherwise the cadence follows the measured cost: after a snapshot that
    cost ``c`` seconds, the next one is due ``c / budget`` seconds later, so the probe
    spends about ``budget`` of the run's time, within ``[min_s, max_s]``.
    """

    def __init__(
        self,
        options: dict[str, Any],
        budget: float,
        min_s: float,
        max_s: float,
        stretch: float = 1.0,
    ) -> None:
        every = options.get("snapshot_every") or {}
        self.every_steps = int(every["steps"] * stretch) if every.get("steps") else None
        self.every_s = float(every["seconds"]) * stretch if every.get("seconds") else None
        self.budget = budget
        self.min_s = min_s
        self.max_s = max_s
        self.next_t: float | None = None
        self.next_steps: int | None = None

    @property
    def fixed(self) -> bool:
        return self.every_steps is not None or self.every_s is not None

    def schedule(self, now: float, steps: int, cost_s: float, at_least_s: float = 0.0) -> None:
        """Plan the next snapshot after one that ended at ``now``/``steps`` and cost ``cost_s``."""
        self.next_t = self.next_steps = None
        if self.every_steps is not None:
            self.next_steps = steps + self.every_steps
        elif self.every_s is not None:
            self.next_t = now + max(self.every_s, at_least_s)
        else:
            wait = min(self.max_s, max(self.min_s, cost_s / self.budget, at_least_s))
            self.next_t = now + wait

    def due(self, now: float, steps: int) -> bool:
        if self.next_steps is not None:
            return steps >= self.next_steps
        return self.next_t is not None and now >= self.next_t


def planned_seconds(ctx: ProbeContext, started: float) -> float | None:
    """How long the run will last from ``started``, by its time plan, or its step plan at the
    rate so far; None when it has no end (or no step has run yet)."""
    duration = ctx.plan.get("duration_s")
    if duration:
        return float(duration)
    steps = ctx.plan.get("steps")
    elapsed = time.monotonic() - started
    if steps and ctx.steps and elapsed > 0:
        return elapsed * steps / ctx.steps
    return None
