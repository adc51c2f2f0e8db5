"""``leaklab watch PID``: record a process that is already running, from outside.

Nothing is started and nothing is stopped: every ``--interval`` the watcher reads the
memory of the process and its children (``samples.csv``: RSS and USS summed over the
tree; ``processes.csv``: each process), until Ctrl-C, ``--duration`` or the process
exits, whichever comes first (all three complete the run). Steps are seconds watched.

``--health URL`` sends ``GET URL`` at a bounded rate with the run's open-loop load
generator (:mod:`leaklab.runner.load`), so ``requests.csv`` measures downtime and the
success rate as for a recycled run.

:class:`Watcher` follows one *source* of pids: a fixed pid here, PM2's process list in
:mod:`leaklab.runner.pm2`. A new pid from the source starts a new generation.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from leaklab import store, units
from leaklab.kinds import EventKind, Status
from leaklab.runner import load as load_mod
from leaklab.runner import meta as meta_mod
from leaklab.runner import parent
from leaklab.runner.command import parse_load_url, tree_rows
from leaklab.runner.generation import ChildMemory
from leaklab.scenario import ScenarioError

#: Health probes per second by default: enough to time a restart, light on the service.
DEFAULT_HEALTH_RATE = 2.0
MAX_HEALTH_RATE = 50.0
#: An open-ended watch still has a bound (the load generator needs one).
MAX_WATCH_S = 7 * 24 * 3600.0


class WatchError(ScenarioError):
    """Bad input to ``leaklab watch`` (exit 2)."""


@dataclass
class WatchConfig:
    duration_s: float | None = None
    interval_s: float = parent.DEFAULT_INTERVAL_S
    health_url: str | None = None
    health_rate: float = DEFAULT_HEALTH_RATE
    request_timeout_s: float = 2.0
    warmup_s: float | None = None
    out: str = "runs"
    argv: list[str] = field(default_factory=list)


@dataclass
class Observation:
    """What the source says at one moment: the pid to watch (None: not running) and more."""

    pid: int | None
    extra: dict[str, Any] = field(default_factory=dict)  # columns of samples.csv the source adds
    info: dict[str, Any] = field(default_factory=dict)  # fields of the generation's start event
    gone: bool = False  # the source no longer knows the process (a PM2 app deleted): the watch ends


@dataclass
class WatchResult:
    run_dir: Any
    status: str
    duration_s: float
    samples: int
    generations: int
    ended_by: str
    message: str = ""
    requests: dict[str, Any] | None = None

    exit_code = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def check_pid(pid: int) -> psutil.Process:
    """The process, or WatchError when there is none to watch."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
        return process
    except psutil.NoSuchProcess:
        raise WatchError(f"no process with pid {pid} (it has exited, or never ran)") from None
    except psutil.AccessDenied:
        raise WatchError(
            f"not allowed to read process {pid}: run leaklab as its user (or root)"
        ) from None


def running(process: psutil.Process) -> bool:
    """Still running: not gone, not a zombie waiting for its parent to reap it."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def describe(process: psutil.Process) -> dict[str, Any]:
    try:
        return {"name": process.name(), "cmdline": process.cmdline()[:20]}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


class Watcher:
    """Samples whatever pid ``observe()`` names, one generation per distinct pid."""

    def __init__(
        self,
        config: WatchConfig,
        name: str,
        meta: dict[str, Any],
        observe: Callable[[], Observation],
        extra_columns: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.observe = observe
        self.t0 = time.monotonic()
        warmup = {
            "seconds": config.warmup_s
            if config.warmup_s is not None
            else round((config.duration_s or 0) * parent.DEFAULT_WARMUP_FRACTION, 3)
        }
        run_dir = store.new_run_dir(config.out, name, None)
        settings = {
            "duration_s": config.duration_s,
            "interval_s": config.interval_s,
            "warmup": warmup,
            "include_children": True,
            "probes": [],
            "steps_are": "seconds",
            "health": {"url": config.health_url, "rate": config.health_rate}
            if config.health_url
            else None,
            "serve": bool(config.health_url),
            "recycle": None,
            "load": None,
        }
        about = {"scenario": name, "variant": None, "params": {}}
        self.writer = store.RunWriter(
            run_dir,
            meta_mod.build_meta(about, config.argv, settings, extra=meta),
            [*store.BASE_COLUMNS, *extra_columns],
        )
        self.pids: list[int] = []  # generation -> pid
        self.memory: ChildMemory | None = None
        self.load: load_mod.LoadGenerator | None = None
        self.stop = threading.Event()
        self.ended_by = ""
        self.rss_start: int | None = None
        self.health_port = 80
        self.last_rss: int | None = None  # the newest sample's RSS

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _start_health(self) -> None:
        if not self.config.health_url:
            return
        target = parse_load_url(self.config.health_url)
        self.health_port = target.port or 80
        config = load_mod.LoadConfig(
            rate=self.config.health_rate,
            duration_s=self.config.duration_s or MAX_WATCH_S,
            timeout_s=self.config.request_timeout_s,
            path=target.path,
        )
        generation = max(0, len(self.pids) - 1)
        self.load = load_mod.start_load(
            config, self.t0, self.writer.request, self.health_port, generation
        )
        self.writer.event(EventKind.LOAD_START, self.now(), **config.event_fields(), health=True)

    def _switch(self, obs: Observation) -> None:
        """A new pid: a new generation (after the first, a restart the source made)."""
        assert obs.pid is not None
        number = len(self.pids)
        t = self.now()
        if number:
            # the memory at the restart: our own last reading of the old process (the source's may
            # be older)
            fields = {
                **obs.info.pop("restart", {}),
                **({"rss": self.last_rss} if self.last_rss else {}),
            }
            self.writer.event(
                EventKind.RESTART,
                obs.info.pop("restart_t", t),
                reason=obs.info.pop("restart_reason", "restart"),
                generation=number - 1,
                new_generation=number,
                **fields,
            )
        self.pids.append(obs.pid)
        if self.memory is not None:
            self.memory.close()
        self.memory = ChildMemory(obs.pid, include_children=True)
        self.writer.event(EventKind.START, t, pid=obs.pid, generation=number, **obs.info)
        self.writer.event(EventKind.READY, t, pid=obs.pid, generation=number)
        if self.load is not None:
            self.load.set_target(self.health_port, number)

    def _sample(self, obs: Observation) -> bool:
        """One row; False when the watched process is gone."""
        assert self.memory is not None
        rss, uss = self.memory.rss_uss()
        if rss is None:
            return False
        t = self.now()
        number = len(self.pids) - 1
        row = {
            "t": t,
            "steps": int(t),
            "rss": rss,
            "uss": uss,
            "pid": self.pids[-1],
            "generation": number,
            **obs.extra,
        }
        self.writer.sample(row)
        self.last_rss = rss
        if self.rss_start is None:
            self.rss_start = rss
        for process_row in tree_rows(self.memory, t, number):
            self.writer.process(process_row)
        return True

    def run(self, follow_restarts: bool = False) -> WatchResult:
        """Record until Ctrl-C, the duration, or the process's exit (``follow_restarts``: wait
        for the next pid)."""
        previous = self._catch_signals()
        status, message = Status.COMPLETED.value, ""
        try:
            deadline = self.t0 + self.config.duration_s if self.config.duration_s else math.inf
            next_at = time.monotonic()
            while not self.stop.is_set():
                obs = self.observe()
                if obs.pid is not None and (not self.pids or obs.pid != self.pids[-1]):
                    self._switch(obs)
                    if self.load is None:
                        self._start_health()
                alive = obs.pid is not None and self._sample(obs)
                if not alive and (obs.gone or not follow_restarts) and self.pids:
                    self.ended_by = "exit"
                    self.writer.event(
                        EventKind.EXIT, self.now(), pid=self.pids[-1], generation=len(self.pids) - 1
                    )
                    message = f"the process {self.pids[-1]} exited"
                    break
                if time.monotonic() >= deadline:
                    self.ended_by = "duration"
                    break
                next_at += self.config.interval_s
                self.stop.wait(
                    max(0.0, min(next_at - time.monotonic(), deadline - time.monotonic()))
                )
            if self.stop.is_set():
                self.ended_by = "interrupt"
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            summary = self._stop_load()
            duration = self.now()
            self._finish_meta(status, message, duration, summary)
            self.writer.close()
            if self.memory is not None:
                self.memory.close()
        return WatchResult(
            self.writer.path,
            status,
            duration,
            self.writer.samples_written,
            len(self.pids),
            self.ended_by,
            message,
            summary,
        )

    def _catch_signals(self) -> dict[Any, Any]:
        """Route SIGINT and SIGTERM to :meth:`_on_signal` (main thread only); the previous
        handlers, to restore."""
        previous: dict[Any, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)
        return previous

    def _stop_load(self) -> dict[str, Any] | None:
        """Stop the health-check load, if any, and record its summary (returned)."""
        if self.load is None:
            return None
        self.load.stop()
        self.load.join(timeout=self.config.request_timeout_s + 2)
        summary = self.load.summary()
        self.writer.event(EventKind.LOAD_END, self.now(), **summary)
        return summary

    def _finish_meta(
        self, status: str, message: str, duration: float, summary: dict[str, Any] | None
    ) -> None:
        """Write how the watch ended and its counters to the run's meta."""
        self.writer.update_meta(
            status=status,
            end=store.iso(store.utc_now()),
            duration_s=round(duration, 3),
            exit={"status": status, "message": message, "ended_by": self.ended_by},
            counters={
                "samples": self.writer.samples_written,
                "generations": len(self.pids),
                "rss_start": self.rss_start,
                **({"requests": summary} if summary else {}),
            },
        )

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.writer.event(EventKind.INTERRUPT, self.now(), signal=signal.Signals(signum).name)
        self.stop.set()


def check_config(config: WatchConfig) -> None:
    if config.health_url:
        if parse_load_url(config.health_url).port is None:
            raise WatchError("--health needs the service's own port: http://127.0.0.1:PORT/path")
        if not 0 < config.health_rate <= MAX_HEALTH_RATE:
            raise WatchError(f"--health-rate must be above 0 and at most {MAX_HEALTH_RATE:g}/s")
    if config.interval_s <= 0:
        raise WatchError("--interval must be positive")


def watch_pid(pid: int, config: WatchConfig) -> WatchResult:
    """Watch ``pid`` and its children; raises WatchError when there is no such process."""
    check_config(config)
    process = check_pid(pid)
    about = describe(process)
    name = f"watch-{store.slug(about.get('name') or 'pid')}-{pid}"
    watcher = Watcher(
        config,
        name,
        {"source": "watch", "watched": {"pid": pid, **about}},
        lambda: Observation(pid if running(process) else None),
    )
    return watcher.run()


def format_result(result: WatchResult) -> str:
    lines = [
        f"status    {result.status}" + (f"  ({result.message})" if result.message else ""),
        f"watched   {units.format_duration(result.duration_s)}, {result.samples} samples, "
        f"{result.generations} process generation(s); ended by {result.ended_by or 'the end'}",
    ]
    if result.requests:
        req = result.requests
        lines.append(
            f"health    {req['sent']:,} probes, {req['ok']:,} ok, {req['failed']:,} failed"
            + (f" {req['errors']}" if req["errors"] else "")
        )
    lines.append(f"run       {result.run_dir}")
    return "\n".join(lines)
