"""The child process: loads a scenario, runs its steps, reports counters to the parent.

Started by :mod:`leaklab.runner.parent` as ``python -m leaklab.runner.child SPEC_JSON``.
It writes one JSON object per line to the report file descriptor named in the spec:

* ``{"type": "hello", "pid": ..., "columns": [...]}`` after setup (in service mode, once
  the HTTP server listens, with its ``port``: see :mod:`leaklab.runner.service`);
* ``{"type": "sample", "t": ..., "steps": ..., "allocated_blocks": ..., ...}`` every interval;
* ``{"type": "event", "kind": ..., ...}`` for anything else (errors, warm-up end, probes);
* ``{"type": "done", "reason": "completed" | "interrupted" | "failed", ...}`` last.

The child never writes the run directory's main files: the parent is their one writer.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# aiohttp is loaded at start-up whether or not the scenario uses it: service mode and most
# scenarios need it, and a child's idle memory (about 40 MB, which the memory-cap tests and
# docs/testing.md's figures assume) should not depend on which mode or scenario runs.
import aiohttp  # noqa: F401

from leaklab import probes as probe_registry
from leaklab import scenario as scenario_mod
from leaklab.aio import close_loop
from leaklab.kinds import EventKind, Status
from leaklab.runner.heap import BlockCounter, CollectedHeap, ProcessRss
from leaklab.runner.spec import (
    MIN_INTERVAL_S,
    MIN_SAMPLES_PER_RUN,
    SAMPLES_PER_RUN,
    ChildSpec,
)

#: A warm-up that a probe holds (``ProbeContext.warmup_holds``) goes on until the probe lets go,
#: or until it has lasted this many times its planned steps or seconds.
WARMUP_HOLD_LIMIT = 2.0
#: Full tracebacks sent for the first few step errors; after that only counts.
MAX_REPORTED_TRACEBACKS = 5
#: Forced full collections wanted per run (each only when the budget allows it).
COLLECTIONS_PER_RUN = 32
#: Share of the run's time that forced collections may take.
COLLECT_BUDGET = 0.01
#: Share of the run's time that reading allocated blocks may take (it walks the arenas).
BLOCKS_BUDGET = 0.005


class Reporter:
    """Line-delimited JSON to the parent; a broken pipe means the parent is gone."""

    def __init__(self, fd: int, ack_fd: int | None = None) -> None:
        self._fd = fd
        self._ack_fd = ack_fd

    def wait_for_ack(self, timeout: float = 5.0) -> None:
        """Block until the parent has read RSS for the last message (it writes one byte)."""
        if self._ack_fd is None:
            return
        import select

        ready, _, _ = select.select([self._ack_fd], [], [], timeout)
        if ready:
            os.read(self._ack_fd, 1)

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, default=repr) + "\n").encode()
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except (BrokenPipeError, OSError):
            os._exit(70)  # the parent died; nobody is left to stop us

    def event(self, kind: str, t: float | None = None, **fields: Any) -> None:
        self.send({"type": "event", "kind": kind, "t": t, **fields})


def die_with_parent() -> None:
    """On Linux, ask the kernel to kill this process when the parent dies (no orphans)."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _limit_address_space(limit: int | None) -> None:
    """A backstop for allocations faster than the parent's polling: far above the RSS cap."""
    if not limit:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


class StepLoop:
    """Pacing, stop conditions, sampling and warm-up: shared by the sync and async drivers."""

    def __init__(
        self,
        spec: ChildSpec,
        reporter: Reporter,
        state: Any,
        active_probes: list[probe_registry.Probe],
        ctx: probe_registry.ProbeContext,
    ) -> None:
        self.spec = spec
        self.reporter = reporter
        self.state = state
        self.probes = active_probes
        self.ctx = ctx
        self.t0 = float(spec.t0)
        self.max_steps: int | None = spec.steps
        self.duration: float | None = spec.duration_s
        #: time.monotonic() at which to stop whatever the steps say (a recycled run's later
        #: generations)
        self.deadline: float | None = spec.deadline
        self.rate: float | None = spec.rate
        self.interval: float = float(spec.interval)
        #: sample at step boundaries too, so a short step-bounded run still has a trend: every
        #: sample_every steps where MIN_INTERVAL_S has passed since the last sample (a short run's
        #: steps pay for sampling what a long run's pay), and every must_sample_every steps
        self.sample_every: int | None = None
        self.must_sample_every: int | None = None
        if self.max_steps:
            self.sample_every = max(1, self.max_steps // SAMPLES_PER_RUN)
            self.must_sample_every = max(1, self.max_steps // MIN_SAMPLES_PER_RUN)
        self.sample_spacing = min(self.interval, MIN_INTERVAL_S)  # an asked interval may be less
        self.last_sample_at = -math.inf  # time.monotonic() of the last sample
        self.self_rss = ProcessRss()
        #: run times (seconds) at which to force a collection and sample: just before the parent's
        #: looks
        self.collect_at: list[float] = sorted(float(x) for x in spec.collect_at)
        self.blocks = BlockCounter(BLOCKS_BUDGET)
        self.samples_taken = 0
        self.heap = CollectedHeap(
            COLLECT_BUDGET,
            spacing_s=(self.duration / COLLECTIONS_PER_RUN)
            if self.duration
            else (None if self.max_steps else 4 * self.interval),
            spacing_steps=max(1, self.max_steps // COLLECTIONS_PER_RUN) if self.max_steps else None,
        )
        self.max_errors: int = int(spec.max_errors)
        warmup = spec.warmup
        self.warmup_steps: int | None = warmup.get("steps")
        self.warmup_seconds: float | None = warmup.get("seconds")
        self.warmup_done = not self.warmup_steps and not self.warmup_seconds
        ctx.warmup_done = self.warmup_done
        #: probe name -> [seconds inside calls during the steps, seconds inside finish]
        self.probe_seconds: dict[str, list[float]] = {}
        self.all_probes = list(active_probes)
        self.steps = 0
        self.errors = 0
        self.stop_reason: str | None = None
        self.failure: dict[str, Any] | None = None
        self.start = time.monotonic()
        self.next_sample = self.start
        self._loop_call_began = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def wait_time(self) -> float:
        """Seconds to wait before the next step may run (0 when it may run now)."""
        if self.rate is None:
            return 0.0
        due = self.start + self.steps / self.rate
        now = time.monotonic()
        if due <= now:
            return 0.0
        # Wake up in time for a due sample so slow rates are still sampled on schedule.
        return max(0.0, min(due, self.next_sample) - now)

    def warmup_reached(self) -> bool:
        """Whether the warm-up has run its planned steps or seconds, or, while a probe holds it
        (``ProbeContext.warmup_holds``), ``WARMUP_HOLD_LIMIT`` times as many."""
        factor = WARMUP_HOLD_LIMIT if self.ctx.warmup_holds else 1.0
        return (
            self.warmup_steps is not None
            and self.steps >= factor * self.warmup_steps
            or self.warmup_seconds is not None
            and time.monotonic() - self.start >= factor * self.warmup_seconds
        )

    def sample_by_work_due(self) -> bool:
        """Whether a step-bounded run takes a sample after this step (see ``sample_every``)."""
        if self.sample_every is None or self.must_sample_every is None:
            return False
        if self.steps % self.must_sample_every == 0:
            return True
        return (
            self.steps % self.sample_every == 0
            and time.monotonic() - self.last_sample_at >= self.sample_spacing
        )

    def sample_if_due(self) -> None:
        now = time.monotonic()
        if self.collect_at and now - self.t0 >= self.collect_at[0]:
            # The parent looks at the run soon: give it a count after a full collection to end on.
            while self.collect_at and now - self.t0 >= self.collect_at[0]:
                self.collect_at.pop(0)
            if gc.isenabled():
                self.heap.collect()
            self.sample()
            self.next_sample = now + self.interval
        elif now >= self.next_sample:
            self.sample()
            self.next_sample = max(self.next_sample + self.interval, now + self.interval / 2)
        elif self.ctx.wake_at is not None and now >= self.ctx.wake_at:
            self.ctx.wake_at = None
            self.tick()
        elif self.ctx.wake_steps is not None and self.steps >= self.ctx.wake_steps:
            self.ctx.wake_steps = None
            self.tick()

    def tick(self) -> None:
        """A tick a probe asked for (:meth:`ProbeContext.wake`), between samples."""
        self.ctx.steps, self.ctx.t = self.steps, self.now()
        self.call_probes("tick")

    def sample(self, final: bool = False) -> None:
        first = self.samples_taken == 0
        self.samples_taken += 1
        self.last_sample_at = time.monotonic()
        if final or first:
            # The first and last samples pin both ends of the post-collection series; the
            # first one happens before any step, so it is not charged to the budget. (Later
            # samples before the first step, a service waiting for its load, go by the budget.)
            if gc.isenabled():
                self.heap.collect()
                if first and not final:
                    self.heap.spent_s = 0.0
        else:
            self.heap.maybe_collect(self.steps)
        gen0, gen1, gen2 = gc.get_count()
        row: dict[str, Any] = {
            "type": "sample",
            "t": self.now(),
            "steps": self.steps,
            "allocated_blocks": self.blocks.read(force=final or first),
            "child_rss": self.self_rss.read(),
            "gc_gen0": gen0,
            "gc_gen1": gen1,
            "gc_gen2": gen2,
            "gc_collections": sum(s["collections"] for s in gc.get_stats()),
            "errors": self.errors,
        }
        collected = self.heap.take()
        if collected is not None:
            row["collected_blocks"] = collected
        self.ctx.steps, self.ctx.t = self.steps, row["t"]
        self.ctx.done = self.ctx.done or final
        for probe in list(self.probes):
            values = self.call_probe(probe, "sample")
            if values:
                row.update(values)
        if final:
            # The last row must show memory before teardown frees anything.
            row["ack"] = True
        self.reporter.send(row)
        if final:
            self.reporter.wait_for_ack()
        self.call_probes("tick")

    def call_probes(self, method: str) -> None:
        """One round: every active probe's ``method``, sharing what they compute at this moment."""
        self.ctx.shared = {}
        try:
            for probe in list(self.probes):
                self.call_probe(probe, method)
        finally:
            self.ctx.shared = None

    def call_probe(self, probe: probe_registry.Probe, method: str) -> Any:
        started = time.perf_counter()
        try:
            return getattr(probe, method)(self.ctx)
        except Exception as exc:
            self.probes.remove(probe)
            self.ctx.warmup_holds.discard(probe.name)
            self.reporter.event(
                EventKind.PROBE_ERROR,
                self.now(),
                probe=probe.name,
                method=method,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            return None
        finally:
            spent = self.probe_seconds.setdefault(probe.name, [0.0, 0.0])
            spent[method == "finish"] += time.perf_counter() - started

    def probe_overhead(self, loop_s: float) -> dict[str, Any]:
        """Per probe: seconds inside its calls while steps ran, in ``finish``, and its own
        estimates."""
        report: dict[str, Any] = {}
        for probe in self.all_probes:
            during, finish = self.probe_seconds.get(probe.name, [0.0, 0.0])
            entry: dict[str, Any] = {"calls_s": round(during, 6), "finish_s": round(finish, 6)}
            try:
                entry.update(probe.overhead())
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            lost = during + float(entry.get("slowdown_s", 0.0))
            entry["fraction"] = round(lost / loop_s, 6) if loop_s > 0 else None
            report[probe.name] = entry
        return report

    def take_loop_call(self) -> Callable[[], Any] | None:
        """The call a probe left for the step loop (``ProbeContext.loop_call``), taken once.
        The loop makes it itself, in its own frame: a helper here would be the wrong frame."""
        call, self.ctx.loop_call = self.ctx.loop_call, None
        self._loop_call_began = time.perf_counter()
        return call

    def loop_call_done(self) -> None:
        """Record how long the ``loop_call`` just made took (``ProbeContext.loop_call_s``)."""
        self.ctx.loop_call_s = time.perf_counter() - self._loop_call_began

    def loop_call_failed(self, exc: Exception) -> None:
        """A ``loop_call`` that raised: a probe error event; the run goes on."""
        self.reporter.event(
            EventKind.PROBE_ERROR,
            self.now(),
            probe="loop_call",
            method="loop_call",
            error=f"{type(exc).__name__}: {exc}",
        )

    def after_step(self, error: BaseException | None) -> bool:
        """Account for one step; return False when the loop must stop."""
        self.steps += 1
        if error is not None:
            self.errors += 1
            tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            if self.errors <= MAX_REPORTED_TRACEBACKS:
                self.reporter.event(
                    EventKind.STEP_ERROR,
                    self.now(),
                    step=self.steps,
                    error=f"{type(error).__name__}: {error}",
                    traceback=tb,
                )
            if self.errors > self.max_errors:
                self.failure = {
                    "phase": "step",
                    "step": self.steps,
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": tb,
                }
                self.request_stop(Status.FAILED)
        if not self.warmup_done and self.warmup_reached():
            self.warmup_done = True
            self.ctx.warmup_done = True
            self.ctx.steps, self.ctx.t = self.steps, self.now()
            collections = self.heap.natural
            self.call_probes("warmup_end")
            if gc.isenabled() and self.heap.natural == collections:
                self.heap.collect()  # the post-collection count where the analysed window starts
            # Stamped after the probes' baselines and the collection: their pause belongs to the
            # warm-up, not to the start of the analysed stretch (nor to its step rate).
            self.reporter.event(EventKind.WARMUP_END, self.now(), steps=self.steps)
        if (
            self.sample_every is not None  # checked here first: a run of set duration pays no call
            and self.sample_by_work_due()
            and not (self.collect_at and self.now() >= self.collect_at[0])
        ):
            self.sample()
            self.next_sample = time.monotonic() + self.interval
        else:
            self.sample_if_due()
        if (
            self.max_steps is not None
            and self.steps >= self.max_steps
            or self.duration is not None
            and time.monotonic() - self.start >= self.duration
            or self.deadline is not None
            and time.monotonic() >= self.deadline
        ):
            self.request_stop(Status.COMPLETED)
        return self.stop_reason is None

    def run_sync(self, step: Any) -> None:
        self.sample()
        while self.stop_reason is None:
            delay = self.wait_time()
            if delay > 0:
                time.sleep(delay)
                self.sample_if_due()
                continue
            call = self.take_loop_call()
            if call is not None:
                try:
                    call()  # in this frame on purpose: see ProbeContext.loop_call
                except Exception as exc:
                    self.loop_call_failed(exc)
                self.loop_call_done()
            try:
                step(self.state)
            except Exception as exc:
                self.after_step(exc)
            else:
                self.after_step(None)

    async def run_async(self, step: Any) -> None:
        is_coroutine = asyncio.iscoroutinefunction(step)
        self.sample()
        while self.stop_reason is None:
            delay = self.wait_time()
            if delay > 0:
                await asyncio.sleep(delay)
                self.sample_if_due()
                continue
            call = self.take_loop_call()
            if call is not None:
                try:
                    call()  # in this frame on purpose: see ProbeContext.loop_call
                except Exception as exc:
                    self.loop_call_failed(exc)
                self.loop_call_done()
            try:
                if is_coroutine:
                    await step(self.state)
                else:
                    step(self.state)
            except Exception as exc:
                self.after_step(exc)
            else:
                self.after_step(None)


def _call(fn: Any, loop: asyncio.AbstractEventLoop | None, *args: Any, **kwargs: Any) -> Any:
    result = fn(*args, **kwargs)
    if asyncio.iscoroutine(result):
        if loop is None:
            raise TypeError(f"{fn.__name__} returned a coroutine in a sync scenario")
        return loop.run_until_complete(result)
    return result


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class _StopSignals:
    """SIGTERM and SIGINT: the step loop stops before its next step (or before its first)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.step_loop: StepLoop | None = None
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)

    def __call__(self, signum: int, _frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.step_loop is not None:
            self.step_loop.request_stop(Status.INTERRUPTED)

    def attach(self, step_loop: StepLoop) -> None:
        self.step_loop = step_loop
        if self.received:
            step_loop.request_stop(Status.INTERRUPTED)


def _create_probes(spec: ChildSpec, reporter: Reporter, now: Any) -> list[probe_registry.Probe]:
    active: list[probe_registry.Probe] = []
    for name in spec.probes:
        try:
            active.append(probe_registry.create(name))
        except Exception as exc:
            reporter.event(
                EventKind.PROBE_ERROR,
                now(),
                probe=name,
                method="create",
                error=f"{type(exc).__name__}: {exc}",
            )
    return active


def _start_loop(
    spec: ChildSpec, reporter: Reporter, scenario: scenario_mod.Scenario, state: Any, now: Any
) -> tuple[StepLoop, dict[str, Any]]:
    """The probes and the step loop, after setup; says ``hello`` (a service says it once it
    listens)."""
    assert spec.scenario_path is not None
    ctx = probe_registry.ProbeContext(
        artifacts=Path(spec.artifacts),
        emit=lambda kind, **fields: reporter.event(kind, now(), **fields),
        options=dict(spec.probe_options),
        state=state,
        plan={
            "steps": spec.steps,
            "duration_s": spec.duration_s,
            **spec.plan,
            "warmup": spec.warmup,
            "scenario_path": spec.scenario_path,
        },
    )
    active = _create_probes(spec, reporter, now)
    hello = {
        "type": "hello",
        "pid": os.getpid(),
        "columns": [c for p in active for c in p.columns],
        "is_async": scenario.is_async,
        "t": now(),
    }
    if not spec.serve:
        reporter.send(hello)
    return StepLoop(spec, reporter, state, active, ctx), hello


def _drive(
    spec: ChildSpec,
    step_loop: StepLoop,
    scenario: scenario_mod.Scenario,
    loop: asyncio.AbstractEventLoop | None,
    reporter: Reporter,
    hello: dict[str, Any],
) -> None:
    """Run the steps (or serve them) until the loop stops; a failure is recorded, not raised."""
    try:
        if spec.serve:
            from leaklab.runner import service

            assert loop is not None
            drain = (
                spec.drain_timeout_s
                if spec.drain_timeout_s is not None
                else service.DEFAULT_DRAIN_TIMEOUT_S
            )
            loop.run_until_complete(
                service.serve(
                    step_loop,
                    scenario.module,
                    scenario.step,
                    lambda message: reporter.send({**message, "t": step_loop.now()}),
                    hello,
                    float(drain),
                )
            )
        elif loop is not None:
            loop.run_until_complete(step_loop.run_async(scenario.step))
        else:
            step_loop.run_sync(scenario.step)
    except BaseException as exc:  # e.g. MemoryError at the address-space backstop
        step_loop.failure = {
            "phase": "step",
            "step": step_loop.steps,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        step_loop.request_stop(Status.FAILED)


def _wind_down(step_loop: StepLoop, reporter: Reporter) -> None:
    """The final sample (before teardown frees anything), then the collectors' and probes'
    reports."""
    step_loop.sample(final=True)
    loop_s = time.monotonic() - step_loop.start
    step_loop.heap.close()
    step_loop.self_rss.close()
    blocks = step_loop.blocks
    reporter.event(
        EventKind.COLLECTIONS,
        step_loop.now(),
        **step_loop.heap.summary(),
        block_reads=blocks.reads,
        block_reads_skipped=blocks.skipped,
        block_reads_s=round(blocks.spent_s, 6),
    )
    step_loop.call_probes("finish")
    step_loop.ctx.state = None
    if step_loop.all_probes:
        reporter.event(
            EventKind.PROBE_OVERHEAD,
            step_loop.now(),
            loop_s=round(loop_s, 6),
            probes=step_loop.probe_overhead(loop_s),
        )


def _teardown(
    scenario: scenario_mod.Scenario,
    loop: asyncio.AbstractEventLoop | None,
    state: Any,
    step_loop: StepLoop,
) -> dict[str, Any]:
    """Teardown, then the ``done`` message: how the steps ended (a teardown failure fails the
    run)."""
    reason = step_loop.stop_reason or Status.COMPLETED
    done: dict[str, Any] = {
        "type": "done",
        "reason": reason,
        "steps": step_loop.steps,
        "errors": step_loop.errors,
    }
    if step_loop.failure:
        done.update(step_loop.failure)
    if scenario.teardown is not None:
        try:
            _call(scenario.teardown, loop, state)
        except Exception as exc:
            if reason != Status.FAILED:
                done.update(
                    reason=Status.FAILED,
                    phase="teardown",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=_traceback(exc),
                )
    if loop is not None:
        close_loop(loop)
    return done


def run(spec: ChildSpec) -> int:
    """Load, set up, run the steps, tear down; every outcome ends in a ``done`` message."""
    assert spec.report_fd is not None and spec.scenario_path is not None
    reporter = Reporter(int(spec.report_fd), spec.ack_fd)

    def now() -> float:
        return time.monotonic() - spec.t0

    def fail(phase: str, exc: BaseException) -> int:
        reporter.send(
            {
                "type": "done",
                "reason": Status.FAILED,
                "phase": phase,
                "steps": 0,
                "t": now(),
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": _traceback(exc),
            }
        )
        return 1

    try:
        scenario = scenario_mod.load(spec.scenario_path)
    except scenario_mod.ScenarioError as exc:
        return fail("load", exc)
    # A service needs an event loop for its HTTP server whether the scenario is async or not.
    loop = asyncio.new_event_loop() if scenario.is_async or spec.serve else None
    if loop is not None:
        asyncio.set_event_loop(loop)
    stops = _StopSignals()
    try:
        setup = scenario.setup
        state = (
            _call(setup, loop, **scenario.setup_kwargs(spec.variant, spec.params))
            if setup
            else None
        )
    except Exception as exc:
        return fail("setup", exc)
    step_loop, hello = _start_loop(spec, reporter, scenario, state, now)
    stops.attach(step_loop)
    for probe in list(step_loop.probes):
        step_loop.call_probe(probe, "start")
    # The run's time (its duration, the probes' view of how far it has got) starts with the steps.
    step_loop.start = step_loop.next_sample = time.monotonic()
    step_loop.ctx.plan["started"] = step_loop.start
    _drive(spec, step_loop, scenario, loop, reporter, hello)
    _wind_down(step_loop, reporter)
    done = _teardown(scenario, loop, state, step_loop)
    done["t"] = now()
    reporter.send(done)
    return (
        0
        if done["reason"] == Status.COMPLETED
        else (130 if done["reason"] == Status.INTERRUPTED else 1)
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = ChildSpec.from_dict(json.loads(argv[0]))
    die_with_parent()
    _limit_address_space(spec.address_space_limit)
    if spec.cwd:
        os.chdir(spec.cwd)
    for path in reversed(spec.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
