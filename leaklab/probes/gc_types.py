"""gc type counts (objgraph-style): how many objects of each type are alive, over time.

A baseline is counted when the warm-up ends; each later snapshot reports the
types that grew most since it, and keeps reporting every type it reported once,
so the analysis gets a series per type and can tell steady growth from a spike.
A count is a full collection plus one pass over the gc-tracked objects, a cost that
grows with the heap, so the cadence follows the measured cost (``BUDGET`` of the run).
Objects the gc does not track (bytes, str, dicts of atoms) are not counted here:
pympler and tracemalloc see them.

The counts start at the cadence during the warm-up too (unreported): each one pauses
the process for a full collection, and what the first pauses leave behind (in a
service, the connections its clients open while it does not answer) belongs in the
warm-up, not at the start of the analysed stretch. A count due while tracemalloc
traces waits for the window to close (at most ``MAX_DEFER_S``): under tracing it
costs several times as much (``docs/profiles.md``), a pause long enough to pile up
requests that the untraced counts never do. Counts wait
for memray's tracker in the same way.

A count costs in proportion to the heap, and a leaking heap grows between two counts:
when one is due, its cost is predicted from the latest one's, scaled by the allocated
blocks since (``sys.getallocatedblocks``), and it waits until that prediction fits the
budget, so the counts of a fast-growing heap stay within it.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections import Counter

from leaklab.kinds import EventKind
from leaklab.probes import ProbeContext, memray_probe, support


class GcTypesProbe(support.TypeSnapshots):
    name = "gc-types"
    BUDGET = 0.015
    MIN_PERIOD_S = 1.0
    MAX_PERIOD_S = 60.0
    #: longest wait for a tracemalloc window to close (tracing that never stops does not hold the
    #: counts back)
    MAX_DEFER_S = 5.0
    DEFER_POLL_S = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.base: Counter[str] | None = None
        self.deferred_at: float | None = (
            None  # time.monotonic() when a due count started waiting for tracing to stop
        )
        #: the latest count: when it ended, what it cost, the allocated blocks then (the cost scales
        #: with them)
        self.last: tuple[float, float, int] | None = None

    def start(self, ctx: ProbeContext) -> None:
        self.cadence = support.Cadence(
            ctx.options, self.BUDGET, self.MIN_PERIOD_S, self.MAX_PERIOD_S
        )
        if ctx.warmup_done:
            self.warmup_end(ctx)
        else:
            self.cadence.schedule(time.monotonic(), ctx.steps, cost_s=0.0)
            self._rearm(ctx)

    def warmup_end(self, ctx: ProbeContext) -> None:
        if self.base is not None:
            return
        began = time.perf_counter()
        try:
            self.base = support.count_types_at(ctx)
        except Exception as exc:
            support.record_failure(ctx, self.name, "baseline count", exc)
            self.base = Counter()
        self.base_steps = ctx.steps
        cost = time.perf_counter() - began
        top = dict(self.base.most_common(self.TOP))
        ctx.emit(
            EventKind.GC_TYPES,
            snapshot=0,
            baseline=True,
            steps=ctx.steps,
            total=sum(self.base.values()),
            types=top,
            base=top,
            cost_s=round(cost, 6),
        )
        assert self.cadence is not None
        self.cadence.schedule(time.monotonic(), ctx.steps, cost)
        self._note(cost)
        self._rearm(ctx)

    def _rearm(self, ctx: ProbeContext) -> None:
        if self.cadence is not None and self.cadence.next_t is not None:
            ctx.wake(self.cadence.next_t)

    def tick(self, ctx: ProbeContext) -> None:
        if self.cadence is None or ctx.done:
            return  # after the last step, finish() takes the final count
        now = time.monotonic()
        if self.cadence.due(now, ctx.steps) and not self._grown_too_costly(ctx, now):
            if self._defer(now):
                ctx.wake(now + self.DEFER_POLL_S)
                return
            if self.base is None:
                self._warmup_count(ctx)
            else:
                self.snapshot(ctx)
        self._rearm(ctx)

    def _grown_too_costly(self, ctx: ProbeContext, now: float) -> bool:
        """Whether the heap has grown since the latest count so that this one, at the cost the
        growth predicts, does not fit the budget yet (it is then rescheduled by that cost)."""
        assert self.cadence is not None
        if self.last is None or self.cadence.fixed:
            return False
        ended, cost, blocks = self.last
        now_blocks = sys.getallocatedblocks()
        if now_blocks <= blocks * 1.1:
            return False
        self.cadence.schedule(ended, ctx.steps, cost * now_blocks / blocks)
        return not self.cadence.due(now, ctx.steps)

    def _note(self, cost: float) -> None:
        self.last = (time.monotonic(), cost, sys.getallocatedblocks())

    def _defer(self, now: float) -> bool:
        if not tracemalloc.is_tracing() and not memray_probe.tracking():
            self.deferred_at = None
            return False
        if self.deferred_at is None:
            self.deferred_at = now
        if now - self.deferred_at < self.MAX_DEFER_S:
            return True
        self.deferred_at = None
        return False

    def _warmup_count(self, ctx: ProbeContext) -> None:
        assert self.cadence is not None
        began = time.perf_counter()
        try:
            support.count_types()
        except Exception as exc:
            support.record_failure(ctx, self.name, "warm-up count", exc)
        self.cadence.schedule(time.monotonic(), ctx.steps, time.perf_counter() - began)
        self._note(time.perf_counter() - began)

    def snapshot(self, ctx: ProbeContext, final: bool = False) -> None:
        assert self.base is not None and self.cadence is not None
        began = time.perf_counter()
        try:
            counts = support.count_types_at(ctx)
            growth = {name: n - self.base.get(name, 0) for name, n in counts.items()}
            tracked = self.followed.update(growth)
            self.count += 1
            ctx.emit(
                EventKind.GC_TYPES,
                snapshot=self.count,
                baseline=False,
                final=final,
                steps=ctx.steps,
                steps_since_baseline=ctx.steps - self.base_steps,
                total=sum(counts.values()),
                types={name: counts.get(name, 0) for name in tracked},
                base={name: self.base.get(name, 0) for name in tracked},
                cost_s=round(time.perf_counter() - began, 6),
            )
        except Exception as exc:
            support.record_failure(ctx, self.name, "count", exc)
        cost = time.perf_counter() - began
        self.cadence.schedule(time.monotonic(), ctx.steps, cost)
        self._note(cost)
