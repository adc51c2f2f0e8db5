"""The parent: starts the child, samples it from outside, enforces the memory cap,
handles Ctrl-C, and is the one writer of the run directory.

With ``--recycle`` it also supervises: it restarts the child on a memory limit or
after a crash (:mod:`leaklab.runner.supervisor`), so a run may have several
process *generations* (:mod:`leaklab.runner.generation`). With ``--serve`` the
child is an HTTP service (:mod:`leaklab.runner.service`) and the parent sends it
the load (:mod:`leaklab.runner.load`)."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import psutil

from leaklab import probes as probe_registry
from leaklab import scenario as scenario_mod
from leaklab import store, units
from leaklab.runner import load as load_mod
from leaklab.runner.generation import ChildMemory, Generation, Message, kill_process_group
from leaklab.runner.supervisor import CrashLimit, RecyclePolicy, Restart, Supervisor

__all__ = ["ChildMemory", "RunConfig", "RunResult", "kill_process_group", "prepare", "run"]

#: Exit codes of ``leaklab run`` by final status (usage errors exit 2, see cli).
EXIT_CODES = {"completed": 0, "failed": 1, "killed_at_cap": 3, "timed_out": 4, "interrupted": 130}

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
#: A run of known length is sampled about this many times (at least every interval).
SAMPLES_PER_RUN = 200
#: The shortest sampling interval the parent asks for.
MIN_INTERVAL_S = 0.01
#: Sampling interval of a run that stops when its verdict is confident (looks need points early).
UNTIL_CONFIDENT_INTERVAL_S = 0.05
#: How long before each look the child forces a collection and samples.
LOOK_LEAD_S = 0.15
#: Warm-up of a run that stops when its verdict is confident (each look also skips 10% of its time).
UNTIL_CONFIDENT_WARMUP_S = 1.0
#: Fraction of the run recorded as warm-up when --warmup is not given.
DEFAULT_WARMUP_FRACTION = 0.1

_VERSIONED = ("psutil", "click", "numpy", "scipy", "pandas", "matplotlib", "aiohttp", "requests", "urllib3", "httpx", "objgraph", "pympler", "memray")


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


@dataclass
class Look:
    """What one look at the data so far says: stop or not, and a line for the progress bar."""

    decided: bool
    text: str
    #: where the analysed window started ({"t": ..., "steps": ...}): recorded as the warm-up's end
    window_start: dict[str, Any] | None = None
    label: str = ""
    #: the analysed window's last row ({"t": ..., "steps": ...}): later analyses end there too
    window_end: dict[str, Any] | None = None


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
    #: service mode: the child serves HTTP, the parent sends ``rate`` requests/s for the duration (or ``steps`` requests)
    serve: bool = False
    request_timeout_s: float = load_mod.DEFAULT_TIMEOUT_S
    #: restart the child on a memory limit and after crashes (None: a crash ends the run)
    recycle: RecyclePolicy | None = None
    #: with neither steps nor duration: the longest the run may take before its verdict is confident
    max_duration_s: float | None = None
    #: with neither steps nor duration: decides when the verdict is confident (see :class:`StopRule`)
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
    #: seconds between time-driven samples (the asked interval, shortened so a run of known
    #: length gets about SAMPLES_PER_RUN samples)
    sample_interval_s: float = DEFAULT_INTERVAL_S
    #: neither steps nor duration was given: the stop rule ends the run, at max_duration_s at the latest
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
        raise scenario_mod.ScenarioError("--serve needs a request rate: pass --rate (for example --rate 37/s)")
    length = plan_length(config)
    for probe in config.probes:
        probe_registry.probe_class(probe)  # raises KeyError naming the known probes
    if not config.grace_s >= 0:
        raise scenario_mod.ScenarioError(f"--grace must not be negative, got {config.grace_s:g}s")
    if config.max_rss is not None and config.max_rss < MIN_MAX_RSS:
        raise scenario_mod.ScenarioError(
            f"--max-rss {units.format_size(config.max_rss)} is below what a child takes before the scenario starts "
            f"(about 40 MB); the smallest cap is {units.format_size(MIN_MAX_RSS)}")
    max_rss = config.max_rss or default_max_rss()
    if config.recycle is not None and config.recycle.limit >= max_rss:
        raise scenario_mod.ScenarioError(
            f"the recycle limit ({units.format_size(config.recycle.limit)}) must be below the memory cap "
            f"({units.format_size(max_rss)}); raise --max-rss or lower --recycle")
    return Prepared(config, scenario, variant, params, rate, length.duration_s, length.steps, length.warmup, max_rss,
                    length.sample_interval_s, length.until_confident)


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
    a sampling interval that gives a run of set duration about ``SAMPLES_PER_RUN`` samples."""
    duration_s, steps = config.duration_s, config.steps
    if duration_s is not None and not duration_s > 0:
        raise scenario_mod.ScenarioError(f"--duration must be positive, got {units.format_duration(duration_s)}")
    until_confident = duration_s is None and steps is None
    if until_confident:
        duration_s = config.max_duration_s or DEFAULT_MAX_DURATION_S
    if config.warmup is not None:
        warmup = {"steps": config.warmup.steps} if config.warmup.steps is not None else {"seconds": config.warmup.seconds}
    elif until_confident:
        warmup = {"seconds": min(UNTIL_CONFIDENT_WARMUP_S, (duration_s or 0) * DEFAULT_WARMUP_FRACTION)}
    elif steps is not None:
        warmup = {"steps": int(steps * DEFAULT_WARMUP_FRACTION)}
    else:
        warmup = {"seconds": round((duration_s or 0) * DEFAULT_WARMUP_FRACTION, 3)}
    interval = config.interval_s
    if until_confident:
        interval = min(interval, UNTIL_CONFIDENT_INTERVAL_S)
    elif duration_s is not None:
        interval = min(interval, max(duration_s / SAMPLES_PER_RUN, MIN_INTERVAL_S))
    return Length(duration_s, steps, warmup, interval, until_confident)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("leaklab", *_VERSIONED):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "memory_total": psutil.virtual_memory().total,
    }


class _Progress:
    MIN_REFRESH_S = 0.1

    def __init__(self, prepared: Prepared, enabled: bool | None) -> None:
        from tqdm import tqdm

        self.by_steps = prepared.steps is not None
        total = prepared.steps if self.by_steps else prepared.duration_s
        self.bar = tqdm(
            total=total, unit="step" if self.by_steps else "s", disable=(None if enabled is None else not enabled),
            desc=f"{prepared.scenario.name}" + (f" [{prepared.variant}]" if prepared.variant else ""),
            dynamic_ncols=True, leave=True, file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )
        self.refreshed = -math.inf
        self.look = ""

    def update(self, t_steps: float, steps: int, rate: float, rss: int | None, growth: int | None) -> None:
        now = time.monotonic()
        if now - self.refreshed < self.MIN_REFRESH_S:
            return  # samples can come hundreds of times a second; a terminal needs ten
        self.refreshed = now
        target = steps if self.by_steps else min(t_steps, self.bar.total or t_steps)
        self.bar.n = round(target, 1) if not self.by_steps else target
        text = f"steps={steps} {rate:,.0f}/s rss={units.format_size(rss)} growth={units.format_size(growth, signed=True)}"
        if self.look:
            text += f" | {self.look}"
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.refresh()

    def note(self, look: str) -> None:
        """The latest look's estimate and how close it is to a decision."""
        self.look = look

    def close(self) -> None:
        self.bar.close()


def run(config: RunConfig, prepared: Prepared | None = None, on_sample: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Run a scenario in a child process and record it; never raises for what the scenario does."""
    prepared = prepared or prepare(config)
    scenario = prepared.scenario
    run_dir = store.new_run_dir(config.out, scenario.name, prepared.variant)
    columns = list(store.BASE_COLUMNS) + probe_registry.columns_of(config.probes)
    started = store.utc_now()
    meta = {
        "scenario": scenario.name,
        "scenario_path": str(scenario.path),
        "description": scenario.description,
        "variant": prepared.variant,
        "params": prepared.params,
        "argv": config.argv,
        "versions": _versions(),
        "host": _host(),
        "start": store.iso(started),
        "end": None,
        "status": "running",
        "config": {
            "duration_s": prepared.duration_s,
            "steps": prepared.steps,
            "rate": prepared.rate,
            "interval_s": config.interval_s,
            "sample_interval_s": prepared.sample_interval_s,
            "until_confident": prepared.until_confident,
            "stop_rule": config.stop_rule.describe() if prepared.until_confident and config.stop_rule else None,
            "warmup": prepared.warmup,
            "max_rss": prepared.max_rss,
            "grace_s": config.grace_s if prepared.duration_s is not None else None,
            "include_children": config.include_children,
            "profile": config.profile,
            "probes": config.probes,
            "max_errors": config.max_errors,
            "serve": config.serve,
            "recycle": config.recycle.to_dict() if config.recycle else None,
            "load": _load_config(config, prepared).__dict__ if config.serve else None,
        },
        "counters": {},
    }
    writer = store.RunWriter(run_dir, meta, columns)
    t0 = time.monotonic()
    spec = {
        "scenario_path": str(scenario.path),
        "variant": prepared.variant,
        "params": prepared.params,
        # A service serves until the parent stops it: the load, not the child, bounds the run.
        "steps": None if config.serve else prepared.steps,
        "duration_s": None if config.serve else prepared.duration_s,
        "rate": None if config.serve else prepared.rate,
        "interval": prepared.sample_interval_s,
        "warmup": prepared.warmup,
        "max_errors": config.max_errors,
        "probes": config.probes,
        "probe_options": config.probe_options,
        "artifacts": str(writer.artifacts),
        "t0": t0,
        "cwd": os.getcwd(),
        "sys_path": [str(scenario.path.parent)],
        "address_space_limit": address_space_backstop(prepared.max_rss),
        "serve": config.serve,
        # What probes are told the run will do: a service's steps are the load's requests.
        "plan": {"steps": prepared.steps, "duration_s": prepared.duration_s} if config.serve else {},
        "drain_timeout_s": config.recycle.kill_timeout_s if config.recycle else config.stop_timeout_s,
        # A look reads the samples so far: one right after a full collection just before it.
        "collect_at": [max(t - LOOK_LEAD_S, 0.0) for t in config.stop_rule.times]
        if prepared.until_confident and config.stop_rule else [],
    }
    stdout = open(writer.artifacts / "child-stdout.log", "wb")
    stderr = open(writer.artifacts / "child-stderr.log", "wb")
    session = _Session(config, prepared, writer, spec, t0, on_sample, stdout, stderr)
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


def _load_config(config: RunConfig, prepared: Prepared) -> load_mod.LoadConfig:
    return load_mod.LoadConfig(rate=float(prepared.rate or 0), duration_s=prepared.duration_s,
                               max_requests=prepared.steps, timeout_s=config.request_timeout_s)


class _Session:
    """The parent's event loop over the run's child processes (one, unless recycled)."""

    def __init__(self, config: RunConfig, prepared: Prepared, writer: store.RunWriter, spec: dict[str, Any], t0: float,
                 on_sample: Callable[[dict[str, Any]], None] | None, stdout: Any, stderr: Any) -> None:
        self.config = config
        self.prepared = prepared
        self.writer = writer
        self.spec = spec
        self.t0 = t0
        self.on_sample = on_sample
        self.stdout = stdout
        self.stderr = stderr
        self.messages: queue.Queue[Message] = queue.Queue()
        self.generations: list[Generation] = []
        self.current: Generation | None = None  # the newest generation: the one sampled
        self.progress = _Progress(prepared, config.progress)
        self.status: str | None = None
        self.message = ""
        self.rss_start: int | None = None
        self.rss_end: int | None = None
        self.rss_peak: int | None = None
        self.last_sample_t = 0.0
        #: generations whose final sample is in: their probes and teardown run now, not the scenario
        self.finishing: set[int] = set()
        self.interrupts = 0
        self.final_stop = False  # the parent asked the service to stop: the load is over
        self.ended = False  # a recycled run that must not restart again
        self.supervisor = Supervisor(config.recycle) if config.recycle else None
        self.unwritten: dict[int, Restart] = {}  # restarts whose old generation is still stopping
        self.load: load_mod.LoadGenerator | None = None
        self.deadline: float | None = None  # time.monotonic() when a recycled step run must end
        self.base_steps = 0  # steps of the generations before the current one
        self.base_errors = 0
        self.stop_rule = config.stop_rule if prepared.until_confident else None
        self.decided: Look | None = None  # the look that found the verdict confident
        self.last_uss_t = -math.inf
        #: time.monotonic() after which nothing of the run may still run: --duration plus the grace
        self.hard_deadline: float | None = (
            t0 + prepared.duration_s + config.grace_s if prepared.duration_s is not None else None)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def load_config(self) -> load_mod.LoadConfig:
        """The load to send (a hook: a command run sends it to the program's own path)."""
        return _load_config(self.config, self.prepared)

    def record_request(self, row: dict[str, Any]) -> None:
        """One request's result, from the load generator's thread (a hook: a command run counts them)."""
        self.writer.request(row)

    @property
    def steps(self) -> int:
        return sum(g.steps for g in self.generations)

    @property
    def errors(self) -> int:
        return sum(g.errors for g in self.generations)

    def _live(self) -> list[Generation]:
        return [g for g in self.generations if g.t_exit is None]

    # -- processes ---------------------------------------------------------------------------

    def spawn(self) -> Generation:
        number = len(self.generations)
        spec = dict(self.spec)
        if number > 0:
            # Later generations continue the run: no second warm-up, what is left of the budget,
            # and their own artifacts folder so probe files do not overwrite each other.
            spec.update(warmup={}, duration_s=None, deadline=self.deadline)
            if self.config.probes:
                artifacts = self.writer.artifacts / f"gen-{number}"
                artifacts.mkdir(exist_ok=True)
                spec["artifacts"] = str(artifacts)
            if spec.get("steps") is not None:
                spec["steps"] = max(1, int(self.prepared.steps or 0) - self.steps)
        self.base_steps, self.base_errors = self.steps, self.errors
        gen = Generation.spawn(number, spec, self.messages, self.stdout, self.stderr, self.now(), self.config.include_children)
        self.generations.append(gen)
        self.current = gen
        self.writer.event("start", gen.t_spawn, pid=gen.pid, **self._tag(gen))
        return gen

    def _tag(self, gen: Generation) -> dict[str, Any]:
        """Events of a recycled run name their generation; a plain run's events stay as they were."""
        return {"generation": gen.number} if self.supervisor is not None or gen.number else {}

    def _stop(self, gen: Generation, why: str, sig: int, timeout_s: float) -> None:
        gen.stop_requested = why
        if sig == signal.SIGKILL:
            gen.killed = True
            gen.kill_group()
            return
        gen.send_signal(sig)
        gen.stop_deadline = min(gen.stop_deadline or math.inf, time.monotonic() + timeout_s)

    def shutdown(self) -> None:
        if self.load is not None:
            self.load.stop()
        for gen in self.generations:
            gen.release()  # its reaper kills anything the scenario started, in any session
            gen.kill_group()
        if self.load is not None:
            self.load.join(timeout=self.config.request_timeout_s + 5)
            self._load_end()

    # -- the loop ----------------------------------------------------------------------------

    def loop(self) -> None:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            next_cap_check = 0.0
            while True:
                timeout = CAP_POLL_S
                if self.supervisor is not None:  # wake up on time for the next memory check
                    timeout = max(0.0, min(timeout, self.supervisor.clock.next_at - self.now()))
                try:
                    number, message = self.messages.get(timeout=timeout)
                except queue.Empty:
                    pass
                else:
                    gen = self.generations[number]
                    if message is None:
                        gen.eof = True
                    else:
                        self._handle(gen, message)
                for gen in self.generations:
                    if gen.t_exit is None and gen.finished:
                        self._on_exit(gen)
                now = self.now()
                if now >= next_cap_check and self.status is None:
                    self._check_cap()
                    next_cap_check = now + CAP_POLL_S
                current = self.current
                if (self.status is None and current is not None and current.alive
                        and now - self.last_sample_t >= max(2 * self.prepared.sample_interval_s, CAP_POLL_S)
                        and current.number not in self.finishing):
                    self._write_sample(current, {})  # the child is busy in setup or a long step: RSS still counts
                self._enforce_deadlines()
                if self.load is not None and self.load.finished.is_set() and not self.final_stop and self.status is None:
                    self._stop_service()
                if self.supervisor is not None and self.status is None and not self.final_stop and not self.ended:
                    self._supervise(now)
                if self.stop_rule is not None and self.decided is None and self.status is None and now >= self.stop_rule.next_at:
                    self._look(now)
                if self._over():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _look(self, now: float) -> None:
        """Ask the stop rule about the samples so far; stop the run once it is confident."""
        assert self.stop_rule is not None
        try:
            look = self.stop_rule.look(self.writer.path, now)
        except Exception as exc:  # a look that fails must not end the recording
            self.writer.event("look_error", now, error=f"{type(exc).__name__}: {exc}")
            self.stop_rule = None
            return
        self.progress.note(look.text)
        if not look.decided:
            return
        self.decided = look
        self.writer.event("decided", now, label=look.label, looks=self.stop_rule.looks, text=look.text,
                          window_start=look.window_start)
        if look.window_start:
            self.writer.update_meta(warmup_end=look.window_start)
        self.writer.update_meta(decided={"label": look.label, "t": round(now, 6), "looks": self.stop_rule.looks,
                                         "window_end": getattr(look, "window_end", None)})
        if self.load is not None:
            self.load.stop()  # the service run then ends as when its load is over
            return
        for gen in self._live():
            self._stop(gen, "decided", signal.SIGTERM, self.config.stop_timeout_s)

    def _over(self) -> bool:
        # Exit handled, not just finished: a child that exits between the loop's exit check
        # and this one would otherwise end the run without its exit (and restart) events.
        if any(g.t_exit is None for g in self.generations):
            return False
        if self.supervisor is None:
            return True
        return self.status is not None or self.final_stop or self.ended

    def _enforce_deadlines(self) -> None:
        if self.hard_deadline is not None and time.monotonic() > self.hard_deadline and self._live():
            self._timed_out()
        for gen in self._live():
            if gen.stop_deadline is not None and time.monotonic() > gen.stop_deadline and gen.alive:
                if gen.stop_requested == "restart" and self.config.recycle is not None:
                    self.writer.event("killed", self.now(), reason="kill timeout", timeout_s=self.config.recycle.kill_timeout_s, **self._tag(gen))
                else:
                    self.writer.event("killed", self.now(), reason="stop timeout", timeout_s=self.config.stop_timeout_s, **self._tag(gen))
                gen.killed = True
                gen.kill_group()

    def _timed_out(self) -> None:
        """The run is past --duration plus the grace: kill what is left, say where it was stuck."""
        self.hard_deadline = None
        duration, grace = self.prepared.duration_s or 0.0, self.config.grace_s
        stuck = {gen.number: self._phase(gen) for gen in self._live()}
        if self.status is None:
            self.status = "timed_out"
            where = ", ".join(sorted(set(stuck.values())))
            self.message = (f"still running {units.format_duration(duration)} (--duration) + "
                            f"{units.format_duration(grace)} (grace) after the start, in {where}; killed")
        self.writer.event("timed_out", self.now(), duration_s=duration, grace_s=grace,
                          phases={str(n): phase for n, phase in stuck.items()})
        if self.load is not None:
            self.load.stop()
        for gen in self._live():
            gen.killed = True
            gen.kill_group()

    def _phase(self, gen: Generation) -> str:
        """Where a live generation is, from what it has said."""
        if gen.done is not None:
            return "teardown"
        if gen.t_ready is None:
            return "setup"
        return "the probes' finish" if gen.number in self.finishing else "a step"

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.interrupts += 1
        if self.status is None:
            self.status = "interrupted"
            self.message = f"stopped by {signal.Signals(signum).name}"
        self.writer.event("interrupt", self.now(), signal=signal.Signals(signum).name)
        if self.load is not None:
            self.load.stop()
        for gen in self._live():
            if self.interrupts == 1:
                gen.stop_requested = gen.stop_requested or "interrupt"
                gen.kill_group(signal.SIGTERM)
                gen.stop_deadline = time.monotonic() + self.config.stop_timeout_s
            else:
                gen.kill_group()

    def _check_cap(self) -> None:
        for gen in self._live():
            rss = gen.memory.rss()
            if rss is None:
                continue
            self.rss_peak = max(self.rss_peak or 0, rss)
            if rss > self.prepared.max_rss:
                self.status = "killed_at_cap"
                self.message = f"RSS {units.format_size(rss)} crossed the cap of {units.format_size(self.prepared.max_rss)}"
                if gen is self.current:
                    self._write_sample(gen, {}, rss=rss)
                self.writer.event("killed_at_cap", self.now(), rss=rss, max_rss=self.prepared.max_rss, **self._tag(gen))
                if self.load is not None:
                    self.load.stop()
                for other in self._live():
                    other.kill_group()
                return

    # -- messages ----------------------------------------------------------------------------

    def _handle(self, gen: Generation, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "sample":
            if gen is self.current:
                self._write_sample(gen, message)
            else:
                gen.steps = int(message.get("steps", gen.steps))
                gen.errors = int(message.get("errors", gen.errors))
            if message.get("ack"):
                gen.ack()
                self.finishing.add(gen.number)
        elif kind == "hello":
            gen.t_ready = self.now()
            gen.port = message.get("port")
            fields = {"port": gen.port} if gen.port is not None else {}
            self.writer.event("ready", message.get("t"), pid=message.get("pid"), is_async=message.get("is_async"), **fields, **self._tag(gen))
            if gen.number == 0 and self.prepared.duration_s is not None and not self.config.serve:
                self.deadline = time.monotonic() + self.prepared.duration_s
            if self.config.serve and gen.port is not None:
                timeout = self.config.recycle.health_timeout_s if self.config.recycle else self.config.stop_timeout_s * 3
                gen.check_health(self.messages, self.t0, timeout)
            elif not self.config.serve:
                self._on_healthy(gen)
        elif kind == "healthy":
            if message.get("ok"):
                self.writer.event("healthy", message.get("t"), port=message.get("port"), **self._tag(gen))
                self._on_healthy(gen)
            elif gen.alive and gen.stop_requested is None:
                self.writer.event("unhealthy", message.get("t"), port=message.get("port"), **self._tag(gen))
                if self.supervisor is None and self.status is None:
                    self.status = "failed"
                    self.message = f"the service never answered {load_mod.HOST}:{gen.port}/health; see artifacts/child-stderr.log"
                gen.killed = True
                gen.kill_group()  # a recycled run restarts it like a crash
        elif kind == "event":
            fields = {k: v for k, v in message.items() if k not in ("type", "kind", "t")}
            self.writer.event(str(message.get("kind")), message.get("t"), **fields, **self._tag(gen))
            if message.get("kind") == "warmup_end" and gen.number == 0:
                self.writer.update_meta(warmup_end={"t": message.get("t"), "steps": message.get("steps")})
            elif message.get("kind") == "probe_overhead":
                self.writer.update_meta(probe_overhead={"loop_s": message.get("loop_s"), "probes": message.get("probes") or {}})
        elif kind == "done":
            gen.done = message
            gen.steps = int(message.get("steps", gen.steps))
            gen.errors = int(message.get("errors", gen.errors))
            if message.get("traceback"):
                (self.writer.artifacts / "traceback.txt").write_text(str(message["traceback"]), encoding="utf-8")
            self.writer.event("done", message.get("t"), **{k: v for k, v in message.items() if k not in ("type", "t")}, **self._tag(gen))
            gen.stop_deadline = min(gen.stop_deadline or math.inf, time.monotonic() + self.config.stop_timeout_s)

    def _write_sample(self, gen: Generation, message: dict[str, Any], rss: int | None = None) -> None:
        t = self.now()
        if rss is None and t - self.last_uss_t >= self.config.interval_s:
            # USS walks the process's mappings: once per asked interval, however often steps are sampled.
            rss, uss = gen.memory.rss_uss()
            if uss is not None:
                self.last_uss_t = t
        elif rss is None:
            rss, uss = gen.memory.rss(), None
        else:
            uss = None
        if rss is None:
            return
        message = {k: v for k, v in message.items() if k not in ("type", "ack")}
        if message:
            gen.last = message
            gen.steps = int(message.get("steps", gen.steps))
            gen.errors = int(message.get("errors", gen.errors))
        row = {**gen.last, **message, "t": t, "rss": rss, "uss": uss, "pid": gen.pid, "generation": gen.number}
        if gen.last:
            row["steps"] = self.base_steps + gen.steps
            row["errors"] = self.base_errors + gen.errors
        else:
            row["steps"] = None  # before the first step: setup is still running
        self.writer.sample(row)
        self.last_sample_t = t
        if self.rss_start is None and message:
            self.rss_start = rss
        if gen.last or gen.number == 0:  # a restarted generation still starting up is not "the end"
            self.rss_end = rss
        self.rss_peak = max(self.rss_peak or 0, rss)
        steps = self.steps
        elapsed = max(t, 1e-9)
        self.progress.update(t, steps, steps / elapsed, rss, None if self.rss_start is None else rss - self.rss_start)
        if self.on_sample is not None:
            self.on_sample(row)

    # -- service and supervision -------------------------------------------------------------

    def _on_healthy(self, gen: Generation) -> None:
        """A generation is ready for work: send it the load, finish the restart that started it."""
        gen.t_healthy = self.now()
        if gen is not self.current or gen.stop_requested is not None or self.status is not None or self.final_stop:
            return
        if self.config.serve and gen.port is not None:
            if self.load is None:
                config = self.load_config()
                self.load = load_mod.LoadGenerator(config, self.t0, self.record_request)
                self.load.set_target(gen.port, gen.number)
                self.load.start()
                self.writer.event("load_start", self.now(), rate=config.rate, duration_s=config.duration_s,
                                  max_requests=config.max_requests, timeout_s=config.timeout_s)
            else:
                self.load.set_target(gen.port, gen.number)
        sup = self.supervisor
        if sup is None or sup.pending is None or sup.pending.new_generation != gen.number:
            return
        restart = sup.finish_pending(self.now(), healthy=True)
        assert restart is not None
        old = self.generations[restart.generation]
        if old.t_exit is None:
            if old.stop_requested is None and self.config.recycle is not None:
                # Reload: the new generation has the traffic; now the old one may go.
                self._stop(old, "restart", self.config.recycle.signal, self.config.recycle.kill_timeout_s)
            self.unwritten[old.number] = restart
        else:
            self._write_restart(restart)

    def _write_restart(self, restart: Restart) -> None:
        self.writer.event("restart", restart.t, **restart.to_event())

    def _supervise(self, now: float) -> None:
        sup = self.supervisor
        policy = self.config.recycle
        assert sup is not None and policy is not None
        if sup.spawn_due(now):
            gen = self.spawn()
            if sup.pending is not None:
                sup.pending.new_generation = gen.number
        if not sup.check_due(now) or sup.pending is not None or sup.spawn_at is not None:
            return
        current = self.current
        if current is None or not current.alive or current.stop_requested is not None:
            return
        rss = current.memory.rss()
        if rss is None or not sup.over_limit(rss):
            return
        restart = sup.memory_restart(now, current.number, rss)
        self._write_sample(current, {}, rss=rss)  # the row that shows the trigger
        if policy.mode == "reload":
            restart.new_generation = self.spawn().number  # the old one keeps serving until the new one is healthy
        else:
            self._stop(current, "restart", policy.signal, policy.kill_timeout_s)

    def _on_exit(self, gen: Generation) -> None:
        now = self.now()
        gen.t_exit = now
        gen.release()  # its reaper is gone too: close the lifeline as well as the ack pipe
        sup = self.supervisor
        if sup is not None or self.config.serve:
            self.writer.event("exit", now, returncode=gen.proc.returncode, killed=gen.killed, **self._tag(gen))
        if sup is None:
            return
        restart = self.unwritten.pop(gen.number, None)
        if restart is not None:  # reload: the old generation is gone after the new one took over
            restart.stopped_after_s = round(now - restart.t, 6)
            restart.killed = gen.killed
            self._write_restart(restart)
            return
        pending = sup.pending
        if pending is not None and pending.generation == gen.number and gen.stop_requested == "restart":
            pending.stopped_after_s = round(now - pending.t, 6)
            pending.killed = gen.killed
            if self.status is None and not self.final_stop:
                pending.new_generation = self.spawn().number  # restart: the new one starts once the old one is gone
            return
        if gen is not self.current or self.status is not None or self.final_stop or self.ended:
            return
        if self._budget_spent(gen):
            self.ended = True
            return
        self._crashed(gen, now)

    def _budget_spent(self, gen: Generation) -> bool:
        """A step run's generation that finished its share of the steps or time ends the run."""
        if self.config.serve or (gen.done or {}).get("reason") != "completed":
            return False
        steps_left = self.prepared.steps is None or self.steps < self.prepared.steps
        time_left = self.deadline is None or time.monotonic() < self.deadline
        return not (steps_left and time_left) or self.prepared.steps is None and self.deadline is None

    def _crashed(self, gen: Generation, now: float) -> None:
        sup = self.supervisor
        assert sup is not None
        done = gen.done or {}
        error = f"scenario raised in {done.get('phase', '?')}: {done.get('error', '')}" if done.get("reason") == "failed" else None
        if sup.pending is not None:  # the new generation of a restart died before it was healthy
            unfinished = sup.finish_pending(now, healthy=False)
            if unfinished is not None:
                old = self.generations[unfinished.generation]
                if old.t_exit is None:
                    self._stop(old, "restart", signal.SIGTERM, self.config.stop_timeout_s)
                    self.unwritten[old.number] = unfinished
                else:
                    self._write_restart(unfinished)
        uptime = now - (gen.t_healthy if gen.t_healthy is not None else now)
        try:
            restart = sup.crash_restart(now, gen.number, uptime, gen.proc.returncode, error)
        except CrashLimit as exc:
            self.status = "failed"
            self.message = str(exc)
            self.writer.event("gave_up", now, restarts=sup.backoff.consecutive, message=self.message, **self._tag(gen))
            if self.load is not None:
                self.load.stop()
            return
        self.writer.event("crash", now, returncode=gen.proc.returncode, error=error, backoff_s=restart.backoff_s,
                          uptime_s=round(uptime, 6), **self._tag(gen))

    def _stop_service(self) -> None:
        """The load is over: stop every generation gracefully; the run then completes."""
        self.final_stop = True
        self._load_end()
        if self.supervisor is not None:
            self.supervisor.spawn_at = None
        for gen in self._live():
            self._stop(gen, gen.stop_requested or "end", signal.SIGTERM, self.config.stop_timeout_s)

    def _load_end(self) -> None:
        if self.load is None or getattr(self, "_load_ended", False):
            return
        self._load_ended = True
        summary = self.load.summary()
        if self.load.failure:
            summary["failure"] = self.load.failure
        self.writer.event("load_end", self.now(), **summary)

    # -- the end -----------------------------------------------------------------------------

    def finish(self, ended: Any) -> RunResult:
        final = self.current
        returncode = final.proc.poll() if final is not None else None
        done = (final.done if final is not None else None) or {}
        for restart in self.unwritten.values():
            self._write_restart(restart)
        self.unwritten.clear()
        if self.supervisor is not None and self.supervisor.pending is not None:
            unfinished = self.supervisor.finish_pending(self.now(), healthy=False)
            if unfinished is not None:
                self._write_restart(unfinished)
        if self.status is None:
            reason = done.get("reason")
            if (self.final_stop or self.decided is not None) and reason in (None, "interrupted"):
                # The parent stopped the service because the load was over (a generation may have
                # been stopped while it was still starting, before it could say anything).
                reason = "completed"
            if reason in ("completed", "failed", "interrupted"):
                self.status = reason
                if reason == "failed":
                    self.message = f"scenario raised in {done.get('phase', '?')}: {done.get('error', '')}"
            else:
                self.status = "failed"
                how = f"signal {-returncode}" if returncode is not None and returncode < 0 else f"exit code {returncode}"
                self.message = f"child process ended without finishing ({how}); see artifacts/child-stderr.log"
        elif self.status == "interrupted" and done.get("reason") == "failed":
            self.message += f"; scenario raised in {done.get('phase', '?')}: {done.get('error', '')}"
        duration = self.now()
        if self.status != "completed":
            self.writer.event("status", duration, status=self.status, message=self.message)
        counters: dict[str, Any] = {
            "steps": self.steps,
            "errors": self.errors,
            "samples": self.writer.samples_written,
            "events": self.writer.events_written + 1,
            "rss_start": self.rss_start,
            "rss_end": self.rss_end,
            "rss_peak": self.rss_peak,
        }
        if self.supervisor is not None or len(self.generations) > 1:
            restarts = self.supervisor.restarts if self.supervisor else []
            counters["generations"] = len(self.generations)
            counters["restarts"] = {"memory": sum(r.reason == "memory" for r in restarts),
                                    "crash": sum(r.reason == "crash" for r in restarts)}
        if self.load is not None:
            counters["requests"] = self.load.summary()
        self.writer.update_meta(
            status=self.status,
            end=store.iso(ended),
            duration_s=round(duration, 3),
            exit={"status": self.status, "message": self.message, "returncode": returncode, "phase": done.get("phase")},
            counters=counters,
        )
        return RunResult(self.writer.path, self.status, self.steps, duration, self.rss_start, self.rss_end, self.rss_peak,
                         self.errors, self.message, counters.get("requests"), counters.get("restarts"))


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
