"""memray: a capture of every allocation over the last part of the run, and memray's own reports.

``memray`` traces Python allocators too (``trace_python_allocators``: pymalloc
blocks, so its leak report sees objects rather than arenas), ``memray-native``
adds native stacks. Tracing that way costs a lot more than ``memray run`` (which
sees arenas only) while it runs, so the tracker runs only over the end of the run,
and its cost is held to ``BUDGET`` of the planned stretch after the warm-up (the one
the analysis reads): it starts when the steps left, slowed down ``SLOWDOWN_GUESS``
times, would spend that share (at most ``MAX_TRACK_S`` seconds, which also bounds the
capture file), and it stops early, before the last step, once the steps it slowed
down, and the tracker's own start and stop, have cost that share (measured against
the untraced rate just before it started). The capture covers the stretch the
tracker ran; the event says which steps those were.

At the end the capture (``artifacts/memray/capture.bin``) becomes memray's leak
flame graph (``memray flamegraph --leaks --no-web``: self-contained HTML) and
stats (``memray stats --json``), by memray's own command line; the largest
leaked allocations, read with memray's ``FileReader``, go into the event.

tracemalloc and memray both hook the allocator and must not stop out of order,
so the tracker waits for a tracemalloc window to close, and tracemalloc windows
wait while the tracker runs.

memray attributes an allocation to the Python frames it has seen called since it
started; a tracker started from inside a probe call would see those calls return
without having seen them begin, and lose the stacks of everything after (most of
the bytes land on ``???`` that way). So the probe hands ``Tracker.__enter__`` to
the step loop (``ProbeContext.loop_call``), which calls it between two steps in its
own frame, and stops it at the final sample, before the other probes' end-of-run work.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from leaklab.kinds import EventKind
from leaklab.naming import Classifier, blame, short_path
from leaklab.probes import Probe, ProbeContext, support

_tracking = False


def tracking() -> bool:
    """Whether a memray tracker started by this probe is running in this process."""
    return _tracking


class MemrayProbe(Probe):
    name = "memray"
    native = False
    #: share of the planned stretch after the warm-up that the traced steps may lose (their
    #: slowdown, and the tracker's start and stop)
    BUDGET = 0.05
    #: how often, at least, the tracker's cost is compared with its budget (times per budget)
    CHECKS_PER_BUDGET = 10
    #: ... but the traced part lasts at least this many steps and seconds (at the untraced rate,
    #: within ``TAIL_FRACTION``), so a run whose steps pause (a long collection) still gets a
    #: capture
    MIN_TRACK_STEPS = 50
    MIN_TRACK_S = 0.1
    #: the traced part starts at most this far from the end of the planned run
    TAIL_FRACTION = 0.15
    MAX_TRACK_S = 10.0
    #: how much slower traced steps run, until measured (``docs/profiles.md``)
    SLOWDOWN_GUESS = 3.0
    #: seconds of untraced stepping that give the rate the slowdown is measured against
    RATE_WINDOW_S = 1.0
    REPORT_TIMEOUT_S = 300.0
    #: ticks to wait for tracemalloc to stop tracing before giving up
    MAX_WAITS = 20
    TOP = 10

    def __init__(self) -> None:
        self.tracker: Any = None
        self.started = 0.0
        self.track_t = 0.0
        self.track_steps = 0
        self.rate_before: float | None = None
        self.slowdown_s = 0.0
        self.tracked_s = 0.0
        self.skipped: str | None = None
        self.waits = 0
        self.ended = False
        self.tracked_steps = 0
        self.classifier = Classifier()
        #: (time, steps) at recent ticks before tracking: the untraced rate just before it
        self.marks: list[tuple[float, int]] = []
        self.planned_s: float | None = None
        #: seconds the traced steps may lose: ``BUDGET`` of the planned stretch after the warm-up
        self.budget_s: float | None = None
        #: time.monotonic() when the warm-up ended (None: not yet, or a run without one)
        self.warmup_t: float | None = None
        self.stopped_early = False
        #: in a run of set steps, the step count at which the traced tail begins at the rate
        #: seen last (None: not known yet, or a run of set duration)
        self.due_steps: int | None = None

    def start(self, ctx: ProbeContext) -> None:
        import memray  # noqa: F401  (fail here, recorded as probe_error, where memray is missing)

        self.started = time.monotonic()
        self.classifier = Classifier(ctx.plan.get("scenario_path"))

    def warmup_end(self, ctx: ProbeContext) -> None:
        self.warmup_t = time.monotonic()

    def sample(self, ctx: ProbeContext) -> dict[str, float]:
        if ctx.done and self.tracker is not None:
            self._end(
                ctx
            )  # the steps are over: what the other probes do next is not the scenario's
        return {}

    def tick(self, ctx: ProbeContext) -> None:
        if self.tracker is not None:
            if ctx.loop_call is None and not ctx.done and self._over_budget(ctx):
                self.stopped_early = True
                self._end(ctx)
            elif self.budget_s:
                # Looked at again after a tenth of the budget at most, whatever the sampling
                # interval: a short run's budget is a few of its samples' intervals.
                ctx.wake(time.monotonic() + self.budget_s / self.CHECKS_PER_BUDGET)
            return
        if self.skipped or not ctx.warmup_done or ctx.done or self.ended:
            return
        now = time.monotonic()
        self.marks.append((now, ctx.steps))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.RATE_WINDOW_S:
            self.marks.pop(0)
        if self._due(ctx):
            self._begin(ctx)
        elif self.due_steps is not None:
            ctx.wake(steps=self.due_steps)  # samples may be 50 ms apart: thousands of steps

    def _recent_rate(self) -> float | None:
        """Steps per second over the last ``RATE_WINDOW_S`` (None until a quarter of it has
        passed)."""
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0) if t1 - t0 >= self.RATE_WINDOW_S / 4 and s1 > s0 else None

    def _due(self, ctx: ProbeContext) -> bool:
        """When the steps left, traced, would lose ``BUDGET`` of the planned stretch after the
        warm-up (within ``TAIL_FRACTION`` of the planned run and ``MAX_TRACK_S``)."""
        started = float(ctx.plan.get("started") or self.started)
        elapsed = time.monotonic() - started
        planned = support.planned_seconds(ctx, started)
        if not planned:
            return False  # an open-ended run has no "end" to trace: nothing is captured
        self.planned_s = planned
        # The share is of what the steps do after the warm-up, the stretch the analysis reads: in
        # a short run whose first steps are slow, the warm-up takes much of the planned time.
        warmed = max(0.0, (self.warmup_t or started) - started)
        self.budget_s = self.BUDGET * max(planned - warmed, 0.0)
        # Traced steps run slower: the traced time, not just the untraced time left, stays within
        # bounds.
        rate = self._recent_rate() or (ctx.steps / elapsed if elapsed > 0 and ctx.steps else None)
        if not rate:
            return False
        tail = min(
            self.TAIL_FRACTION * planned,
            self.MAX_TRACK_S / self.SLOWDOWN_GUESS,
            max(
                self.budget_s / (self.SLOWDOWN_GUESS - 1),
                self.MIN_TRACK_STEPS / rate,
                self.MIN_TRACK_S,
            ),
        )
        duration = ctx.plan.get("duration_s")
        if duration:
            return duration - elapsed <= tail
        steps = int(ctx.plan.get("steps") or 0)
        self.due_steps = steps - int(tail * rate)  # at this rate
        return (steps - ctx.steps) / rate <= tail

    def _over_budget(self, ctx: ProbeContext) -> bool:
        """Whether the traced steps have lost their budget (past a first one)."""
        if not self.rate_before or self.budget_s is None:
            return False
        steps = ctx.steps - self.track_steps
        lost = time.monotonic() - self.track_t - steps / self.rate_before
        # Stopping the tracker costs about what starting it did (each opens or closes the
        # capture and swaps the allocator hooks): that is spent too once it stops.
        return steps >= 1 and lost + (ctx.loop_call_s or 0.0) >= self.budget_s

    def _begin(self, ctx: ProbeContext) -> None:
        global _tracking
        import memray

        if tracemalloc.is_tracing():
            self.waits += 1  # a tracemalloc window is open: try again at the next tick
            if self.waits > self.MAX_WAITS:
                self.skipped = (
                    "tracemalloc kept tracing (tracemalloc-full or PYTHONTRACEMALLOC); memray and "
                    "tracemalloc cannot take turns at the allocator hooks"
                )
            return
        folder = ctx.artifacts / "memray"
        folder.mkdir(parents=True, exist_ok=True)
        capture = folder / "capture.bin"
        if capture.exists():
            capture.unlink()
        now = time.monotonic()
        elapsed = now - self.started
        self.rate_before = self._recent_rate() or (
            ctx.steps / elapsed if elapsed > 0 and ctx.steps else None
        )
        tracker = memray.Tracker(
            destination=memray.FileDestination(str(capture), overwrite=True),
            native_traces=self.native,
            trace_python_allocators=True,
        )
        # Started by the step loop itself (a C method: no Python frame of ours returns after it).
        ctx.loop_call = tracker.__enter__
        self.tracker = tracker
        _tracking = True
        self.track_t, self.track_steps = time.monotonic(), ctx.steps
        ctx.emit(EventKind.MEMRAY_STARTED, steps=ctx.steps, native=self.native)

    def _end(self, ctx: ProbeContext) -> None:
        global _tracking
        tracker, self.tracker = self.tracker, None
        steps = ctx.steps - self.track_steps
        if ctx.loop_call == tracker.__enter__:
            ctx.loop_call = None
            _tracking = False
            self.skipped = "the steps ended before the step loop could start the tracker"
            return
        stopping = time.monotonic()
        try:
            tracker.__exit__(None, None, None)
        finally:
            _tracking = False
        # The tracker's start and stop (it opens, flushes and closes the capture; figures in
        # docs/profiles.md) hold the steps up too. The stop runs inside this probe call, which
        # the step loop already counts as the probe's: the slowdown runs up to the stop.
        self.ended = True
        self.tracked_s, self.tracked_steps = time.monotonic() - self.track_t, steps
        if self.rate_before:
            self.slowdown_s = max(0.0, stopping - self.track_t - steps / self.rate_before)

    def finish(self, ctx: ProbeContext) -> None:
        if self.tracker is not None:
            self._end(ctx)
        if not self.ended:
            reason = self.skipped or "the run ended before the traced part at its end began"
            ctx.emit(EventKind.MEMRAY_CAPTURE, captured=False, native=self.native, reason=reason)
            return
        seconds, steps = self.tracked_s, self.tracked_steps
        folder = ctx.artifacts / "memray"
        capture = folder / "capture.bin"
        record: dict[str, Any] = {
            "captured": True,
            "native": self.native,
            "steps": steps,
            "first_step": self.track_steps,
            "stopped_early": self.stopped_early,
            "seconds": round(seconds, 3),
            "slowdown_s": round(self.slowdown_s, 3),
            "capture": "artifacts/memray/capture.bin",
            "capture_bytes": capture.stat().st_size if capture.exists() else None,
            "flamegraph": None,
            "stats": None,
            "errors": [],
        }
        began = time.monotonic()
        reports = {
            "flamegraph": (
                "leaks-flamegraph.html",
                ["flamegraph", "--leaks", "--no-web", "-f", "-o"],
            ),
            "stats": ("stats.json", ["stats", "--json", "-f", "-o"]),
        }
        for key, (filename, args) in reports.items():
            out = folder / filename
            error = self._memray(args + [str(out), str(capture)])
            if error is None and out.exists():
                record[key] = f"artifacts/memray/{filename}"
            else:
                record["errors"].append(f"memray {args[0]}: {error or 'no output written'}")
        try:
            record["top_leaks"] = self.top_leaks(capture)
        except Exception as exc:
            support.record_failure(ctx, self.name, "reading leaked allocations", exc)
            record["top_leaks"] = []
        record["reports_s"] = round(time.monotonic() - began, 3)
        ctx.emit(EventKind.MEMRAY_CAPTURE, **record)

    def _memray(self, args: list[str]) -> str | None:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "memray", *args],
                capture_output=True,
                text=True,
                timeout=self.REPORT_TIMEOUT_S,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if done.returncode != 0:
            return (done.stderr or done.stdout).strip()[-500:] or f"exit code {done.returncode}"
        return None

    def top_leaks(self, capture: Path) -> list[dict[str, Any]]:
        """The largest allocations still alive when tracking stopped, by the frame :func:`blame`
        picks."""
        from memray import FileReader

        reader = FileReader(str(capture))
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for record in reader.get_leaked_allocation_records(merge_threads=True):
            stack = record.stack_trace()  # most recent first: (function, file, line)
            if not stack:
                continue
            frames = [(filename, line) for _function, filename, line in reversed(stack)]
            blamed = blame(frames, self.classifier)
            if blamed is None:
                continue  # leaklab's own allocation
            (filename, line), user = blamed
            entry = found.get((filename, line))
            if entry is None:
                function = next(f for f, name, n in stack if (name, n) == (filename, line))
                entry = found[(filename, line)] = {
                    "site": f"{short_path(filename)}:{line}",
                    "file": filename,
                    "line": line,
                    "function": function,
                    "user": user,
                    "kind": self.classifier.kind(filename),
                    "size": 0,
                    "count": 0,
                    "alloc": f"{short_path(stack[0][1])}:{stack[0][2]}",
                }
            entry["size"] += record.size
            entry["count"] += record.n_allocations
        del reader
        return sorted(found.values(), key=lambda entry: entry["size"], reverse=True)[: self.TOP]

    def overhead(self) -> dict[str, float]:
        return {"slowdown_s": round(self.slowdown_s, 6), "traced_s": round(self.tracked_s, 6)}


class MemrayNativeProbe(MemrayProbe):
    name = "memray-native"
    native = True
