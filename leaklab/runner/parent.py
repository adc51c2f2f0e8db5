"""The parent: starts the child, samples it from outside, enforces the memory cap,
handles Ctrl-C, and is the one writer of the run directory."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from leaklab import probes as probe_registry
from leaklab import scenario as scenario_mod
from leaklab import store, units

#: Exit codes of ``leaklab run`` by final status (usage errors exit 2, see cli).
EXIT_CODES = {"completed": 0, "failed": 1, "killed_at_cap": 3, "interrupted": 130}

#: How often the parent checks the cap, independent of the sampling interval.
CAP_POLL_S = 0.1
#: Seconds the child gets to run teardown after a stop request before it is killed.
DEFAULT_STOP_TIMEOUT_S = 10.0
DEFAULT_DURATION_S = 30.0
DEFAULT_INTERVAL_S = 0.5
#: Fraction of the run recorded as warm-up when --warmup is not given.
DEFAULT_WARMUP_FRACTION = 0.1

_VERSIONED = ("psutil", "click", "numpy", "scipy", "pandas", "matplotlib", "aiohttp", "requests", "urllib3", "httpx", "objgraph", "pympler", "memray")


def default_max_rss() -> int:
    """A quarter of physical memory, at most 4 GiB: a leaking child can't take the host down."""
    return int(min(4 * 2**30, psutil.virtual_memory().total // 4))


def address_space_backstop(max_rss: int) -> int:
    """RLIMIT_AS for the child: far enough above the RSS cap for virtual reservations
    (thread stacks, arenas, mmaps) to fit, low enough to stop one giant allocation."""
    return max(4 * max_rss, max_rss + 8 * 2**30)


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


def prepare(config: RunConfig) -> Prepared:
    """Check everything that can be checked before a process starts; raises ScenarioError."""
    path = scenario_mod.find(config.scenario, config.scenario_dirs)
    scenario = scenario_mod.load(path)
    variant = scenario.resolve_variant(config.variant)
    params = scenario.resolve_params(variant, config.params)
    rate = config.rate
    if rate is None and scenario.default_rate(variant):
        rate = units.parse_rate(scenario.default_rate(variant))
    duration_s, steps = config.duration_s, config.steps
    if duration_s is None and steps is None:
        duration_s = DEFAULT_DURATION_S
    if config.warmup is not None:
        warmup = {"steps": config.warmup.steps} if config.warmup.steps is not None else {"seconds": config.warmup.seconds}
    elif steps is not None:
        warmup = {"steps": int(steps * DEFAULT_WARMUP_FRACTION)}
    else:
        warmup = {"seconds": round((duration_s or 0) * DEFAULT_WARMUP_FRACTION, 3)}
    for probe in config.probes:
        probe_registry.probe_class(probe)  # raises KeyError naming the known probes
    return Prepared(config, scenario, variant, params, rate, duration_s, steps, warmup, config.max_rss or default_max_rss())


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


class ChildMemory:
    """RSS (and USS where cheap) of the child, optionally summed over its own children."""

    def __init__(self, pid: int, include_children: bool) -> None:
        self.process = psutil.Process(pid)
        self.include_children = include_children
        self.uss_available = sys.platform.startswith("linux") and Path(f"/proc/{pid}/smaps_rollup").exists()

    def _processes(self) -> list[psutil.Process]:
        if not self.include_children:
            return [self.process]
        return [self.process, *self.process.children(recursive=True)]

    def rss(self) -> int | None:
        total = 0
        try:
            for proc in self._processes():
                total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return total

    def rss_uss(self) -> tuple[int | None, int | None]:
        if not self.uss_available:
            return self.rss(), None
        rss = uss = 0
        try:
            for proc in self._processes():
                info = proc.memory_full_info()
                rss += info.rss
                uss += info.uss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None, None
        return rss, uss


def _reader(fd: int, out: queue.Queue[dict[str, Any] | None]) -> None:
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            try:
                out.put(json.loads(line))
            except json.JSONDecodeError:
                out.put({"type": "event", "kind": "protocol_error", "line": line[:200].decode(errors="replace")})
    out.put(None)


def kill_process_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the child and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class _Progress:
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

    def update(self, t_steps: float, steps: int, rate: float, rss: int | None, growth: int | None) -> None:
        target = steps if self.by_steps else min(t_steps, self.bar.total or t_steps)
        self.bar.n = round(target, 1) if not self.by_steps else target
        self.bar.set_postfix_str(
            f"steps={steps} {rate:,.0f}/s rss={units.format_size(rss)} growth={units.format_size(growth, signed=True)}",
            refresh=False,
        )
        self.bar.refresh()

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
            "warmup": prepared.warmup,
            "max_rss": prepared.max_rss,
            "include_children": config.include_children,
            "profile": config.profile,
            "probes": config.probes,
            "max_errors": config.max_errors,
        },
        "counters": {},
    }
    writer = store.RunWriter(run_dir, meta, columns)
    t0 = time.monotonic()
    read_fd, write_fd = os.pipe()
    ack_read_fd, ack_write_fd = os.pipe()
    spec = {
        "scenario_path": str(scenario.path),
        "variant": prepared.variant,
        "params": prepared.params,
        "steps": prepared.steps,
        "duration_s": prepared.duration_s,
        "rate": prepared.rate,
        "interval": config.interval_s,
        "warmup": prepared.warmup,
        "max_errors": config.max_errors,
        "probes": config.probes,
        "probe_options": config.probe_options,
        "artifacts": str(writer.artifacts),
        "report_fd": write_fd,
        "ack_fd": ack_read_fd,
        "t0": t0,
        "cwd": os.getcwd(),
        "sys_path": [str(scenario.path.parent)],
        "address_space_limit": address_space_backstop(prepared.max_rss),
    }
    stdout = open(writer.artifacts / "child-stdout.log", "wb")
    stderr = open(writer.artifacts / "child-stderr.log", "wb")
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaklab.runner.child", json.dumps(spec)],
        pass_fds=(write_fd, ack_read_fd), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
        start_new_session=True, env=env,
    )
    os.close(write_fd)
    os.close(ack_read_fd)
    messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(read_fd, messages), daemon=True, name="leaklab-child-reader").start()
    writer.event("start", 0.0, pid=proc.pid)

    session = _Session(config, prepared, writer, proc, messages, t0, on_sample, ack_write_fd)
    try:
        session.loop()
    finally:
        if proc.poll() is None:
            kill_process_group(proc)
        else:
            kill_process_group(proc)  # reap anything the scenario started in its group
        stdout.close()
        stderr.close()
        os.close(ack_write_fd)
        session.progress.close()
        result = session.finish(store.utc_now())
        writer.close()
    return result


class _Session:
    """The parent's event loop over one child process."""

    def __init__(self, config: RunConfig, prepared: Prepared, writer: store.RunWriter, proc: subprocess.Popen[bytes],
                 messages: queue.Queue[dict[str, Any] | None], t0: float, on_sample: Callable[[dict[str, Any]], None] | None,
                 ack_fd: int) -> None:
        self.config = config
        self.prepared = prepared
        self.writer = writer
        self.proc = proc
        self.messages = messages
        self.t0 = t0
        self.on_sample = on_sample
        self.ack_fd = ack_fd
        self.memory = ChildMemory(proc.pid, config.include_children)
        self.progress = _Progress(prepared, config.progress)
        self.status: str | None = None
        self.message = ""
        self.done: dict[str, Any] | None = None
        self.steps = 0
        self.errors = 0
        self.last: dict[str, Any] = {}
        self.rss_start: int | None = None
        self.rss_end: int | None = None
        self.rss_peak: int | None = None
        self.last_sample_t = 0.0
        self.stop_deadline: float | None = None
        self.interrupts = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def loop(self) -> None:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            eof = False
            next_cap_check = 0.0
            while True:
                try:
                    message = self.messages.get(timeout=CAP_POLL_S)
                except queue.Empty:
                    message = {}
                if message is None:
                    eof = True
                elif message:
                    self._handle(message)
                now = self.now()
                if now >= next_cap_check and self.status is None:
                    self._check_cap()
                    next_cap_check = now + CAP_POLL_S
                if self.status is None and now - self.last_sample_t >= 2 * self.config.interval_s and self.proc.poll() is None:
                    self._write_sample({})  # the child is busy in setup or a long step: RSS still counts
                if self.stop_deadline is not None and time.monotonic() > self.stop_deadline and self.proc.poll() is None:
                    self.writer.event("killed", self.now(), reason="stop timeout", timeout_s=self.config.stop_timeout_s)
                    kill_process_group(self.proc)
                if eof:
                    self.proc.wait()
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.interrupts += 1
        if self.status is None:
            self.status = "interrupted"
            self.message = f"stopped by {signal.Signals(signum).name}"
        self.writer.event("interrupt", self.now(), signal=signal.Signals(signum).name)
        if self.interrupts == 1:
            kill_process_group(self.proc, signal.SIGTERM)
            self.stop_deadline = time.monotonic() + self.config.stop_timeout_s
        else:
            kill_process_group(self.proc)

    def _check_cap(self) -> None:
        rss = self.memory.rss()
        if rss is None:
            return
        self.rss_peak = max(self.rss_peak or 0, rss)
        if rss > self.prepared.max_rss:
            self.status = "killed_at_cap"
            self.message = f"RSS {units.format_size(rss)} crossed the cap of {units.format_size(self.prepared.max_rss)}"
            self._write_sample({}, rss=rss)
            self.writer.event("killed_at_cap", self.now(), rss=rss, max_rss=self.prepared.max_rss)
            kill_process_group(self.proc)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "sample":
            self._write_sample(message)
            if message.get("ack"):
                with contextlib.suppress(OSError):
                    os.write(self.ack_fd, b"k")
        elif kind == "hello":
            self.writer.event("ready", message.get("t"), pid=message.get("pid"), is_async=message.get("is_async"))
        elif kind == "event":
            fields = {k: v for k, v in message.items() if k not in ("type", "kind", "t")}
            self.writer.event(str(message.get("kind")), message.get("t"), **fields)
            if message.get("kind") == "warmup_end":
                self.writer.update_meta(warmup_end={"t": message.get("t"), "steps": message.get("steps")})
        elif kind == "done":
            self.done = message
            self.steps = int(message.get("steps", self.steps))
            self.errors = int(message.get("errors", self.errors))
            if message.get("traceback"):
                (self.writer.artifacts / "traceback.txt").write_text(str(message["traceback"]), encoding="utf-8")
            self.writer.event("done", message.get("t"), **{k: v for k, v in message.items() if k not in ("type", "t")})
            self.stop_deadline = time.monotonic() + self.config.stop_timeout_s

    def _write_sample(self, message: dict[str, Any], rss: int | None = None) -> None:
        if rss is None:
            rss, uss = self.memory.rss_uss()
        else:
            uss = None
        if rss is None:
            return
        t = self.now()
        message = {k: v for k, v in message.items() if k not in ("type", "ack")}
        if message:
            self.last = message
            self.steps = int(message.get("steps", self.steps))
            self.errors = int(message.get("errors", self.errors))
        row = {**self.last, **message, "t": t, "rss": rss, "uss": uss, "pid": self.proc.pid, "generation": 0}
        if not self.last:
            row["steps"] = None  # before the first step: setup is still running
        self.writer.sample(row)
        self.last_sample_t = t
        if self.rss_start is None and message:
            self.rss_start = rss
        self.rss_end = rss
        self.rss_peak = max(self.rss_peak or 0, rss)
        elapsed = max(t, 1e-9)
        self.progress.update(t, self.steps, self.steps / elapsed, rss, None if self.rss_start is None else rss - self.rss_start)
        if self.on_sample is not None:
            self.on_sample(row)

    def finish(self, ended: Any) -> RunResult:
        returncode = self.proc.poll()
        done = self.done or {}
        if self.status is None:
            reason = done.get("reason")
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
        self.writer.update_meta(
            status=self.status,
            end=store.iso(ended),
            duration_s=round(duration, 3),
            exit={"status": self.status, "message": self.message, "returncode": returncode, "phase": done.get("phase")},
            counters={
                "steps": self.steps,
                "errors": self.errors,
                "samples": self.writer.samples_written,
                "events": self.writer.events_written + 1,
                "rss_start": self.rss_start,
                "rss_end": self.rss_end,
                "rss_peak": self.rss_peak,
            },
        )
        return RunResult(self.writer.path, self.status, self.steps, duration, self.rss_start, self.rss_end, self.rss_peak, self.errors, self.message)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
