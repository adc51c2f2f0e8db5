"""How often does the gate change its answer on unchanged code? (the flip rate)

Runs each case ``--repeat`` times through the real gate (runner + analysis), then
decides every run with three rules over the same measured interval (the gate's
default probe profile, ``rss``: no in-child probes):

* ``point``: fail when the point estimate is above the limit;
* ``ci-low`` (the gate's rule): fail only when the whole 95% interval is above it;
* ``ci-high``: fail unless the whole interval is at or below it (``undecided = "fail"``).

The flip rate of a rule on a case is the share of runs that disagree with that
rule's majority answer: 0 means the same answer every time. The verdict of every run is
counted too: a fixed variant's must be NO_LEAK, which the project's own gate requires.

    .venv/bin/python benchmarks/gate_stability.py                 # about 10 minutes
    .venv/bin/python benchmarks/gate_stability.py --case fixed --repeat 20 --duration 15s   # 60
    runs of the fixed variants .venv/bin/python benchmarks/gate_stability.py --repeat 5 --duration
    6s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leaklab import gate, units  # noqa: E402
from leaklab.analysis import analyze  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    scenario: str
    variant: str
    key: str  # the limit judged
    limit: str
    expect: str  # "pass" or "fail": what the code deserves
    params: tuple[tuple[str, object], ...] = ()
    rate: str | None = None


CASES = [
    Case("http-agent fixed", "http-agent", "fixed", "max_per_step", "256B", "pass"),
    Case("promise-retention fixed", "promise-retention", "fixed", "max_per_step", "256B", "pass"),
    Case("http-agent fixed, blocks", "http-agent", "fixed", "max_blocks_per_step", "0.5", "pass"),
    Case("http-agent listeners", "http-agent", "listeners", "max_per_step", "256B", "fail"),
    Case(
        "promise-retention pending_map",
        "promise-retention",
        "pending_map",
        "max_per_step",
        "256B",
        "fail",
    ),
    # A leak right at its limit: the limit is set afterwards to the median of the
    # measured growth, so half the point estimates land on each side of it.
    Case(
        "retain-bytes leaky, limit = its median",
        str(ROOT / "tests/scenarios/retain_bytes.py"),
        "leaky",
        "max_per_step",
        "median",
        "either",
        params=(("size", 1024),),
        rate="200/s",
    ),
]


def check_for(case: Case, duration: str) -> dict[str, object]:
    limit: object = case.limit
    if case.key == "max_blocks_per_step":
        limit = float(case.limit)
    elif case.limit == "median":
        limit = "1TB"  # placeholder: the real limit is the median measured, set after the runs
    raw: dict[str, object] = {
        "name": case.name,
        "scenario": case.scenario,
        "variant": case.variant,
        "duration": duration,
        case.key: limit,
        "params": dict(case.params),
    }
    if case.rate:
        raw["rate"] = case.rate
    return raw


def run_case(
    case: Case, repeat: int, duration: str, out: Path
) -> tuple[list[tuple[float, float, float, float]], list[str]]:
    """(value, lo, hi, limit) per step for each repetition, and each run's verdict."""
    config = gate.parse_config(
        {"out": str(out), "checks": [check_for(case, duration)]}, ROOT / "pyproject.toml", ""
    )
    check = config.checks[0]
    limit = check.limits[0]
    rows = []
    verdicts: list[str] = []
    for i in range(repeat):
        prepared = gate.validate_runs(config, ["benchmarks/gate_stability.py"])
        outcome = gate.run_gate(config, config.checks, prepared, 1, None)[0]
        if outcome.run_dir is None or outcome.status == "error":
            print(f"  {case.name} #{i + 1}: run error: {outcome.message}", flush=True)
            continue
        analysis = analyze(outcome.run_dir)
        growth = analysis.growth[limit.signal]
        value, (lo, hi) = growth.bytes_per_step, growth.ci95_per_step
        rows.append((value, lo, hi, limit.value))
        verdicts.append(analysis.verdict.label)
        print(
            (
                f"  {case.name} #{i + 1}: {value:,.3g}/step [{lo:,.3g}, {hi:,.3g}] "
                f"{analysis.verdict.label}"
            ),
            flush=True,
        )
    return rows, verdicts


def flips(fails: int, n: int) -> str:
    return f"{min(fails, n - fails)}/{n}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--duration", default="10s")
    parser.add_argument(
        "--case", action="append", help="only cases whose name contains this (repeatable)"
    )
    args = parser.parse_args()
    units.parse_duration(args.duration)
    cases = [c for c in CASES if not args.case or any(s in c.name for s in args.case)]
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="leaklab-gate-stability-") as tmp:
        for case in cases:
            rows, verdicts = run_case(case, args.repeat, args.duration, Path(tmp))
            results.append((case, rows, verdicts))
    print()
    print(
        f"gate flip rate: {args.repeat} runs of {args.duration} per case "
        f"({units.format_duration(time.monotonic() - started)} in all)"
    )
    header = (
        "case",
        "limit",
        "measured/step (median)",
        "CI half-width (median)",
        "deserves",
        "fails: point",
        "ci-low (gate)",
        "ci-high",
        "flips: point",
        "ci-low (gate)",
        "ci-high",
        "verdicts",
        "verdict flips",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for case, rows, verdicts in results:
        if not rows:
            continue
        if case.limit == "median":
            middle = statistics.median(v for v, _, _, _ in rows)
            rows = [(v, lo, hi, middle) for v, lo, hi, _ in rows]
        n = len(rows)
        point = sum(v > lim for v, _, _, lim in rows)
        low = sum(gate.decide(lo, hi, lim) == "fail" for _, lo, hi, lim in rows)
        high = sum(gate.decide(lo, hi, lim) != "pass" for _, lo, hi, lim in rows)
        unit = "blocks" if case.key == "max_blocks_per_step" else "B"
        median = statistics.median(v for v, _, _, _ in rows)
        half = statistics.median((hi - lo) / 2 for _, lo, hi, _ in rows)
        limit_text = f"{rows[0][3]:,.0f}B (median)" if case.limit == "median" else case.limit
        print(
            " | ".join(
                [
                    case.name,
                    limit_text,
                    f"{median:,.3g} {unit}",
                    f"{half:,.3g} {unit}",
                    case.expect,
                    f"{point}/{n}",
                    f"{low}/{n}",
                    f"{high}/{n}",
                    flips(point, n),
                    flips(low, n),
                    flips(high, n),
                    " ".join(
                        f"{label} x{verdicts.count(label)}" for label in sorted(set(verdicts))
                    ),
                    f"{n - max(verdicts.count(label) for label in set(verdicts))}/{n}",
                ]
            )
        )
    all_verdicts = [v for case, _, verdicts in results if case.expect == "pass" for v in verdicts]
    if all_verdicts:
        wrong = sum(v != "NO_LEAK" for v in all_verdicts)
        print(
            "\nverdict of the cases that deserve to pass: "
            f"{len(all_verdicts) - wrong}/{len(all_verdicts)} NO_LEAK, "
            f'{wrong} flips (the gate\'s `verdict = "NO_LEAK"` fails on each)'
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
