"""Steps/s of a ~100 µs step run in-process versus under `leaklab run`, side by side.

    python benchmarks/runner_overhead.py [--seconds 5] [--rounds 3]

The in-process loop is the best case: the same step called back to back with no
sampling. Under the runner the step runs in a child process that also paces,
samples (every 0.5 s by default) and reports to the parent. Rounds alternate so
drift on a shared machine hits both sides alike. Target: ratio >= 0.97.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from leaklab import runner, scenario  # noqa: E402

SCENARIO = HERE / "scenarios" / "busy_100us.py"


def calibrate(step, state, target_s: float = 100e-6) -> int:
    """Adjust the work so one step takes about ``target_s`` on this machine."""
    work = state["work"]
    for _ in range(5):
        state["work"] = work
        n, start = 2000, time.perf_counter()
        for _ in range(n):
            step(state)
        per_step = (time.perf_counter() - start) / n
        work = max(1, int(work * target_s / per_step))
    return work


def in_process(step, state, seconds: float) -> float:
    steps, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        step(state)
        steps += 1
    return steps / (time.perf_counter() - start)


def under_runner(work: int, seconds: float, profile: str, out: str) -> float:
    config = runner.RunConfig(
        scenario=str(SCENARIO),
        params={"work": str(work)},
        duration_s=seconds,
        out=out,
        progress=False,
        profile=profile,
        probes=list(runner_probes(profile)),
    )
    result = runner.run(config)
    if result.status != "completed":
        raise SystemExit(f"run failed: {result.message}")
    # The step loop's own time, without process start-up and setup.
    return result.steps / seconds


def runner_probes(profile: str) -> tuple[str, ...]:
    from leaklab import probes

    return tuple(probes.resolve(profile, []))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    loaded = scenario.load(SCENARIO)
    state = loaded.setup(work=1500)
    work = calibrate(loaded.step, state)
    state["work"] = work
    rates: dict[str, list[float]] = {
        "in-process": [],
        "leaklab run --profile rss": [],
        "leaklab run (default profile)": [],
    }
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.rounds):
            rates["in-process"].append(in_process(loaded.step, state, args.seconds))
            rates["leaklab run --profile rss"].append(under_runner(work, args.seconds, "rss", out))
            rates["leaklab run (default profile)"].append(
                under_runner(work, args.seconds, "default", out)
            )
    base = statistics.median(rates["in-process"])
    print(
        f"step: {work} iterations ~ {1e6 / base:.0f} µs in-process; {args.rounds} rounds of "
        f"{args.seconds:g} s, medians\n"
    )
    print(f"{'mode':<32} {'steps/s':>10} {'ratio':>7}")
    for mode, values in rates.items():
        median = statistics.median(values)
        print(f"{mode:<32} {median:>10,.0f} {median / base:>7.3f}")
    print("\ntarget: leaklab run --profile rss >= 0.97 of in-process")


if __name__ == "__main__":
    main()
