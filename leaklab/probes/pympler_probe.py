"""pympler: count and size per type (``muppy`` + ``summary.summarize``), at a lower cadence.

Unlike the gc counts this sees the objects the gc does not track (bytes, str,
dicts of atoms) and gives sizes, at a price: ~0.3 s for 100,000 objects, ~0.6 s for
180,000. Snapshots run every fourth ``--snapshot-every``, or when the measured
cost fits ``BUDGET`` of the run; reported types follow the same rule as the gc
counts (top growers by size, each followed to the end once seen).
"""

from __future__ import annotations

import time
from typing import Any

from leaklab.probes import Probe, ProbeContext, support


def summarize() -> dict[str, tuple[int, int]]:
    """Type name -> (count, bytes) over every object muppy can reach."""
    from pympler import muppy, summary

    objects = muppy.get_objects()
    try:
        rows = summary.summarize(objects)
    finally:
        del objects
    return {str(name): (int(count), int(size)) for name, count, size in rows}


class PymplerProbe(Probe):
    name = "pympler"
    BUDGET = 0.03
    MIN_PERIOD_S = 5.0
    MAX_PERIOD_S = 300.0
    STRETCH = 4
    TOP = 15
    MAX_TRACKED = 40
    #: bytes of growth since the baseline that get a type followed
    MIN_GROWTH = 1024

    def __init__(self) -> None:
        self.cadence: support.Cadence | None = None
        self.base: dict[str, tuple[int, int]] | None = None
        self.base_steps = 0
        self.followed = support.Followed(self.TOP, self.MAX_TRACKED, self.MIN_GROWTH)
        self.count = 0

    def start(self, ctx: ProbeContext) -> None:
        self.cadence = support.Cadence(ctx.options, self.BUDGET, self.MIN_PERIOD_S, self.MAX_PERIOD_S,
                                       stretch=self.STRETCH)
        if ctx.warmup_done:
            self.warmup_end(ctx)

    def warmup_end(self, ctx: ProbeContext) -> None:
        if self.base is not None or self.cadence is None:
            return
        began = time.perf_counter()
        try:
            self.base = summarize()
        except Exception as exc:
            support.record_failure(ctx, self.name, "baseline summary", exc)
            self.base = {}
        self.base_steps = ctx.steps
        cost = time.perf_counter() - began
        top = dict(sorted(self.base.items(), key=lambda item: item[1][1], reverse=True)[: self.TOP])
        ctx.emit("pympler_summary", snapshot=0, baseline=True, steps=ctx.steps, **_totals(self.base),
                 types=_rows(top), base=_rows(top), cost_s=round(cost, 6))
        self.cadence.schedule(time.monotonic(), ctx.steps, cost)

    def tick(self, ctx: ProbeContext) -> None:
        if ctx.done:
            return  # after the last step, finish() takes the final summary
        if self.base is not None and self.cadence is not None and self.cadence.due(time.monotonic(), ctx.steps):
            self.snapshot(ctx)

    def finish(self, ctx: ProbeContext) -> None:
        if self.base is not None:
            self.snapshot(ctx, final=True)

    def overhead(self) -> dict[str, float]:
        return {"snapshots": self.count}

    def snapshot(self, ctx: ProbeContext, final: bool = False) -> None:
        assert self.base is not None and self.cadence is not None
        began = time.perf_counter()
        try:
            current = summarize()
            growth = {name: size - self.base.get(name, (0, 0))[1] for name, (_, size) in current.items()}
            tracked = self.followed.update(growth)
            self.count += 1
            ctx.emit("pympler_summary", snapshot=self.count, baseline=False, final=final, steps=ctx.steps,
                     steps_since_baseline=ctx.steps - self.base_steps, **_totals(current),
                     types=_rows({n: current.get(n, (0, 0)) for n in tracked}),
                     base=_rows({n: self.base.get(n, (0, 0)) for n in tracked}),
                     cost_s=round(time.perf_counter() - began, 6))
        except Exception as exc:
            support.record_failure(ctx, self.name, "summary", exc)
        self.cadence.schedule(time.monotonic(), ctx.steps, time.perf_counter() - began)


def _rows(table: dict[str, tuple[int, int]]) -> dict[str, dict[str, int]]:
    return {name: {"count": count, "size": size} for name, (count, size) in table.items()}


def _totals(table: dict[str, tuple[int, int]]) -> dict[str, Any]:
    return {"total_count": sum(c for c, _ in table.values()), "total_size": sum(s for _, s in table.values())}
