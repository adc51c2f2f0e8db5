"""In-child probes: one module per probe behind the small :class:`Probe` interface.

The child's step loop calls every active probe at fixed points:

* ``start(ctx)`` once, after ``setup`` and before the first step;
* ``warmup_end(ctx)`` once, when the warm-up is over (the baseline moment);
* ``sample(ctx)`` at every sample: cheap, returns extra sample columns (``columns``);
* ``tick(ctx)`` right after each sample: may take a snapshot when one is due;
* ``finish(ctx)`` once, after the last step and before ``teardown`` (deep work goes here).

A probe must never keep references to the scenario's objects after it returns:
it would change the memory behaviour it measures. A probe that raises is
recorded as a ``probe_error`` event and switched off; the run goes on. A probe
that can carry on after a failed snapshot records a ``snapshot_error`` event instead.

A probe that needs to act between samples (a short tracing window, a start a few steps
before the end) asks for an extra ``tick`` with :meth:`ProbeContext.wake`, at a time or at a
step count; the step loop checks both after every step. ``overhead()`` adds the probe's own
cost estimates (for costs that slow the steps down rather than take time inside its calls) to
the ``probe_overhead`` event and ``meta.json``.

Profile levels (``--profile``):

``rss``
    nothing in the child: RSS/USS from outside plus the child's cheap counters.
``default``
    names the culprit cheaply: tracemalloc in short duty-cycled windows, gc type
    counts at a cadence set by their measured cost, and retention chains for the
    top growing types at the end (and on ``SIGUSR1``).
``deep``
    the default probes plus pympler size summaries and a memray capture over the
    last part of the run, turned into memray's leak flame graph and stats.

Each snapshotting probe spends a share of the run, its ``BUDGET``; the shares add up to
what a profile may cost the steps (``benchmarks/profiler_overhead.py``): the default
probes' 2.5 % and 1.5 %, with the sampling's own cost, stay within 5 % of the bare step
rate, and the deep profile's additions (pympler 2 %, memray 5 % of the stretch after the
warm-up) within what ``memray run`` costs on the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ProbeContext:
    """What a probe may use: where to write, how to emit events, and the run's progress."""

    artifacts: Path
    emit: Callable[..., None]  # emit(kind, **fields) -> an event in events.jsonl
    options: dict[str, Any] = field(default_factory=dict)
    state: Any = None  # the scenario's state (read-only use; do not keep it)
    steps: int = 0
    t: float = 0.0
    warmup_done: bool = False
    #: what the run will do: ``steps``, ``duration_s`` (either may be None), ``warmup``
    #: (``{"steps": n}``, ``{"seconds": s}`` or empty), ``scenario_path``; once the steps begin,
    #: ``started`` (their time.monotonic(), from which ``duration_s`` counts)
    plan: dict[str, Any] = field(default_factory=dict)
    #: time.monotonic() deadline for an extra tick (see :meth:`wake`); None: none asked
    wake_at: float | None = None
    #: step count at which to tick too (see :meth:`wake`); None: none asked
    wake_steps: int | None = None
    #: the steps are over: set for the final sample, before ``finish``
    done: bool = False
    #: a callable the step loop runs once, between two steps, in its own frame (not
    #: from inside a probe call): memray attributes allocations to the frames it sees
    #: called after it starts, so its tracker must start where the steps are called
    loop_call: Callable[[], Any] | None = None
    #: seconds the latest ``loop_call`` took (None: none made yet)
    loop_call_s: float | None = None
    #: probes that need the warm-up to go on past its planned length (their unreported work,
    #: which must land before the analysed stretch, has not fit in it): the step loop ends the
    #: warm-up when none is left, or at ``runner.child.WARMUP_HOLD_LIMIT`` times its length
    warmup_holds: set[str] = field(default_factory=set)
    #: what the probes called at one moment share (a type count: support.count_types_at); the
    #: step loop sets it for each round of calls and drops it after; None: nothing is shared
    shared: dict[str, Any] | None = None

    def wake(self, at: float | None = None, steps: int | None = None) -> None:
        """Ask for a ``tick`` at monotonic time ``at``, or once the steps reach ``steps`` (of
        each, the earliest request wins). Steps matter where time says little: a rate-bound run
        catching up after a pause runs thousands of steps between two samples."""
        if at is not None and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at
        if steps is not None and (self.wake_steps is None or steps < self.wake_steps):
            self.wake_steps = steps


class Probe:
    name: str = ""
    columns: tuple[str, ...] = ()

    def start(self, ctx: ProbeContext) -> None:
        pass

    def warmup_end(self, ctx: ProbeContext) -> None:
        pass

    def sample(self, ctx: ProbeContext) -> dict[str, float]:
        return {}

    def tick(self, ctx: ProbeContext) -> None:
        pass

    def finish(self, ctx: ProbeContext) -> None:
        pass

    def overhead(self) -> dict[str, float]:
        """Cost estimates beyond the time spent inside the probe's calls (seconds)."""
        return {}


#: name -> "module:Class", imported only when the probe is asked for. Active probes
#: are called in this order: memray first, so its tracker stops at the final sample
#: before the others do their end-of-run work (which it would trace, slowly).
REGISTRY: dict[str, str] = {
    "memray": "leaklab.probes.memray_probe:MemrayProbe",
    "memray-native": "leaklab.probes.memray_probe:MemrayNativeProbe",
    "tracemalloc": "leaklab.probes.tracemalloc_probe:TracemallocProbe",
    "tracemalloc-full": "leaklab.probes.tracemalloc_probe:TracemallocFullProbe",
    "gc-types": "leaklab.probes.gc_types:GcTypesProbe",
    "pympler": "leaklab.probes.pympler_probe:PymplerProbe",
    "retention": "leaklab.probes.retention_probe:RetentionProbe",
}

#: profile level -> probe names (see the module docstring for what each level costs).
PROFILES: dict[str, tuple[str, ...]] = {
    "rss": (),
    "default": ("tracemalloc", "gc-types", "retention"),
    "deep": ("memray", "tracemalloc", "gc-types", "pympler", "retention"),
}
DEFAULT_PROFILE = "default"


def resolve(profile: str | None, explicit: list[str] | None) -> list[str]:
    """Probe names for ``--profile`` plus ``--probe``, in :data:`REGISTRY` order."""
    names = list(PROFILES[profile or DEFAULT_PROFILE])
    for name in explicit or []:
        probe_class(name)
        if name not in names:
            names.append(name)
    order = list(REGISTRY)
    return sorted(names, key=order.index)


def probe_class(name: str) -> type[Probe]:
    import importlib

    if name not in REGISTRY:
        raise KeyError(
            f"unknown probe {name!r}; known probes: {', '.join(sorted(REGISTRY)) or '(none)'}"
        )
    module_name, _, class_name = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(name: str) -> Probe:
    return probe_class(name)()


def columns_of(names: list[str]) -> list[str]:
    """The extra sample columns the named probes add, in order."""
    return [column for name in names for column in probe_class(name).columns]
