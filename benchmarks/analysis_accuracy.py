"""Detection accuracy of the analysis on synthetic runs with known growth.

Each case of :data:`synthetic.CASES` (tests/synthetic.py) is recorded with the store's
writer (several seeds: independent noise each), read back and analysed. Printed:
true vs estimated rate per case and signal (median over seeds, worst error, how
often the 95% interval holds the truth) and the verdicts, then the issue's targets.

    .venv/bin/python benchmarks/analysis_accuracy.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from leaklab.analysis import analyze

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "tests")
)  # the synthetic-run generator
import synthetic  # noqa: E402

BOUNDED = {"cache-fills", "sawtooth-4s", "sawtooth-8s", "sawtooth-4s-5min", "fragmentation"}


def _truth(case: synthetic.Case, signal: str) -> float:
    return case.true_blocks_per_step if signal == "blocks" else case.true_bytes_per_step


def _fmt(value: float, signal: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.3f}" if signal == "blocks" else f"{value:,.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="leaklab-accuracy-"))
    failures: list[str] = []
    rows: list[tuple[str, ...]] = []
    verdict_rows: list[tuple[str, ...]] = []
    started = time.perf_counter()
    try:
        for case in synthetic.CASES:
            labels: Counter[str] = Counter()
            per_signal: dict[str, list[tuple[float, tuple[float, float], str]]] = {}
            for seed in range(args.seeds):
                run = synthetic.write_run(case, root, seed=1000 + seed)
                a = analyze(run)
                labels[a.verdict.label] += 1
                for name, g in a.growth.items():
                    per_signal.setdefault(name, []).append(
                        (g.bytes_per_step, g.ci95_per_step, a.signal_verdicts[name].label)
                    )
            wrong = sum(
                n
                for label, n in labels.items()
                if label not in case.expected and label != "INCONCLUSIVE"
            )
            undecided = labels.get("INCONCLUSIVE", 0) if "INCONCLUSIVE" not in case.expected else 0
            verdict_rows.append(
                (
                    case.name,
                    f"{case.rate:g}/s, {case.duration_s:g}s",
                    "|".join(case.expected),
                    ", ".join(f"{k} {v}" for k, v in labels.most_common()),
                    str(wrong),
                    str(undecided),
                )
            )
            if wrong:
                failures.append(f"{case.name}: {wrong} wrong verdicts ({dict(labels)})")
            if case.name in BOUNDED and labels.get("LEAK"):
                failures.append(f"{case.name}: called LEAK {labels['LEAK']} times")
            if case.name == "fast-1KB-10s" and labels.get("LEAK", 0) != args.seeds:
                failures.append(f"{case.name}: LEAK in {labels.get('LEAK', 0)}/{args.seeds} seeds")
            for name, results in per_signal.items():
                truth = _truth(case, name)
                estimates = np.array([r[0] for r in results])
                covered = sum(1 for _, (lo, hi), _ in results if lo <= truth <= hi)
                signal_labels = Counter(r[2] for r in results)
                if truth:
                    errors = np.abs(estimates / truth - 1) * 100
                    worst = f"{np.nanmax(errors):.1f}%"
                    big = truth >= 1024 or (name == "blocks" and case.duration_s >= 60)
                    if big and case.duration_s >= 60 and np.nanmax(errors) > 5:
                        failures.append(
                            f"{case.name}/{name}: worst error {np.nanmax(errors):.1f}% > 5%"
                        )
                else:
                    worst = f"{np.nanmax(np.abs(estimates)):.3g} abs"
                # A bounded case has no single true slope over the window: coverage means nothing
                # there.
                holds = "n/a" if case.name in BOUNDED else f"{covered}/{len(results)}"
                rows.append(
                    (
                        case.name,
                        name,
                        _fmt(truth, name),
                        _fmt(float(np.nanmedian(estimates)), name),
                        worst,
                        holds,
                        ", ".join(f"{k} {v}" for k, v in signal_labels.most_common()),
                    )
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    _print_table(
        (
            "case",
            "signal",
            "true/step",
            "estimate (median)",
            "worst error",
            "CI holds truth",
            "signal verdicts",
        ),
        rows,
    )
    print()
    _print_table(("case", "run", "expected", "verdicts", "wrong", "undecided"), verdict_rows)
    print()
    print(
        f"{args.seeds} seeds per case, {time.perf_counter() - started:.1f}s; bytes per step "
        "for rss/uss, blocks per step for blocks"
    )
    print(
        "targets: <=5% error at >=1KB/step on 60s runs; no wrong verdict; fast-1KB-10s LEAK "
        "every time; bounded cases never LEAK"
    )
    if failures:
        print("MISSED:\n  " + "\n  ".join(failures))
        return 1
    print("all targets met")
    return 0


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
