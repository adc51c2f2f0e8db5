"""Throughput of a scenario's steps without probes, under each profile level, under
always-on tracemalloc (1 and 10 frames) and under `memray run`, side by side.

    python benchmarks/profiler_overhead.py [--scenario http-agent] [--variant listeners]
                                           [--seconds 40] [--rounds 1] [--modes plain,rss,...]

Every mode runs the scenario's steps back to back (no rate) in a fresh process
for ``--seconds``; throughput is counted after a warm-up of 10 % of that, in
steps per second of the step loop. ``plain``, ``tracemalloc-1``, ``tracemalloc-10``
and ``memray-run`` use a bare driver (this file, ``--drive``), which ends its warm-up
with a full collection as leaklab's child does; ``rss``, ``default`` and ``deep`` are
`leaklab run --profile ...`, whose rate runs from the end of the warm-up (stamped
after the probes' baselines and that collection: what the probes do after it counts)
to the last sample taken while the steps ran (the final sample, taken after the last
step with a forced collection, and the probes' end-of-run work, like the bare
driver's teardown, do not count).
Each round runs every mode once, with a bare run before the first and after each one, in an
order that turns by one mode from round to round: a run's ratio is its rate over the mean of
the two bare runs beside it, so that drift on a shared machine cancels out, and the table shows
the median of those paired ratios over the rounds, a 90 % confidence interval for that median
(from the order statistics: it assumes nothing of the noise's shape) and their range. The
``plain`` row's ratios are each bare run's rate over the one before it: the noise between two
runs of the same thing, against which the targets' margins are to be read.
Beside each rate is the CPU time per step over the same stretch: the bare driver's own,
and leaklab's child's (all its threads, read as the parent writes each new step count).
The neighbouring bare runs' CPU per step over a mode's (``cpu ratio``) is the share of the
rate the mode would keep with a core to itself: it leaves out what the mode costs other
processes (the parent's sampling) but not what others take of the machine, which on a shared
machine spreads the rates of the rounds by tens of per cent. The targets are checked on the
rates.
Every mode's process runs with glibc's heap thresholds held at the same fixed values
(``MALLOC_FOOTING``; ``--dynamic-malloc`` leaves them dynamic): otherwise a step's page faults,
and up to a quarter of its time, depend on whether something in the process's first second
freed a large block, which differs between the bare driver and leaklab's child by accident.

Targets (median paired ratio): rss >= 0.97, default >= 0.95, deep >= the ``memray-run``
ratio of the same row (when measured). ``--suite`` measures every row of SUITE (real
steps, each in runs of 1 s and 10 s); ``--only`` keeps the rows whose scenario contains
one of its words, ``--lengths`` the rows of those run lengths (seconds). The SQLAlchemy
and gRPC rows need benchmarks/requirements.txt installed:

    python benchmarks/profiler_overhead.py --suite --rounds 5 \
        --modes plain,rss,default,deep,tracemalloc-1,memray-run --only sqlalchemy,grpc

On a shared machine the medians of a few rounds move by more than the targets' margins.
``--pool LOG...`` measures nothing: it reads back the runs that earlier sittings printed (on
stderr), pairs each with the bare runs beside it in its own sitting, and reports every row
over all those rounds; ``benchmarks/results/profiler_overhead/`` keeps the sittings behind the
README's table:

    python benchmarks/profiler_overhead.py --pool benchmarks/results/profiler_overhead/*.log
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))

from leaklab import probes, runner, scenario, store  # noqa: E402

WARMUP_FRACTION = 0.1
MODES = ("plain", "rss", "default", "deep", "tracemalloc-1", "tracemalloc-10", "memray-run")
#: glibc's heap thresholds, held fixed in every mode's process (``--dynamic-malloc`` leaves them
#: be). Left dynamic, glibc raises them the first time a process frees a large block, and whether
#: that happened before the steps (an import, a probe's baseline) changes how often a step's
#: allocations fault pages in: a difference of the process's history, not of what a mode costs.
#: These are the values a long-running process reaches (the top of glibc's dynamic range).
MALLOC_FOOTING = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
#: of the interval printed beside each median ratio
CONFIDENCE = 0.9
TARGETS = {"rss": 0.97, "default": 0.95, "deep": 0.50}
#: deep must keep at least what `memray run` keeps of the same step (when both are measured)
DEEP_AT_LEAST = "memray-run"


# -- the bare driver (runs in its own process) ---------------------------------------------


def drive(path: str, variant: str | None, seconds: float, frames: int) -> dict[str, float]:
    """Run steps back to back for ``seconds``; tracing (``frames`` > 0) starts after the warm-up."""
    loaded = scenario.load(path)
    variant = loaded.resolve_variant(variant)
    params = loaded.resolve_params(variant, {})
    loop = asyncio.new_event_loop() if loaded.is_async else None

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return loop.run_until_complete(result) if asyncio.iscoroutine(result) and loop else result

    state = call(loaded.setup, **loaded.setup_kwargs(variant, params)) if loaded.setup else None

    async def run_async(deadline: float) -> int:
        n = 0
        while time.monotonic() < deadline:
            result = loaded.step(state)
            if asyncio.iscoroutine(result):
                await result
            n += 1
        return n

    def run_for(duration: float) -> int:
        deadline = time.monotonic() + duration
        if loop is not None:
            return loop.run_until_complete(run_async(deadline))
        n = 0
        while time.monotonic() < deadline:
            loaded.step(state)
            n += 1
        return n

    run_for(seconds * WARMUP_FRACTION)
    # leaklab's child ends its warm-up with a full collection (before its rate's clock starts):
    # the bare loop's stretch starts from the same state, so that where the next collection of
    # a growing heap falls (a pause of up to a tenth of a second) does not favour either side.
    gc.collect()
    if frames:
        tracemalloc.start(frames)
    began, cpu_began = time.monotonic(), time.process_time()
    steps = run_for(seconds * (1 - WARMUP_FRACTION))
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu_began
    if frames:
        tracemalloc.stop()
    if loaded.teardown:
        call(loaded.teardown, state)
    if loop is not None:
        loop.close()
    return {"steps": steps, "seconds": elapsed, "rate": steps / elapsed, "cpu": cpu / steps}


# -- one measurement per mode -------------------------------------------------------------


def bare(path: str, variant: str, seconds: float, mode: str, tmp: Path) -> tuple[float, float]:
    """Steps per second of the bare driver in ``mode``, and its CPU seconds per step."""
    frames = {"tracemalloc-1": 1, "tracemalloc-10": 10}.get(mode, 0)
    command = [
        sys.executable,
        str(HERE),
        "--drive",
        path,
        "--variant",
        variant,
        "--seconds",
        str(seconds),
        "--frames",
        str(frames),
    ]
    if mode == "memray-run":
        capture = tmp / "memray-run.bin"
        command = [
            sys.executable,
            "-m",
            "memray",
            "run",
            "--quiet",
            "--force",
            "-o",
            str(capture),
            *command[1:],
        ]
    # A session of its own, as leaklab's child has: where the kernel groups the scheduling by
    # session (autogroup), a busy machine would otherwise give the driver a smaller share than the
    # child.
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds * 3 + 120,
            start_new_session=True,
        )
    finally:
        # Deleted at once, its pages are dropped unwritten: left, they would be written back
        # to disk half a minute later, in the middle of another mode's run.
        (tmp / "memray-run.bin").unlink(missing_ok=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return float(measured["rate"]), float(measured["cpu"])


def under_leaklab(
    path: str, variant: str, seconds: float, profile: str, tmp: Path
) -> tuple[float, float, dict[str, Any]]:
    """Steps per second while stepping under ``--profile``, the child's CPU seconds per step over
    the same stretch, and each probe's own estimate of its share of the run."""
    cpu = ChildCpu()
    config = runner.RunConfig(
        scenario=path,
        variant=variant,
        duration_s=seconds,
        out=str(tmp / "runs"),
        progress=False,
        profile=profile,
        probes=probes.resolve(profile, []),
    )
    result = runner.run(config, on_sample=cpu.on_sample)
    if result.status != "completed":
        raise SystemExit(f"leaklab run --profile {profile} failed: {result.message}")
    run = store.read_run(result.run_dir)
    (t0, s0), (t1, s1) = stretch(run)
    costs = {
        name: p.get("fraction")
        for name, p in ((run.meta.get("probe_overhead") or {}).get("probes") or {}).items()
    }
    # The run's files (a deep run's memray capture among them) go at once, for the same reason
    # as the bare `memray run`'s capture.
    shutil.rmtree(result.run_dir, ignore_errors=True)
    return (s1 - s0) / (t1 - t0), cpu.per_step(s0, s1), costs


class ChildCpu:
    """The child's CPU time (all its threads) when the parent writes each new step count: CPU
    per step does not depend on how much of the machine others take, as the rate does."""

    def __init__(self) -> None:
        self.at: dict[float, float] = {}  # steps -> CPU seconds
        self.processes: dict[int, Any] = {}

    def on_sample(self, row: dict[str, Any]) -> None:
        import psutil

        steps, pid = row.get("steps"), row.get("pid")
        if steps is None or pid is None or float(steps) in self.at:
            return
        try:
            process = self.processes.setdefault(int(pid), psutil.Process(int(pid)))
            times = process.cpu_times()
        except psutil.Error:
            return
        self.at[float(steps)] = times.user + times.system

    def per_step(self, s0: float, s1: float) -> float:
        """CPU seconds per step from the first count at or after ``s0`` to ``s1``."""
        start = min((s for s in self.at if s >= s0), default=None)
        if start is None or s1 not in self.at or s1 <= start:
            return math.nan
        return (self.at[s1] - self.at[start]) / (s1 - start)


def stepping_rate(run: store.RunData) -> float:
    """Steps per second from the end of the warm-up to the last sample taken while stepping."""
    (t0, s0), (t1, s1) = stretch(run)
    return (s1 - s0) / (t1 - t0)


def stretch(run: store.RunData) -> tuple[tuple[float, float], tuple[float, float]]:
    """(time, steps) at the end of the warm-up and at the last sample taken while stepping.

    A sample row counts where its step count first appears: the parent's own rows while the
    child is busy repeat the last count, and the final sample (after the last step) is left
    out with the rows of the final count, unless no other sample came after the warm-up
    (what the probes did there took the rest of the run): then the rate runs to the final one.
    """
    warmup = run.meta.get("warmup_end") or {}
    t0, s0 = float(warmup.get("t") or 0.0), float(warmup.get("steps") or 0)
    last = max((s for s in run.columns["steps"] if not math.isnan(s)), default=0.0)
    end: tuple[float, float] | None = None
    seen = -1.0
    for t, steps in zip(run.columns["t"], run.columns["steps"], strict=True):
        if math.isnan(steps) or steps <= seen:
            continue
        seen = steps
        if t > t0 and steps > s0 and steps < last:
            end = (t, steps)
    if end is None:
        final = [
            (t, s) for t, s in zip(run.columns["t"], run.columns["steps"], strict=True) if s == last
        ]
        if not final or final[0][0] <= t0:
            raise SystemExit(f"{run.path}: no sample after the warm-up")
        end = final[0]
    return (t0, s0), end


#: ``--suite``: real steps, each in runs of 10 s and 1 s: http-agent's listeners (aiohttp,
#: loopback), a SQLAlchemy engine with event listeners kept per step (a heap growing by tens of KB
#: per step), an aiohttp session whose cookie jar gains a cookie per request (a heap growing
#: too), and gRPC unary calls to a loopback server in steady state (a level heap).
SUITE = tuple(
    (name, variant, seconds)
    for name, variant in (
        ("http-agent", "listeners"),
        ("benchmarks/scenarios/sqlalchemy_engine_listeners.py", "leaky"),
        ("benchmarks/scenarios/aiohttp_cookie_jar.py", "leaky"),
        ("benchmarks/scenarios/grpc_unary.py", "steady"),
    )
    for seconds in (10.0, 1.0)
)


@dataclass
class Measured:
    """One row's rounds: per mode, its runs' steps per second and CPU seconds per step (the
    driver's, or leaklab's child's), each beside the mean of the bare runs just before and just
    after it; and the probes' own estimates of their shares (the last round's)."""

    rates: dict[str, list[float]] = field(default_factory=dict)
    cpus: dict[str, list[float]] = field(default_factory=dict)
    plain_rates: dict[str, list[float]] = field(default_factory=dict)
    plain_cpus: dict[str, list[float]] = field(default_factory=dict)
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: each bare run's rate over the one before it in the same sitting
    bare_ratios: list[float] = field(default_factory=list)

    def add_sitting(self, runs: list[tuple[str, tuple[float, float]]]) -> None:
        """One sitting's runs of this row, (mode, (rate, CPU per step)) in the order they ran:
        each mode's run is paired with the bare runs just before and after it, each bare run
        with the bare run before it."""
        last_bare: float | None = None
        for i, (mode, run) in enumerate(runs):
            if mode == "plain":
                self.rates.setdefault("plain", []).append(run[0])
                self.cpus.setdefault("plain", []).append(run[1])
                if last_bare:
                    self.bare_ratios.append(run[0] / last_bare)
                last_bare = run[0]
            elif 0 < i < len(runs) - 1 and runs[i - 1][0] == runs[i + 1][0] == "plain":
                self.add(mode, run, runs[i - 1][1], runs[i + 1][1])

    def add(
        self,
        mode: str,
        run: tuple[float, float],
        before: tuple[float, float],
        after: tuple[float, float],
    ) -> None:
        """One run of ``mode`` between two bare runs."""
        self.rates.setdefault(mode, []).append(run[0])
        self.cpus.setdefault(mode, []).append(run[1])
        self.plain_rates.setdefault(mode, []).append((before[0] + after[0]) / 2)
        self.plain_cpus.setdefault(mode, []).append((before[1] + after[1]) / 2)

    def ratios(self, mode: str) -> list[float]:
        """Each run's rate over its neighbouring bare runs' (for ``plain``: each bare run's over
        the one before it, the noise between two runs of the same thing)."""
        if mode == "plain":
            return self.bare_ratios or [1.0]
        return [r / p for r, p in zip(self.rates[mode], self.plain_rates[mode], strict=True)]

    def ratio(self, mode: str) -> float:
        """The median of the mode's paired ratios."""
        return statistics.median(self.ratios(mode))

    def interval(self, mode: str) -> tuple[float, float]:
        """A ``CONFIDENCE`` interval for the median paired ratio (order statistics, no
        assumption on the shape of the noise): what more rounds could still move it by."""
        # Imported here, not at the top: the bare driver runs this file too, and what it imports
        # shapes its allocator's state (see drive).
        from scipy.stats import quantile_test

        ratios = self.ratios(mode)
        if len(ratios) < 5:  # too few for an interval: the range
            return min(ratios), max(ratios)
        ci = quantile_test(ratios, q=self.ratio(mode), p=0.5).confidence_interval(
            confidence_level=CONFIDENCE
        )
        low = ci.low if math.isfinite(ci.low) else min(ratios)
        high = ci.high if math.isfinite(ci.high) else max(ratios)
        return float(low), float(high)

    def cpu_ratio(self, mode: str) -> float:
        """The neighbouring bare runs' CPU per step over the mode's (median over the rounds): the
        share of the step rate the mode would keep with a core to itself (what others take of
        the machine cancels out)."""
        if mode == "plain":
            return 1.0
        pairs = [
            p / c
            for c, p in zip(self.cpus[mode], self.plain_cpus[mode], strict=True)
            if math.isfinite(c) and math.isfinite(p) and c > 0
        ]
        return statistics.median(pairs) if pairs else math.nan


def measure(
    scenario_name: str, variant: str, seconds: float, modes: list[str], rounds: int
) -> Measured:
    """Each round runs every mode once, with a bare run before the first and after each: a mode's
    ratio is to the bare runs beside it, so that drift on a shared machine cancels out."""
    in_repo = HERE.parent.parent / scenario_name
    path = str(
        in_repo
        if scenario_name.endswith(".py") and in_repo.is_file()
        else scenario.find(scenario_name)
    )
    measured = Measured()
    runs: list[tuple[str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="leaklab-bench-") as tmp_name:
        tmp = Path(tmp_name)

        def one(mode: str) -> None:
            if mode in TARGETS:
                rate, cpu, measured.costs[mode] = under_leaklab(path, variant, seconds, mode, tmp)
            else:
                rate, cpu = bare(path, variant, seconds, mode, tmp)
            runs.append((mode, (rate, cpu)))
            print(
                f"  {scenario_name} [{variant}] {seconds:g}s {mode:<15} {rate:>10,.1f} steps/s "
                f"{cpu * 1e6:>9,.1f} us CPU/step",
                file=sys.stderr,
            )

        others = [m for m in modes if m != "plain"]
        for r in range(rounds):
            one("plain")
            # The order turns by one mode each round, so that no mode always runs first (or
            # just after another): where a run sits in the round weighs on every mode alike.
            shift = r % len(others) if others else 0
            for mode in others[shift:] + others[:shift]:
                one(mode)
                one("plain")
    measured.add_sitting(runs)
    return measured


#: One run as ``measure`` prints it (on stderr): what ``--pool`` reads back.
RUN_LINE = re.compile(
    r"^\s+(?P<name>\S+) \[(?P<variant>[^\]]+)\] (?P<seconds>[\d.]+)s (?P<mode>\S+)\s+"
    r"(?P<rate>[\d,.]+) steps/s\s+(?P<cpu>[\d,.]+) us CPU/step$"
)


def pool(paths: list[str]) -> dict[tuple[str, str, float], Measured]:
    """The rounds of earlier sittings, read from their logs of runs, pooled per row: each
    mode's run is paired with the bare runs beside it in its own sitting (``add_sitting``, as
    ``measure`` does), so that a sitting on a slower machine weighs on both sides of its ratios
    alike."""
    pooled: dict[tuple[str, str, float], Measured] = {}
    for path in paths:
        runs: dict[tuple[str, str, float], list[tuple[str, tuple[float, float]]]] = {}
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SystemExit(f"{path}: cannot read it ({exc.strerror})") from None
        for line in text.splitlines():
            match = RUN_LINE.match(line)
            if match:
                row = (match["name"], match["variant"], float(match["seconds"]))
                rate = float(match["rate"].replace(",", ""))
                cpu = float(match["cpu"].replace(",", "")) / 1e6
                runs.setdefault(row, []).append((match["mode"], (rate, cpu)))
        if not runs:
            raise SystemExit(f"{path}: no runs in it (the lines a sitting prints on stderr)")
        for row, sitting in runs.items():
            pooled.setdefault(row, Measured()).add_sitting(sitting)
    return pooled


def report(
    scenario_name: str, variant: str, seconds: float, modes: list[str], got: Measured
) -> int:
    """Print one table; return how many targets were missed (by the median paired ratio)."""
    missed = 0
    print(
        f"\n{Path(scenario_name).stem} [{variant}], runs of {seconds:g} s; ratios to the bare "
        "runs beside each run, medians over the rounds "
        f"({CONFIDENCE:.0%} CI, range); "
        "plain: each bare run over the one before\n"
    )
    print(
        f"{'mode':<16} {'rounds':>6} {'steps/s':>10} {'ratio':>7} {f'{CONFIDENCE:.0%} CI':>11} "
        f"{'range':>11} "
        f"{'target':>13} "
        f"{'cpu ratio':>9}  probes' own estimate (share of the run)"
    )
    for mode in modes:
        ratios = got.ratios(mode)
        low, high = got.interval(mode)
        target = TARGETS.get(mode)
        if mode == "deep" and DEEP_AT_LEAST in modes:
            target = max(target or 0.0, got.ratio(DEEP_AT_LEAST))
        ok = target is None or got.ratio(mode) >= target
        missed += not ok
        verdict = "" if target is None else f">={target:.2f} {'ok' if ok else 'MISSED'}"
        estimate = ", ".join(
            f"{k} {v:.1%}" for k, v in got.costs.get(mode, {}).items() if v is not None
        )
        print(
            f"{mode:<16} {len(ratios):>6} {statistics.median(got.rates[mode]):>10,.1f} "
            f"{got.ratio(mode):>7.3f} "
            f"{f'{low:.2f}-{high:.2f}':>11} {f'{min(ratios):.2f}-{max(ratios):.2f}':>11} "
            f"{verdict:>13} "
            f"{got.cpu_ratio(mode):>9.3f}  {estimate}"
        )
    return missed


def markdown_table(
    rows: list[tuple[tuple[str, str, float], Measured]], modes: list[str], by_cpu: bool
) -> str:
    others = [m for m in modes if m != "plain"]
    lines = [
        "| step | run | " + " | ".join(others) + " |",
        "| --- | ---: |" + " ---: |" * len(others),
    ]
    for (name, variant, seconds), got in rows:
        cells = [
            "-"
            if m not in got.rates
            else f"{got.cpu_ratio(m):.2f}"
            if by_cpu
            else "{:.2f} ({:.2f}-{:.2f})".format(got.ratio(m), *got.interval(m))
            for m in others
        ]
        lines.append(
            f"| {Path(name).stem} [{variant}] | {seconds:g} s | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="http-agent")
    parser.add_argument("--variant", default="listeners")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, from: {', '.join(MODES)}"
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="every row of SUITE (real steps, in runs of 10 s and 1 s)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="with --suite: comma-separated words; keep the rows whose scenario contains one",
    )
    parser.add_argument(
        "--lengths",
        default="",
        help="with --suite: comma-separated run lengths in seconds; keep the rows of those lengths",
    )
    parser.add_argument(
        "--dynamic-malloc",
        action="store_true",
        help="leave glibc's heap thresholds dynamic (by default they are held fixed in every "
        "mode: " + ", ".join(f"{k}={v}" for k, v in MALLOC_FOOTING.items()) + ")",
    )
    parser.add_argument(
        "--pool",
        nargs="+",
        metavar="LOG",
        help="measure nothing: pool the rounds of earlier sittings from their logs of runs (what "
        "a sitting prints on stderr) and report them as one, per row",
    )
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.drive:
        print(json.dumps(drive(args.drive, args.variant, args.seconds, args.frames)))
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r}; known modes: {', '.join(MODES)}")
    if "plain" not in modes:
        modes.insert(0, "plain")
    words = [w.strip() for w in args.only.split(",") if w.strip()]
    lengths = {float(x) for x in args.lengths.split(",") if x.strip()}
    pooled = pool(args.pool) if args.pool else {}
    every = (
        tuple(sorted(pooled, key=lambda row: SUITE.index(row) if row in SUITE else len(SUITE)))
        if args.pool
        else SUITE
        if args.suite
        else ((args.scenario, args.variant, args.seconds),)
    )
    rows = tuple(
        row
        for row in every
        if (not words or any(w in row[0] for w in words)) and (not lengths or row[2] in lengths)
    )
    if not rows:
        parser.error(f"--only {args.only!r} and --lengths {args.lengths!r} keep no row")
    if args.pool:
        results = [(row, pooled[row]) for row in rows]
        modes = [m for m in MODES if any(m in got.rates for _, got in results)]
    else:
        if not args.dynamic_malloc:
            # Inherited by the bare driver and by leaklab's child alike (a value the caller set
            # wins).
            for name, value in MALLOC_FOOTING.items():
                os.environ.setdefault(name, value)
        results = [(row, measure(*row, modes, args.rounds)) for row in rows]
    missed = sum(report(*row, [m for m in modes if m in got.rates], got) for row, got in results)
    if args.pool:
        print(f"\npooled from: {', '.join(args.pool)}")
    else:
        footing = {k: os.environ[k] for k in MALLOC_FOOTING if k in os.environ}
        print(
            "\nglibc heap thresholds: "
            + (", ".join(f"{k}={v}" for k, v in footing.items()) if footing else "dynamic")
        )
    print(
        "\nrss: no probes; default: "
        + ", ".join(probes.PROFILES["default"])
        + "; deep: "
        + ", ".join(probes.PROFILES["deep"])
    )
    if len(rows) > 1:
        print(f"\nRate, ratio to the bare loop (medians, {CONFIDENCE:.0%} CI):\n")
        print(markdown_table(results, modes, by_cpu=False))
        print("\nCPU per step, the bare loop's over the mode's (medians):\n")
        print(markdown_table(results, modes, by_cpu=True))
        print(f"targets missed: {missed}")


if __name__ == "__main__":
    main()
