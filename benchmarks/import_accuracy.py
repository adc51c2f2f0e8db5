"""Accuracy on imported series: labelled memory series at production resolution, imported as
CSV exports and judged; printed as a confusion table.

Each labelled case (tests/synthetic.py's physics, at production scale:
6 h at 20 requests/s, leaks of 2 to 50 MB/h, a 100 MB/h leak restarted every 20 minutes
as the incident's PM2 did, and look-alikes that fill a cache, clear a structure every 20
minutes, churn random sizes or fragment) is sampled every 5 s, then
resampled to 15 s as Prometheus would scrape it and imported with ``leaklab import``'s
CSV reader, in four forms:

* ``clean``: every scrape;
* ``gaps``: 3% of scrapes lost and one 10-minute outage;
* ``restarts+pid``: the process restarts every 2 h, with a pid column (as a ``pid`` label);
* ``restarts``: the same restarts with no pid: found by the drop to the baseline.

Each form is imported twice: with restart detection by a drop to the baseline (the
default) and without it (``--restart-drop off``). Memory alone cannot tell a restart from
a structure cleared in a live process; the two tables show what each choice costs.

The verdict is right when a leak is judged LEAK and a bounded case anything in its
expected set (NO_LEAK or PLATEAU). For comparison, Precog (arXiv 2101.09799), an online
detector that sees only memory utilisation, reports 85% on 60 labelled VMs.

    .venv/bin/python benchmarks/import_accuracy.py             # 5 seeds (about 2 minutes)
    .venv/bin/python benchmarks/import_accuracy.py --seeds 1   # short mode
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from leaklab.analysis import analyze
from leaklab.importers import RestartRule, RunSink
from leaklab.importers.csv_source import CsvColumns, import_csv
from leaklab.kinds import VERDICTS as LABELS

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "tests")
)  # the synthetic-run generator
import synthetic  # noqa: E402

RATE = 20.0  # requests per second
HOURS = 6.0
FINE_S = 5.0  # the process is sampled this often, then scraped every 15 s
SCRAPE_S = 15.0
WARMUP_S = 600.0
T0 = 1_764_547_200


def per_step(mb_per_hour: float) -> float:
    return mb_per_hour * 1e6 / 3600 / RATE


NOISE = synthetic.Noise(base_rss=120e6, gc_period_s=30.0)
BASE = dict(rate=RATE, duration_s=HOURS * 3600, interval_s=FINE_S, warmup_fraction=0.0, noise=NOISE)
NOT_LEAK = ("NO_LEAK", "PLATEAU")
CASES: tuple[synthetic.Case, ...] = (
    synthetic.Case("steady", expected=NOT_LEAK, **BASE),
    synthetic.Case("leak-2MB/h", bytes_per_step=per_step(2), expected=("LEAK",), **BASE),
    synthetic.Case("leak-10MB/h", bytes_per_step=per_step(10), expected=("LEAK",), **BASE),
    synthetic.Case("leak-50MB/h", bytes_per_step=per_step(50), expected=("LEAK",), **BASE),
    # The incident's shape: a fast leak that a supervisor restarts every 20 minutes (at a limit).
    synthetic.Case("recycled-leak", bytes_per_step=per_step(100), expected=("LEAK",), **BASE),
    synthetic.Case(
        "cache-fills", bytes_per_step=per_step(20), bound_bytes=30e6, expected=NOT_LEAK, **BASE
    ),
    synthetic.Case(
        "clears-every-20min",
        bytes_per_step=per_step(40),
        clear_every_s=1200,
        returns_memory=True,
        expected=NOT_LEAK,
        **BASE,
    ),
    synthetic.Case("random-sizes", churn_bytes=20e6, expected=NOT_LEAK, **BASE),
    synthetic.Case("fragmentation", fragmentation_bytes=25e6, expected=NOT_LEAK, **BASE),
)
FORMS = ("clean", "gaps", "restarts+pid", "restarts")
#: Cases whose process restarts in every form, and how often (generations in the 6 h); the
#: ``restarts`` forms of the others restart every 2 h.
RECYCLED = {"recycled-leak": 18}
#: Restart detection by a drop to the baseline: on (the default) and off (``--restart-drop off``).
RULES = {"drop on": RestartRule(), "drop off": RestartRule(drop=None)}


def fine_series(case: synthetic.Case, seed: int, generations: int) -> pd.DataFrame:
    """Time (epoch s), rss and pid of ``case``: one process, or ``generations`` one after
    another."""
    parts = []
    length = case.duration_s / generations
    for g in range(generations):
        piece = synthetic.replace(case, duration_s=length)
        _, columns, _ = synthetic.generate(piece, seed=seed * 100 + g)
        t = np.asarray(columns["t"]) + g * length
        parts.append(pd.DataFrame({"time": T0 + t, "rss": columns["rss"], "pid": 1000 + g}))
    return pd.concat(parts, ignore_index=True)


def scraped(fine: pd.DataFrame, form: str, rng: np.random.Generator) -> pd.DataFrame:
    """The series as a 15 s scrape sees it: the last sample at or before each scrape time."""
    grid = np.arange(fine["time"].iloc[0] + SCRAPE_S, fine["time"].iloc[-1], SCRAPE_S)
    idx = np.searchsorted(fine["time"].to_numpy(), grid, side="right") - 1
    out = fine.iloc[idx].assign(time=grid).reset_index(drop=True)
    if form == "gaps":
        keep = rng.uniform(size=len(out)) > 0.03
        outage = int(rng.integers(len(out) // 4, 3 * len(out) // 4))
        keep[outage : outage + int(600 / SCRAPE_S)] = False
        out = out[keep]
    if form != "restarts+pid":
        out = out.drop(columns="pid")
    return out


def judge(frame: pd.DataFrame, root: Path, name: str, rule: RestartRule) -> str:
    path = root / f"{name}.csv"
    frame.to_csv(path, index=False)
    columns = CsvColumns(time="time", memory="rss", pid="pid" if "pid" in frame else None)
    with RunSink(
        root / "runs", {"kind": "csv", "from": str(path)}, name=name, warmup_s=WARMUP_S, rule=rule
    ) as sink:
        import_csv(path, sink, columns)
        [run] = sink.finish()
    label = analyze(run).label
    shutil.rmtree(run)
    return label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="leaklab-import-accuracy-"))
    started = time.perf_counter()
    verdicts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    try:
        for case in CASES:
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                one = fine_series(case, seed, RECYCLED.get(case.name, 1))
                three = fine_series(case, seed, RECYCLED.get(case.name, 3))
                for form in FORMS:
                    fine = three if form.startswith("restarts") else one
                    frame = scraped(fine, form, rng)
                    for rule_name, rule in RULES.items():
                        label = judge(
                            frame, root, f"{case.name.replace('/', '-')}-{seed}-{form}", rule
                        )
                        verdicts[(case.name, form, rule_name)][label] += 1
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"{len(CASES)} cases x {len(FORMS)} forms x {args.seeds} seeds, {HOURS:g} h each at "
        f"{SCRAPE_S:g} s (warm-up {WARMUP_S / 60:g} min per process), in "
        f"{time.perf_counter() - started:.0f} s\n"
    )
    for rule_name in RULES:
        print(f"restart detection by a drop to the baseline: {rule_name.split()[1]}\n")
        print(
            f"{'case':<20} {'form':<14} " + " ".join(f"{label:>12}" for label in LABELS) + "  right"
        )
        right_by_form: Counter[str] = Counter()
        total_by_form: Counter[str] = Counter()
        confusion: dict[str, Counter[str]] = {"leak": Counter(), "not leak": Counter()}
        for case in CASES:
            for form in FORMS:
                counts = verdicts[(case.name, form, rule_name)]
                right = sum(n for label, n in counts.items() if label in case.expected)
                right_by_form[form] += right
                total_by_form[form] += sum(counts.values())
                confusion["leak" if "LEAK" in case.expected else "not leak"].update(counts)
                print(
                    f"{case.name:<20} {form:<14} "
                    + " ".join(f"{counts[label]:>12}" for label in LABELS)
                    + f"  {right}/{sum(counts.values())}"
                )
        print("\nconfusion (truth by row, verdict by column):")
        print(f"{'':<10} " + " ".join(f"{label:>12}" for label in LABELS))
        for truth, counts in confusion.items():
            print(f"{truth:<10} " + " ".join(f"{counts[label]:>12}" for label in LABELS))
        total_right = sum(right_by_form.values())
        total = sum(total_by_form.values())
        print(
            "accuracy by form: "
            + ", ".join(f"{form} {right_by_form[form] / total_by_form[form]:.0%}" for form in FORMS)
        )
        print(
            f"accuracy overall: {total_right}/{total} = {total_right / total:.1%} "
            "(Precog, memory only: 85%)\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
