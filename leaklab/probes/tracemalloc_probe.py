"""tracemalloc: which allocation sites grow.

Tracing every allocation slows every allocation down, the more so the more frames it
keeps (``docs/profiles.md``), so the ``tracemalloc`` probe traces in short *windows*:
tracing starts, a window of steps runs, a snapshot is taken and tracing stops.
Whatever the window allocated and still holds at its end survived 50 to 200 steps:
per-step garbage is gone, a leak is there ``steps x rate`` times, what was in flight
is there once. Windows repeat at a cadence set by their measured
cost (the steps they slowed down plus the snapshot) so that tracing takes about
``BUDGET`` of the run; ``--snapshot-every`` fixes the cadence instead. A window
ends after its steps or its time limit; in a run of planned duration the limits of
one window of each length add up to at most ``BUDGET`` of it, so a step that tracing
slows a hundredfold (many small allocations) cannot spend a short run under tracing.

Windows start during the warm-up too, longest first, and those are not reported:
a window's first runs raise the process's memory once (tracemalloc's tables, the
allocator's high-water mark, in a service the connections its pause lets pile up),
and that one-off rise belongs in the warm-up, not at the start of the analysed
stretch, where it reads as growth.

CPython before 3.12.5 never frees the tracebacks it recorded when tracing stops
(python/cpython#121390): each window leaks about 100 bytes per distinct traceback it
saw, and at the budget's cadence that adds up to a steady growth that the run would
report as the program's own leak (``docs/profiles.md``). On those versions the reported
windows run in the warm-up instead, from a quarter of the way into it, one of each
length (the warm-up waits for the last of them, up to ``runner.child.WARMUP_HOLD_LIMIT``
times its planned length; those it still has no room for run right after it), so what
they leak lands before the analysed stretch; each later window waits until the run is
``LEAKY_GROWTH`` times as old as at the end of the one before: none in a run whose
warm-up is the default tenth, one more each time the run gets ten times longer
otherwise. Windows in the warm-up can see caches still filling; a cache fills once, so
it does not scale with the window's steps, which is what the analysis asks of a leaking
site. ``--snapshot-every`` keeps the cadence it asks for, after the warm-up.

``tracemalloc-full`` traces from the end of the warm-up to the end of the run and
compares each snapshot with the post-warm-up one (the sites whose size and count
grew since); it also fills the ``traced`` sample column. It is the precise and
expensive option; when tracemalloc is already on (``PYTHONTRACEMALLOC``) the
``tracemalloc`` probe behaves like it and leaves tracing on.
"""

from __future__ import annotations

import fnmatch
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from leaklab.kinds import EventKind
from leaklab.naming import Classifier, group_sites, source_lines
from leaklab.probes import Probe, ProbeContext, memray_probe, support

_HERE = Path(__file__).resolve().parent
#: tracemalloc.stop() leaks the recorded tracebacks here (see the module docstring)
STOP_LEAKS = sys.version_info < (3, 12, 5)
_FILTERS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
    # The probes' own work, and the child's reporting between steps.
    tracemalloc.Filter(False, str(_HERE / "*"), all_frames=True),
    tracemalloc.Filter(False, str(_HERE.parent / "runner" / "*")),
)


class TracemallocProbe(Probe):
    name = "tracemalloc"
    continuous = False
    #: frames per traceback: deep enough to reach the user's line under a library call
    NFRAMES = 4
    TOP = 10
    #: share of the run's time the windows may cost
    BUDGET = 0.025
    #: steps of the shortest window, and the seconds the longest may last (slow steps)
    MIN_WINDOW_STEPS = 50
    MAX_WINDOW_S = 4.0
    #: a window may always last this long (a few ticks); in a run of planned duration, one
    #: window of each length together last at most ``BUDGET`` of it otherwise, and where
    #: the windows run in the warm-up, they and the pauses between them fit in it
    MIN_WINDOW_S = 0.005
    LENGTHS = (1, 2, 4)
    #: how often to check whether an open window has enough steps
    WINDOW_POLL_S = 0.02
    MIN_PERIOD_S = 0.5
    MAX_PERIOD_S = 60.0
    #: where tracemalloc.stop() leaks: how much older the run gets between two windows after the
    #: first ones
    LEAKY_GROWTH = 10.0
    #: ... and how far into the warm-up the first one starts
    LEAKY_START = 0.25

    def __init__(self) -> None:
        self.cadence: support.Cadence | None = None
        self.classifier: Classifier | None = None
        self.ready = False
        self.owns = False  # tracing was started by this probe (and must be stopped by it)
        self.window: dict[str, Any] | None = None
        self.mark = (0.0, 0)  # (time, steps) when the last window closed: the untraced rate since
        self.count = 0
        self.slowdown_s = 0.0
        self.traced_s = 0.0
        self.baseline: tracemalloc.Snapshot | None = None
        self.baseline_at = (0.0, 0)
        self.warmup_rate: float | None = None
        self.started = 0.0
        self.unit_s = self.MAX_WINDOW_S / max(self.LENGTHS)  # most seconds of the shortest window
        self.unit_steps = self.MIN_WINDOW_STEPS  # steps of the shortest window
        self.last_cost_s = 0.0  # what the latest window cost (slowed steps, snapshot, collection)
        self.primed = 0  # warm-up windows run (and not reported)
        #: stopping tracing leaks, and the cadence is the probe's to choose: the windows run early
        #: and then sparsely
        self.leaky = False
        #: frames the events named: their functions and source lines are looked up after the last
        #: step
        self.seen: set[tuple[str, int]] = set()

    # -- the Probe interface -------------------------------------------------

    def start(self, ctx: ProbeContext) -> None:
        self.started = time.monotonic()
        duration = ctx.plan.get("duration_s")
        if duration:
            # Steps that tracing slows a lot (many small allocations) make a window last its
            # time limit; in a short run those limits would take most of it.
            share = self.BUDGET * float(duration) / sum(self.LENGTHS)
            self.unit_s = max(self.MIN_WINDOW_S, min(self.unit_s, share))
        self.cadence = support.Cadence(
            ctx.options,
            self.BUDGET if not self.continuous else 0.02,
            self.MIN_PERIOD_S,
            self.MAX_PERIOD_S,
        )
        self.classifier = Classifier(ctx.plan.get("scenario_path"))
        # What the first window would otherwise allocate once and keep (compiled filter
        # patterns, the kind of each loaded file) is allocated now, before the baseline.
        for tm_filter in _FILTERS:
            fnmatch.fnmatch(__file__, tm_filter.filename_pattern)
        for module in list(sys.modules.values()):
            filename = getattr(module, "__dict__", {}).get("__file__")
            if isinstance(filename, str):
                self.classifier.kind(filename)
        if tracemalloc.is_tracing():
            self.continuous = (
                True  # someone else traces all along: compare snapshots, never stop it
            )
        self.leaky = STOP_LEAKS and not self.continuous and not self.cadence.fixed
        if ctx.warmup_done:
            self.warmup_end(ctx)
        elif not self.continuous:
            self.mark = (self.started, ctx.steps)
            self.cadence.schedule(self.started, ctx.steps, cost_s=0.0)
            warmup = ctx.plan.get("warmup") or {}
            if self.leaky:
                # One window of each length, each followed by a pause as long, from LEAKY_START of
                # the warm-up on: sized to fit in it, so that none is left for the analysed stretch.
                # Where slow first steps make them overrun it, the warm-up waits for the last one.
                ctx.warmup_holds.add(self.name)
                room = (1 - self.LEAKY_START) / sum(self.LENGTHS)
                if warmup.get("seconds"):
                    self.cadence.next_t = self.started + self.LEAKY_START * float(warmup["seconds"])
                    self.unit_s = max(
                        self.MIN_WINDOW_S, min(self.unit_s, room * float(warmup["seconds"]) / 2)
                    )
                elif warmup.get("steps"):
                    self.cadence.next_t = None
                    self.cadence.next_steps = ctx.steps + int(
                        self.LEAKY_START * int(warmup["steps"])
                    )
                    self.unit_steps = max(1, min(self.unit_steps, int(room * int(warmup["steps"]))))
            self._rearm(ctx)

    def warmup_end(self, ctx: ProbeContext) -> None:
        ctx.warmup_holds.discard(self.name)
        if self.ready:
            return
        now = time.monotonic()
        if self.window is not None:
            self._close(ctx, now)  # a warm-up window cut short (reported only where stop() leaks)
            now = time.monotonic()
        self.ready = True
        elapsed = now - self.started
        self.warmup_rate = ctx.steps / elapsed if elapsed > 0 and ctx.steps else None
        self.mark = (now, ctx.steps)
        if self.continuous:
            self._start_continuous(ctx, now)
        assert self.cadence is not None
        if not (self.leaky and self.count >= len(self.LENGTHS)):
            # The next window waits as long as the budget asks after the latest one's cost.
            self.cadence.schedule(now, ctx.steps, cost_s=self.last_cost_s)
        else:
            # The reported windows all ran in the warm-up: the next waits until the run is
            # LEAKY_GROWTH times as old as at the warm-up's end, not at the end of the last of
            # them, which may have closed early in the warm-up (none in a run whose warm-up is
            # the default tenth, as the module says).
            self.cadence.next_steps = None
            self.cadence.next_t = max(
                self.cadence.next_t or now, self.started + self.LEAKY_GROWTH * (now - self.started)
            )
        self._rearm(ctx)

    def sample(self, ctx: ProbeContext) -> dict[str, float]:
        if self.continuous and tracemalloc.is_tracing():
            return {"traced": float(tracemalloc.get_traced_memory()[0])}
        return {}

    def tick(self, ctx: ProbeContext) -> None:
        if self.cadence is None or (self.continuous and not self.ready):
            return
        now = time.monotonic()
        if self.continuous:
            if self.cadence.due(now, ctx.steps):
                self._continuous_snapshot(ctx, now)
        elif self.window is not None:
            self._maybe_close(ctx, now)
        elif self.cadence.due(now, ctx.steps) and not ctx.done:
            self._open(ctx, now)
        self._rearm(ctx)

    def finish(self, ctx: ProbeContext) -> None:
        now = time.monotonic()
        if self.window is not None:
            self._close(ctx, now)
        if self.continuous and self.baseline is not None:
            self._continuous_snapshot(ctx, now)
        if self.owns and tracemalloc.is_tracing():
            tracemalloc.stop()
        self.owns = False
        self.baseline = None
        if self.seen:
            try:
                ctx.emit(EventKind.SOURCE_LINES, lines=source_lines(sorted(self.seen)))
            except Exception as exc:
                support.record_failure(ctx, self.name, "source lines", exc)
            self.seen.clear()

    def overhead(self) -> dict[str, float]:
        return {
            "slowdown_s": round(self.slowdown_s, 6),
            "traced_s": round(self.traced_s, 6),
            "snapshots": self.count,
        }

    # -- windows ----------------------------------------------------------------

    def _rearm(self, ctx: ProbeContext) -> None:
        if self.window is not None:
            ctx.wake(time.monotonic() + min(self.WINDOW_POLL_S, self.unit_s))
        elif self.cadence is not None and self.cadence.next_t is not None:
            ctx.wake(self.cadence.next_t)

    def _window_limits(self) -> tuple[int, float]:
        """Steps and most seconds of the next window: 1, 2 or 4 times the base length, in turn.

        What a window holds at its end is the leak (proportional to its steps) plus
        whatever was in flight (the same in every window); windows of different
        lengths let the analysis tell the two apart.
        """
        assert self.cadence is not None
        if self.ready or self.leaky:
            factor = self.LENGTHS[self.count % len(self.LENGTHS)]
        else:  # the longest first: the memory the windows need is reached in one go
            factor = sorted(self.LENGTHS, reverse=True)[self.primed % len(self.LENGTHS)]
        longest = max(self.LENGTHS)
        steps, seconds = self.unit_steps, self.unit_s
        if self.cadence.every_steps:
            steps = max(1, min(steps, self.cadence.every_steps // (2 * longest)))
        if self.cadence.every_s:
            seconds = min(seconds, self.cadence.every_s / (2 * longest))
        return steps * factor, seconds * factor

    def _open(self, ctx: ProbeContext, now: float) -> None:
        if memray_probe.tracking() or tracemalloc.is_tracing():
            # Another tracer owns the allocator hooks: stopping ours later would unhook it.
            assert self.cadence is not None
            self.cadence.schedule(now, ctx.steps, cost_s=0.0)
            return
        mark_t, mark_steps = self.mark
        rate_out = (
            (ctx.steps - mark_steps) / (now - mark_t)
            if now > mark_t and ctx.steps > mark_steps
            else None
        )
        tracemalloc.start(self.NFRAMES)
        self.owns = True
        self.window = {
            "t": time.monotonic(),
            "steps": ctx.steps,
            "rate_out": rate_out,
            "report": self.ready or self.leaky,
        }

    def _maybe_close(self, ctx: ProbeContext, now: float) -> None:
        assert self.window is not None
        min_steps, max_s = self._window_limits()
        elapsed = now - self.window["t"]
        done = ctx.steps - self.window["steps"]
        if done >= min_steps or elapsed >= max_s:
            self._close(ctx, now)

    def _close(self, ctx: ProbeContext, now: float) -> None:
        window, self.window = self.window, None
        assert window is not None and self.cadence is not None
        elapsed = now - window["t"]
        steps = ctx.steps - window["steps"]
        began = time.perf_counter()
        snapshot = None
        try:
            if not tracemalloc.is_tracing():
                raise RuntimeError("tracing was stopped by someone else during the window")
            snapshot = tracemalloc.take_snapshot()
        except Exception as exc:
            support.record_failure(ctx, self.name, "window snapshot", exc)
        finally:
            if self.owns and tracemalloc.is_tracing():
                tracemalloc.stop()
            self.owns = False
        rate_out = window["rate_out"]
        slowdown = max(0.0, elapsed - steps / rate_out) if rate_out else 0.0
        self.slowdown_s += slowdown
        self.traced_s += elapsed
        snapshot_s = time.perf_counter() - began
        if not window["report"]:
            self.primed += 1
        if snapshot is not None:
            try:
                self._emit_window(
                    ctx, snapshot, steps, elapsed, rate_out, slowdown, began, window["report"]
                )
            except Exception as exc:
                support.record_failure(ctx, self.name, "window statistics", exc)
            finally:
                del snapshot
        # The snapshot's thousands of tuples went to the interpreter's free lists, where
        # they count as allocated blocks until the next full collection: a step up after
        # every window that the blocks signal would carry (a full collection empties them).
        # In the warm-up the step loop's own collection at its end does that: the blocks
        # there are not analysed, and a full collection per window would make the warm-up's
        # windows last far longer than their steps on a large heap.
        collect_began = time.perf_counter()
        if ctx.warmup_done or not gc.isenabled():
            gc.collect()
        collect_s = time.perf_counter() - collect_began
        end = time.monotonic()
        # Reading source files for function names is paid once per file: the cadence
        # follows what every window costs (the slowed steps, the snapshot, the collection).
        cost = self.last_cost_s = slowdown + snapshot_s + collect_s
        self.cadence.schedule(end, ctx.steps, cost, at_least_s=2 * elapsed)
        if self.leaky:
            if not self.ready:
                # The warm-up's own time is not the budget's: the windows fit in it back to back.
                self.cadence.next_steps = None
                self.cadence.next_t = end + elapsed
            if self.count >= len(self.LENGTHS):
                ctx.warmup_holds.discard(self.name)
                self.cadence.next_steps = None
                self.cadence.next_t = self.started + self.LEAKY_GROWTH * (end - self.started)
        self.mark = (end, ctx.steps)

    def _emit_window(
        self,
        ctx: ProbeContext,
        snapshot: tracemalloc.Snapshot,
        steps: int,
        elapsed: float,
        rate_out: float | None,
        slowdown: float,
        began: float,
        report: bool = True,
    ) -> None:
        assert self.classifier is not None
        snapshot = snapshot.filter_traces(_FILTERS)
        stats = snapshot.statistics("traceback")
        total_size = sum(s.size for s in stats)
        total_count = sum(s.count for s in stats)
        sites = group_sites(
            ((s.traceback, s.size, s.count, s.size, s.count) for s in stats),
            self.classifier,
            self.TOP,
            seen=self.seen,
        )
        # A warm-up window does all the work above (its memory is the point) but reports
        # nothing: the first-use caches of the warm-up would show among its survivors.
        if not report:
            return
        self.count += 1
        ctx.emit(
            EventKind.TRACEMALLOC_SNAPSHOT,
            mode="window",
            snapshot=self.count,
            nframes=self.NFRAMES,
            steps=steps,
            seconds=round(elapsed, 6),
            rate_in=round(steps / elapsed, 3) if elapsed > 0 else None,
            rate_out=None if rate_out is None else round(rate_out, 3),
            slowdown_s=round(slowdown, 6),
            snapshot_s=round(time.perf_counter() - began, 6),
            survivors={"size": total_size, "count": total_count},
            sites=sites,
        )

    # -- continuous ---------------------------------------------------------------

    def _start_continuous(self, ctx: ProbeContext, now: float) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.NFRAMES)
            self.owns = True
        try:
            self.baseline = tracemalloc.take_snapshot().filter_traces(_FILTERS)
        except Exception as exc:
            support.record_failure(ctx, self.name, "baseline snapshot", exc)
            self.baseline = None
        self.baseline_at = (now, ctx.steps)

    def _continuous_snapshot(self, ctx: ProbeContext, now: float) -> None:
        assert self.cadence is not None and self.classifier is not None
        began = time.perf_counter()
        if self.baseline is None or not tracemalloc.is_tracing():
            self.cadence.schedule(now, ctx.steps, cost_s=0.0)
            return
        try:
            snapshot = tracemalloc.take_snapshot().filter_traces(_FILTERS)
            diffs = snapshot.compare_to(self.baseline, "traceback")
            del snapshot
            traced, peak = tracemalloc.get_traced_memory()
            sites = group_sites(
                ((d.traceback, d.size_diff, d.count_diff, d.size, d.count) for d in diffs),
                self.classifier,
                self.TOP,
                seen=self.seen,
            )
            del diffs
            base_t, base_steps = self.baseline_at
            self.count += 1
            ctx.emit(
                EventKind.TRACEMALLOC_SNAPSHOT,
                mode="continuous",
                snapshot=self.count,
                nframes=tracemalloc.get_traceback_limit(),
                steps=ctx.steps - base_steps,
                seconds=round(now - base_t, 6),
                traced=traced,
                peak=peak,
                snapshot_s=round(time.perf_counter() - began, 6),
                sites=sites,
            )
        except Exception as exc:
            support.record_failure(ctx, self.name, "snapshot", exc)
        cost = time.perf_counter() - began
        self.cadence.schedule(time.monotonic(), ctx.steps, cost)
        base_t, base_steps = self.baseline_at
        if self.warmup_rate and self.owns:
            traced_for = time.monotonic() - base_t
            self.traced_s = traced_for
            # The warm-up ran untraced: the steps since, at its rate, would have taken this long.
            self.slowdown_s = max(0.0, traced_for - (ctx.steps - base_steps) / self.warmup_rate)


class TracemallocFullProbe(TracemallocProbe):
    name = "tracemalloc-full"
    continuous = True
    columns = ("traced",)
