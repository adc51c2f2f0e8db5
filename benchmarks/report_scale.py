"""Time to build a report over a 24 h run sampled at 1 Hz (86,400 rows), synthetic.

    python benchmarks/report_scale.py [--hours 24] [--interval 1] [--rounds 3]

Writes two synthetic runs with the analysis's own generator (a 64 B/step leak and no
retention, 37 steps/s, realistic noise) through the store's writer, then times
``leaklab report`` on one run and on the before/after pair, read from disk each
time. Prints the best of ``--rounds`` next to the target. Target: under 5 s.
Charts are thinned for drawing only; every number is computed on all rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # the synthetic-run generator

import synthetic  # noqa: E402

from leaklab import store  # noqa: E402
from leaklab.analysis import analyze  # noqa: E402
from leaklab.report import build, selection  # noqa: E402

TARGET_S = 5.0


def best_of(rounds: int, fn) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval, seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="also write the pair report here, to look at")
    args = parser.parse_args()
    duration = args.hours * 3600
    with tempfile.TemporaryDirectory(prefix="leaklab-report-scale-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        leaky = synthetic.write_run(
            replace(
                synthetic.case("retain-64B"),
                duration_s=duration,
                interval_s=args.interval,
                rate=37.0,
            ),
            root / "runs",
            seed=1,
        )
        fixed = synthetic.write_run(
            replace(
                synthetic.case("no-retention"),
                duration_s=duration,
                interval_s=args.interval,
                rate=37.0,
            ),
            root / "runs",
            seed=2,
        )
        rows = store.read_run(leaky).n_samples
        print(
            f"wrote 2 synthetic runs of {rows:,} rows each in {time.perf_counter() - started:.1f}s"
        )

        read_s = best_of(args.rounds, lambda: store.read_run(leaky))
        analyze_s = best_of(args.rounds, lambda: analyze(store.read_run(leaky)))
        single_s = best_of(
            args.rounds, lambda: build.build(selection.single(leaky), root / "single")
        )
        pair_s = best_of(
            args.rounds, lambda: build.build(selection.pair(leaky, fixed), root / "pair")
        )
        charts = len(list((root / "pair").glob("*.png")))
        html_kb = (root / "pair" / build.REPORT_HTML).stat().st_size / 1e3
        if args.keep:
            build.build(selection.pair(leaky, fixed), args.keep)

    print(f"{'':<34}{'measured':>10}{'target':>10}{'ratio':>8}")
    print(f"{'read run (1 run)':<34}{read_s:>9.2f}s{'':>10}{'':>8}")
    print(f"{'read + analyze (1 run)':<34}{analyze_s:>9.2f}s{'':>10}{'':>8}")
    for name, value in (("report, one run", single_s), ("report, before/after pair", pair_s)):
        print(f"{name:<34}{value:>9.2f}s{TARGET_S:>9.1f}s{value / TARGET_S:>8.2f}")
    print(
        f"pair report: {charts} charts, report.html {html_kb:,.0f} KB; best of {args.rounds} rounds"
    )
    ok = max(single_s, pair_s) < TARGET_S
    print(
        "PASS" if ok else "FAIL",
        f"(target: under {TARGET_S:.0f} s for a {args.hours:g} h run at {1 / args.interval:g} Hz)",
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
