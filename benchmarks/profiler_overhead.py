"""Throughput of a leaky scenario without probes, under each profile level, under
always-on tracemalloc (1 and 10 frames) and under `memray run`, side by side.

    python benchmarks/profiler_overhead.py [--scenario http-agent] [--variant listeners]
                                           [--seconds 40] [--rounds 1] [--modes plain,rss,...]

Every mode runs the scenario's steps back to back (no rate) in a fresh process
for ``--seconds``; throughput is counted after a warm-up of 10 % of that, in
steps per second of the step loop (setup, the warm-up and what probes do after
the last step are left out). ``plain``, ``tracemalloc-1``, ``tracemalloc-10`` and
``memray-run`` use a bare driver (this file, ``--drive``); ``rss``, ``default``
and ``deep`` are `leaklab run --profile ...`. Rounds go through every mode in turn
so that drift on a shared machine hits all of them alike; the table shows medians.

Targets (ratio to ``plain``): rss >= 0.97, default >= 0.90, deep >= 0.50. ``--suite``
measures a real step and a step that grows the heap, in long runs and in runs of 2 s:

    python benchmarks/profiler_overhead.py --suite --rounds 3 --modes plain,rss,default,deep
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))

from leaklab import probes, runner, scenario, store  # noqa: E402

WARMUP_FRACTION = 0.1
MODES = ("plain", "rss", "default", "deep", "tracemalloc-1", "tracemalloc-10", "memray-run")
TARGETS = {"rss": 0.97, "default": 0.90, "deep": 0.50}


# -- the bare driver (runs in its own process) ---------------------------------------------


def drive(path: str, variant: str | None, seconds: float, frames: int, params: dict[str, Any] | None = None
          ) -> dict[str, float]:
    """Run steps back to back for ``seconds``; tracing (``frames`` > 0) starts after the warm-up."""
    loaded = scenario.load(path)
    variant = loaded.resolve_variant(variant)
    params = loaded.resolve_params(variant, params or {})
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
    if frames:
        tracemalloc.start(frames)
    began = time.monotonic()
    steps = run_for(seconds * (1 - WARMUP_FRACTION))
    elapsed = time.monotonic() - began
    if frames:
        tracemalloc.stop()
    if loaded.teardown:
        call(loaded.teardown, state)
    if loop is not None:
        loop.close()
    return {"steps": steps, "seconds": elapsed, "rate": steps / elapsed}


# -- one measurement per mode -------------------------------------------------------------


def bare(path: str, variant: str, seconds: float, mode: str, tmp: Path, params: dict[str, Any] | None = None
         ) -> float:
    frames = {"tracemalloc-1": 1, "tracemalloc-10": 10}.get(mode, 0)
    command = [sys.executable, str(HERE), "--drive", path, "--variant", variant, "--seconds", str(seconds),
               "--frames", str(frames), "--params", json.dumps(params or {})]
    if mode == "memray-run":
        capture = tmp / "memray-run.bin"
        command = [sys.executable, "-m", "memray", "run", "--quiet", "--force", "-o", str(capture), *command[1:]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds * 3 + 120)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"])


def under_leaklab(path: str, variant: str, seconds: float, profile: str, tmp: Path,
                  params: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
    config = runner.RunConfig(scenario=path, variant=variant, params=dict(params or {}), duration_s=seconds,
                              out=str(tmp / "runs"),
                              progress=False, profile=profile, probes=probes.resolve(profile, []))
    result = runner.run(config)
    if result.status != "completed":
        raise SystemExit(f"leaklab run --profile {profile} failed: {result.message}")
    run = store.read_run(result.run_dir)
    t, steps = run.columns["t"], run.columns["steps"]
    start = float((run.meta.get("warmup_end") or {}).get("t") or 0.0)
    rows = [(a, b) for a, b in zip(t, steps, strict=True) if a >= start and not math.isnan(b)]
    (t0, s0), (t1, s1) = rows[0], rows[-1]
    overhead = {name: p.get("fraction") for name, p in ((run.meta.get("probe_overhead") or {}).get("probes") or {}).items()}
    return (s1 - s0) / (t1 - t0), overhead


#: ``--suite``: a real step (http-agent listeners, 20 s and 2 s runs) and a step that grows the
#: heap (10 s and 2 s runs).
#: (16 B of payload kept per step, ~90 B with the object: a 10 s run at a million steps a
#: second stays well under the memory cap.)
HEAP_GROWING = {"size": "16"}
SUITE = (("http-agent", "listeners", 20.0, None), ("http-agent", "listeners", 2.0, None),
         ("tests/scenarios/retain_bytes.py", "leaky", 10.0, HEAP_GROWING),
         ("tests/scenarios/retain_bytes.py", "leaky", 2.0, HEAP_GROWING))


def measure(scenario_name: str, variant: str, seconds: float, params: dict[str, Any] | None, modes: list[str],
            rounds: int) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    in_repo = HERE.parent.parent / scenario_name
    path = str(in_repo if scenario_name.endswith(".py") and in_repo.is_file() else scenario.find(scenario_name))
    rates: dict[str, list[float]] = {m: [] for m in modes}
    costs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="leaklab-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(rounds):
            for mode in modes:
                if mode in TARGETS:
                    rate, costs[mode] = under_leaklab(path, variant, seconds, mode, tmp, params)
                else:
                    rate = bare(path, variant, seconds, mode, tmp, params)
                rates[mode].append(rate)
                print(f"  {scenario_name} [{variant}] {seconds:g}s {mode:<15} {rate:>10,.1f} steps/s", file=sys.stderr)
    return rates, costs


def report(scenario_name: str, variant: str, seconds: float, params: dict[str, Any] | None, rounds: int, modes: list[str],
           rates: dict[str, list[float]], costs: dict[str, dict[str, Any]]) -> int:
    """Print one table; return how many targets were missed."""
    base = statistics.median(rates["plain"])
    missed = 0
    extra = f" {params}" if params else ""
    print(f"\n{scenario_name} [{variant}]{extra}, {rounds} round(s) of {seconds:g} s per mode, medians\n")
    print(f"{'mode':<16} {'steps/s':>10} {'ratio':>7} {'target':>8}  probes' own estimate (share of the run)")
    for mode in modes:
        median = statistics.median(rates[mode])
        ratio = median / base
        target = TARGETS.get(mode)
        missed += target is not None and ratio < target
        verdict = "" if target is None else f">={target:.2f} {'ok' if ratio >= target else 'MISSED'}"
        estimate = ", ".join(f"{k} {v:.1%}" for k, v in costs.get(mode, {}).items() if v is not None)
        print(f"{mode:<16} {median:>10,.1f} {ratio:>7.3f} {verdict:>8}  {estimate}")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="http-agent")
    parser.add_argument("--variant", default="listeners")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from: {', '.join(MODES)}")
    parser.add_argument("--suite", action="store_true",
                        help="every row of SUITE (a real step and a heap-growing one, long runs and 2 s runs)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.drive:
        print(json.dumps(drive(args.drive, args.variant, args.seconds, args.frames, json.loads(args.params))))
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r}; known modes: {', '.join(MODES)}")
    if "plain" not in modes:
        modes.insert(0, "plain")
    rows = SUITE if args.suite else ((args.scenario, args.variant, args.seconds, None),)
    results = [(row, *measure(*row, modes, args.rounds)) for row in rows]
    missed = sum(report(*row, args.rounds, modes, rates, costs) for row, rates, costs in results)
    print("\nrss: no probes; default: " + ", ".join(probes.PROFILES["default"]) + "; deep: " + ", ".join(probes.PROFILES["deep"]))
    if len(rows) > 1:
        print(f"targets missed: {missed}")


if __name__ == "__main__":
    main()
