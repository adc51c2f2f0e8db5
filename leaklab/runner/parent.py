"""The parent: starts the child, samples it from outside, enforces the memory cap,
handles Ctrl-C, and is the one writer of the run directory.

With ``--recycle`` it also supervises: it restarts the child on a memory limit or
after a crash (:mod:`leaklab.runner.supervisor`), so a run may have several
process *generations* (:mod:`leaklab.runner.generation`). With ``--serve`` the
child is an HTTP service (:mod:`leaklab.runner.service`) and the parent sends it
the load (:mod:`leaklab.runner.load`).

This module holds what a run is asked to do (:class:`RunConfig`, checked into a
:class:`Prepared` by :func:`prepare`), how it ended (:class:`RunResult`) and :func:`run`.
The rest of the parent lives in:

* :mod:`leaklab.runner.spec` -- what the child is told (:class:`~leaklab.runner.spec.ChildSpec`);
* :mod:`leaklab.runner.meta` -- ``meta.json`` as the run starts;
* :mod:`leaklab.runner.session` -- the event loop over the generations;
* :mod:`leaklab.runner.state` -- where the run is (running, stopping, spent, aborted, ended);
* :mod:`leaklab.runner.messages` -- one handler per message type;
* :mod:`leaklab.runner.supervision` -- restarts and load;
* :mod:`leaklab.runner.progress` -- the progress bar.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from leaklab import probes as probe_registry
from leaklab import scenario as scenario_mod
from leaklab import store, units
from leaklab.kinds import Status
from leaklab.records import Look
from leaklab.runner import load as load_mod
from leaklab.runner import meta as meta_mod
from leaklab.runner.generation import ChildMemory, kill_process_group
from leaklab.runner.spec import MIN_INTERVAL_S, MIN_SAMPLES_PER_RUN, SAMPLES_PER_RUN, ChildSpec
from leaklab.runner.supervisor import RecyclePolicy

__all__ = ["ChildMemory", "RunConfig", "RunResult", "kill_process_group", "prepare", "run"]

#: Exit codes of ``leaklab run`` by final status (usage errors exit 2, see cli).
EXIT_CODES: dict[str, int] = {
    Status.COMPLETED: 0,
    Status.FAILED: 1,
    Status.KILLED_AT_CAP: 3,
    Status.TIMED_OUT: 4,
    Status.INTERRUPTED: 130,
}

#: How often the parent checks the cap, independent of the sampling interval.
CAP_POLL_S = 0.1
#: Seconds the child gets to run teardown after a stop request before it is killed.
DEFAULT_STOP_TIMEOUT_S = 10.0
#: With neither --steps nor --duration a run stops once its verdict is confident, or at this.
DEFAULT_MAX_DURATION_S = 300.0
#: Seconds past --duration after which the parent kills whatever is still running (status
#: ``timed_out``): setup, the last step, the probes' finish and teardown must fit in it.
DEFAULT_GRACE_S = 30.0
DEFAULT_INTERVAL_S = 0.5
#: Sampling interval of a run that stops when its verdict is confident (looks need points early).
UNTIL_CONFIDENT_INTERVAL_S = 0.05
#: How long before each look the child forces a collection and samples.
LOOK_LEAD_S = 0.15
#: Warm-up of a run that stops when its verdict is confident (each look also skips 10% of its time).
UNTIL_CONFIDENT_WARMUP_S = 1.0
#: Fraction of the run recorded as warm-up when --warmup is not given.
DEFAULT_WARMUP_FRACTION = 0.1


#: The smallest --max-rss: an idle child (Python, leaklab, psutil) takes about 40 MB.
MIN_MAX_RSS = 64 * 10**6


def default_max_rss() -> int:
    """A quarter of physical memory, at most 4 GiB: a leaking child can't take the host down."""
    return int(min(4 * 2**30, psutil.virtual_memory().total // 4))


#: Threads whose stacks' virtual reservations the address-space backstop leaves room for.
BACKSTOP_THREADS = 4096


def _thread_stack_size() -> int:
    """Bytes of address space one thread's stack reserves: glibc takes RLIMIT_STACK's soft
    limit (8 MiB by default), whatever of it the thread ever touches."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    except (ImportError, ValueError, OSError):
        return 8 * 2**20
    return 8 * 2**20 if soft == resource.RLIM_INFINITY or soft <= 0 else min(soft, 64 * 2**20)


def address_space_backstop(max_rss: int) -> int:
    """RLIMIT_AS for the child: far enough above the RSS cap for virtual reservations to fit
    (the stacks of BACKSTOP_THREADS threads, malloc arenas, mmaps, a runtime's reserved heap),
    low enough to stop one allocation far beyond anything the cap allows. Allocations below it
    are stopped by the parent's polling of RSS (docs/run-format.md: the overshoot measured)."""
    return max(4 * max_rss, max_rss + 8 * 2**30) + BACKSTOP_THREADS * _thread_stack_size()


class StopRule(Protocol):
    """Looks at a run while it records (``leaklab.analysis.sequential`` implements it)."""

    next_at: float  # run time (seconds) of the next look
    looks: int
    times: list[float]  # run times of every look, fixed before the run starts

    def look(self, run_dir: Path, t: float) -> Look: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class RunConfig:
    scenario: str
    variant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    scenario_dirs: list[str] = field(default_factory=list)
    duration_s: float | None = None
    steps: int | None = None
    rate: float | None = None
    interval_s: float = DEFAULT_INTERVAL_S
    warmup: units.StepsOrDuration | None = None
    max_rss: int | None = None
    include_children: bool = False
    out: str = "runs"
    probes: list[str] = field(default_factory=list)
    probe_options: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    max_errors: int = 0
    progress: bool | None = None  # None: only when stderr is a terminal
    argv: list[str] = field(default_factory=list)
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    #: a run with a duration ends at most this long after it, whatever the scenario does
    grace_s: float = DEFAULT_GRACE_S
    #: service mode: the child serves HTTP, the parent sends ``rate`` requests/s for the duration
    #: (or ``steps`` requests)
    serve: bool = False
    request_timeout_s: float = load_mod.DEFAULT_TIMEOUT_S
    #: restart the child on a memory limit and after crashes (None: a crash ends the run)
    recycle: RecyclePolicy | None = None
    #: with neither steps nor duration: the longest the run may take before its verdict is confident
    max_duration_s: float | None = None
    #: with neither steps nor duration: decides when the verdict is confident (see
    #: :class:`StopRule`)
    stop_rule: StopRule | None = None


@dataclass
class RunResult:
    run_dir: Path
    status: str
    steps: int
    duration_s: float
    rss_start: int | None
    rss_end: int | None
    rss_peak: int | None
    errors: int
    message: str = ""
    requests: dict[str, Any] | None = None  # service mode: what the load generator saw
    restarts: dict[str, int] | None = None  # recycled runs: {"memory": n, "crash": n}

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "status": self.status,
            "steps": self.steps,
            "duration_s": round(self.duration_s, 3),
            "rss_start": self.rss_start,
            "rss_end": self.rss_end,
            "rss_peak": self.rss_peak,
            "errors": self.errors,
            "message": self.message,
            **({"requests": self.requests} if self.requests is not None else {}),
            **({"restarts": self.restarts} if self.restarts is not None else {}),
        }


@dataclass
class Prepared:
    """A validated run: the scenario loaded in the parent, every option resolved."""

    config: RunConfig
    scenario: scenario_mod.Scenario
    variant: str | None
    params: dict[str, Any]
    rate: float | None
    duration_s: float | None
    steps: int | None
    warmup: dict[str, Any]
    max_rss: int
    #: seconds between time-driven samples (the asked interval, shortened so a run of set
    #: duration gets about SAMPLES_PER_RUN samples, but not below MIN_INTERVAL_S unless that
    #: leaves fewer than MIN_SAMPLES_PER_RUN)
    sample_interval_s: float = DEFAULT_INTERVAL_S
    #: neither steps nor duration was given: the stop rule ends the run, at max_duration_s at the
    #: latest
    until_confident: bool = False


def prepare(config: RunConfig) -> Prepared:
    """Check everything that can be checked before a process starts; raises ScenarioError."""
    path = scenario_mod.find(config.scenario, config.scenario_dirs)
    scenario = scenario_mod.load(path)
    variant = scenario.resolve_variant(config.variant)
    params = scenario.resolve_params(variant, config.params)
    rate = config.rate
    if rate is None and scenario.default_rate(variant):
        rate = units.parse_rate(scenario.default_rate(variant))
    if config.serve and rate is None:
        raise scenario_mod.ScenarioError(
            "--serve needs a request rate: pass --rate (for example --rate 37/s)"
        )
    length = plan_length(config)
    for probe in config.probes:
        probe_registry.probe_class(probe)  # raises KeyError naming the known probes
    if not config.grace_s >= 0:
        raise scenario_mod.ScenarioError(f"--grace must not be negative, got {config.grace_s:g}s")
    if config.max_rss is not None and config.max_rss < MIN_MAX_RSS:
        raise scenario_mod.ScenarioError(
            f"--max-rss {units.format_size(config.max_rss)} is below what a child takes before "
            "the scenario starts (about 40 MB); the smallest cap is "
            f"{units.format_size(MIN_MAX_RSS)}"
        )
    max_rss = config.max_rss or default_max_rss()
    if config.recycle is not None and config.recycle.limit >= max_rss:
        raise scenario_mod.ScenarioError(
            f"the recycle limit ({units.format_size(config.recycle.limit)}) must be below the "
            f"memory cap ({units.format_size(max_rss)}); raise --max-rss or lower --recycle"
        )
    return Prepared(
        config,
        scenario,
        variant,
        params,
        rate,
        length.duration_s,
        length.steps,
        length.warmup,
        max_rss,
        length.sample_interval_s,
        length.until_confident,
    )


@dataclass
class Length:
    """How long a run goes, what it skips as warm-up, and how often it is sampled by time."""

    duration_s: float | None
    steps: int | None
    warmup: dict[str, Any]
    sample_interval_s: float
    until_confident: bool


def plan_length(config: RunConfig) -> Length:
    """The run's length from its config: steps, a duration, or neither (until the verdict is
    confident, at ``max_duration_s`` at the latest); the warm-up (asked, or a tenth of the run);
    a sampling interval that gives a run of set duration about ``SAMPLES_PER_RUN`` samples, or
    in a short run fewer, ``MIN_INTERVAL_S`` apart (but ``MIN_SAMPLES_PER_RUN`` at least)."""
    duration_s, steps = config.duration_s, config.steps
    if duration_s is not None and not duration_s > 0:
        raise scenario_mod.ScenarioError(
            f"--duration must be positive, got {units.format_duration(duration_s)}"
        )
    until_confident = duration_s is None and steps is None
    if until_confident:
        duration_s = config.max_duration_s or DEFAULT_MAX_DURATION_S
    if config.warmup is not None:
        warmup = (
            {"steps": config.warmup.steps}
            if config.warmup.steps is not None
            else {"seconds": config.warmup.seconds}
        )
    elif until_confident:
        warmup = {
            "seconds": min(UNTIL_CONFIDENT_WARMUP_S, (duration_s or 0) * DEFAULT_WARMUP_FRACTION)
        }
    elif steps is not None:
        warmup = {"steps": int(steps * DEFAULT_WARMUP_FRACTION)}
    else:
        warmup = {"seconds": round((duration_s or 0) * DEFAULT_WARMUP_FRACTION, 3)}
    interval = config.interval_s
    if until_confident:
        interval = min(interval, UNTIL_CONFIDENT_INTERVAL_S)
    elif duration_s is not None:
        least = min(MIN_INTERVAL_S, duration_s / MIN_SAMPLES_PER_RUN)
        interval = min(interval, max(duration_s / SAMPLES_PER_RUN, least))
    return Length(duration_s, steps, warmup, interval, until_confident)


def run(
    config: RunConfig,
    prepared: Prepared | None = None,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
    interrupt: threading.Event | None = None,
) -> RunResult:
    """Run a scenario in a child process and record it; never raises for what the scenario does.

    ``interrupt``, set from another thread, stops the run as SIGINT does (status interrupted)."""
    from leaklab.runner.session import Session  # the session builds on this module's records

    prepared = prepared or prepare(config)
    load = load_config(config, prepared).__dict__ if config.serve else None
    writer = store.RunWriter(
        store.new_run_dir(config.out, prepared.scenario.name, prepared.variant),
        meta_mod.scenario_meta(config, prepared, load),
        list(store.BASE_COLUMNS) + probe_registry.columns_of(config.probes),
    )
    t0 = time.monotonic()
    stdout = open(writer.artifacts / "child-stdout.log", "wb")
    stderr = open(writer.artifacts / "child-stderr.log", "wb")
    session = Session(
        config,
        prepared,
        writer,
        child_spec(config, prepared, str(writer.artifacts), t0),
        t0,
        on_sample,
        stdout,
        stderr,
        interrupt,
    )
    try:
        session.spawn()
        session.loop()
    finally:
        session.shutdown()
        stdout.close()
        stderr.close()
        session.progress.close()
        result = session.finish(store.utc_now())
        writer.close()
    return result


def child_spec(config: RunConfig, prepared: Prepared, artifacts: str, t0: float) -> ChildSpec:
    """What the first generation is told (later ones continue from it: ``Session.spawn``)."""
    scenario = prepared.scenario
    until_confident = prepared.until_confident and config.stop_rule is not None
    return ChildSpec(
        t0=t0,
        artifacts=artifacts,
        interval=prepared.sample_interval_s,
        scenario_path=str(scenario.path),
        variant=prepared.variant,
        params=prepared.params,
        # A service serves until the parent stops it: the load, not the child, bounds the run.
        steps=None if config.serve else prepared.steps,
        duration_s=None if config.serve else prepared.duration_s,
        rate=None if config.serve else prepared.rate,
        warmup=prepared.warmup,
        max_errors=config.max_errors,
        probes=config.probes,
        probe_options=config.probe_options,
        cwd=os.getcwd(),
        sys_path=[str(scenario.path.parent)],
        address_space_limit=address_space_backstop(prepared.max_rss),
        serve=config.serve,
        # What probes are told the run will do: a service's steps are the load's requests.
        plan={"steps": prepared.steps, "duration_s": prepared.duration_s} if config.serve else {},
        drain_timeout_s=config.recycle.kill_timeout_s if config.recycle else config.stop_timeout_s,
        # A look reads the samples so far: one right after a full collection just before it.
        collect_at=[max(t - LOOK_LEAD_S, 0.0) for t in config.stop_rule.times]
        if until_confident
        else [],  # type: ignore[union-attr]
    )


def load_config(config: RunConfig, prepared: Prepared) -> load_mod.LoadConfig:
    """The load a service run sends: the run's rate, for its duration or its steps."""
    return load_mod.LoadConfig(
        rate=float(prepared.rate or 0),
        duration_s=prepared.duration_s,
        max_requests=prepared.steps,
        timeout_s=config.request_timeout_s,
    )
