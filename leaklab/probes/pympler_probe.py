"""pympler: count and size per type (``muppy`` + ``summary.summarize``), at a lower cadence.

Unlike the gc counts this sees the objects the gc does not track (bytes, str,
dicts of atoms) and gives sizes, at a price that grows with the heap (``docs/profiles.md``).
Snapshots run every fourth ``--snapshot-every``, or when the measured
cost fits ``BUDGET`` of the run; reported types follow the same rule as the gc
counts (top growers by size, each followed to the end once seen).

The baseline, when the warm-up ends, stops the steps for as long as it takes: on a
large heap longer than the rest of the deep profile costs. Without ``--snapshot-every``
it is taken only when its expected cost fits ``BASELINE_BUDGET`` of the planned run. The
expected cost is measured on the heap itself when the warm-up ends: a summary of a random sample
of its gc-tracked objects, with the objects muppy's walk adds for each (their untracked
referents), timed and scaled to the whole heap. (A cost per object timed on objects of the
probe's own was off by a factor of two either way on real heaps: ``docs/profiles.md``.) A
baseline left out is recorded (``pympler_skipped``) and the probe does nothing more in that
run. Snapshots wait while memray traces (they would be traced too, slowly).
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from leaklab.kinds import EventKind
from leaklab.probes import ProbeContext, memray_probe, support


def summarize() -> dict[str, tuple[int, int]]:
    """Type name -> (count, bytes) over every object muppy can reach."""
    from pympler import muppy, summary

    objects = muppy.get_objects()
    try:
        rows = summary.summarize(objects)
    finally:
        del objects
    return {str(name): (int(count), int(size)) for name, count, size in rows}


def expected_summary_s(sample: int = 2_000) -> tuple[int, float]:
    """The gc-tracked objects now, and the seconds a summary of every object would take: a
    summary of a random sample of them and of what muppy adds for each (its untracked
    referents), timed and scaled to the heap."""
    from pympler import summary

    tracked = gc.get_objects()
    total = len(tracked)
    # A generator of its own: the program's random state is not the probe's to advance.
    picked = random.Random().sample(tracked, min(total, sample))
    del tracked
    if not picked:
        return total, 0.0
    began = time.perf_counter()
    objects = list(picked)
    for obj in picked:
        objects.extend(ref for ref in gc.get_referents(obj) if not gc.is_tracked(ref))
    summary.summarize(list({id(obj): obj for obj in objects}.values()))
    took = time.perf_counter() - began
    return total, took * total / len(picked)


class PymplerProbe(support.TypeSnapshots):
    name = "pympler"
    BUDGET = 0.02
    MIN_PERIOD_S = 5.0
    MAX_PERIOD_S = 300.0
    STRETCH = 4
    TOP = 15
    MAX_TRACKED = 40
    #: bytes of growth since the baseline that get a type followed
    MIN_GROWTH = 1024
    #: share of the planned run the baseline may stop the steps for
    BASELINE_BUDGET = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.base: dict[str, tuple[int, int]] | None = None
        self.started = 0.0

    def start(self, ctx: ProbeContext) -> None:
        self.started = time.monotonic()
        self.cadence = support.Cadence(
            ctx.options, self.BUDGET, self.MIN_PERIOD_S, self.MAX_PERIOD_S, stretch=self.STRETCH
        )
        if ctx.warmup_done:
            self.warmup_end(ctx)

    def _too_costly(self, ctx: ProbeContext) -> bool:
        """Whether the baseline would stop the steps for more than ``BASELINE_BUDGET`` of the
        run."""
        assert self.cadence is not None
        if self.cadence.fixed:
            return False  # asked for with --snapshot-every
        objects, expected = expected_summary_s()
        planned = support.planned_seconds(ctx, self.started)
        if planned is not None and expected <= self.BASELINE_BUDGET * planned:
            return False
        ctx.emit(
            EventKind.PYMPLER_SKIPPED,
            steps=ctx.steps,
            objects=objects,
            expected_s=round(expected, 3),
            planned_s=None if planned is None else round(planned, 3),
            reason=f"a summary of {objects:,} objects would stop the steps for about "
            f"{expected:.2f} s, more than {self.BASELINE_BUDGET:.0%} of the run",
        )
        self.cadence = None
        return True

    def warmup_end(self, ctx: ProbeContext) -> None:
        if self.base is not None or self.cadence is None or self._too_costly(ctx):
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
        ctx.emit(
            EventKind.PYMPLER_SUMMARY,
            snapshot=0,
            baseline=True,
            steps=ctx.steps,
            **_totals(self.base),
            types=_rows(top),
            base=_rows(top),
            cost_s=round(cost, 6),
        )
        self.cadence.schedule(time.monotonic(), ctx.steps, cost)

    def tick(self, ctx: ProbeContext) -> None:
        if ctx.done:
            return  # after the last step, finish() takes the final summary
        if (
            self.base is not None
            and self.cadence is not None
            and not memray_probe.tracking()
            and self.cadence.due(time.monotonic(), ctx.steps)
        ):
            self.snapshot(ctx)

    def snapshot(self, ctx: ProbeContext, final: bool = False) -> None:
        assert self.base is not None and self.cadence is not None
        began = time.perf_counter()
        try:
            current = summarize()
            growth = {
                name: size - self.base.get(name, (0, 0))[1] for name, (_, size) in current.items()
            }
            tracked = self.followed.update(growth)
            self.count += 1
            ctx.emit(
                EventKind.PYMPLER_SUMMARY,
                snapshot=self.count,
                baseline=False,
                final=final,
                steps=ctx.steps,
                steps_since_baseline=ctx.steps - self.base_steps,
                **_totals(current),
                types=_rows({n: current.get(n, (0, 0)) for n in tracked}),
                base=_rows({n: self.base.get(n, (0, 0)) for n in tracked}),
                cost_s=round(time.perf_counter() - began, 6),
            )
        except Exception as exc:
            support.record_failure(ctx, self.name, "summary", exc)
        self.cadence.schedule(time.monotonic(), ctx.steps, time.perf_counter() - began)


def _rows(table: dict[str, tuple[int, int]]) -> dict[str, dict[str, int]]:
    return {name: {"count": count, "size": size} for name, (count, size) in table.items()}


def _totals(table: dict[str, tuple[int, int]]) -> dict[str, Any]:
    return {
        "total_count": sum(c for c, _ in table.values()),
        "total_size": sum(s for _, s in table.values()),
    }
