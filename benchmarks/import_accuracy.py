"""Accuracy on imported series: labelled memory series at production resolution, exported as
production exports them, imported with ``leaklab import``'s readers and judged; printed as
confusion tables.

Each labelled case (tests/synthetic.py's physics, at production scale: 6 h at 20 requests/s,
leaks of 2 to 50 MB/h, a 100 MB/h leak restarted every 20 minutes as the incident's PM2 did,
and look-alikes that fill a cache, clear a structure every 20 minutes, churn random sizes or
fragment) is sampled every 5 s, then scraped every 15 s as Prometheus would. A restarted
process answers no scrape until it is up again (1 to 10 s), so a scrape then is lost, as in
production. Each series goes through three *disruptions*:

* ``clean``: every scrape (the recycled leak still restarts every 20 minutes);
* ``gaps``: 3% of scrapes lost and one 10-minute outage;
* ``restarts``: the process also restarts every 2 h;

and is exported four ways, each carrying only what that kind of export carries (its
*evidence* of restarts):

* ``memory``: a dashboard's CSV of one metric (time, bytes): nothing says when a process
  restarted; restarts are inferred from drops to the baseline;
* ``prometheus``: a saved ``/api/v1/query_range`` answer holding
  ``process_resident_memory_bytes`` and ``process_start_time_seconds`` (prometheus_client's
  process collector exports both at every scrape), read by the Prometheus reader;
* ``pid``: a CSV with a pid column (a ps-style logger);
* ``count``: a CSV with the process' own request counter (it starts over with its process,
  and makes growth per request).

A verdict is *right* when a leak is judged LEAK and a bounded case anything in its expected
set (NO_LEAK or PLATEAU); *undecided* when it is INCONCLUSIVE (counted apart: not right, not a
confident wrong answer); *wrong* otherwise. For comparison, Precog (arXiv 2101.09799), an
online detector that sees only memory utilisation, reports 85% on 60 labelled VMs of its own.

    .venv/bin/python benchmarks/import_accuracy.py             # 5 seeds (about a minute)
    .venv/bin/python benchmarks/import_accuracy.py --seeds 1   # short mode
    .venv/bin/python benchmarks/import_accuracy.py --why       # the reasons of every miss
    .venv/bin/python benchmarks/import_accuracy.py --restart-drop off
"""

from __future__ import annotations

import argparse
import json
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
from leaklab.importers.prometheus import import_saved
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
DOWN_S = (1.0, 10.0)  # a restarted process answers no scrape for this long
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
DISRUPTIONS = ("clean", "gaps", "restarts")
EVIDENCE = ("memory", "prometheus", "pid", "count")
#: Cases whose process restarts in every form, and how often (generations in the 6 h); the
#: ``restarts`` disruption of the others restarts every 2 h.
RECYCLED = {"recycled-leak": 18}
SHORT = {"LEAK": "L", "PLATEAU": "P", "NO_LEAK": "N", "INCONCLUSIVE": "I"}


def fine_series(case: synthetic.Case, seed: int, generations: int) -> pd.DataFrame:
    """Every 5 s: time (epoch s), rss, requests served by the process, its pid, its start time
    and until when it answers (its restart's end, when the next process is up)."""
    rng = np.random.default_rng(seed + 7919)
    parts = []
    length = case.duration_s / generations
    for g in range(generations):
        piece = synthetic.replace(case, duration_s=length)
        _, columns, _ = synthetic.generate(piece, seed=seed * 100 + g)
        t = np.asarray(columns["t"]) + g * length
        down = rng.uniform(*DOWN_S) if g else 0.0
        part = pd.DataFrame(
            {
                "time": T0 + t,
                "rss": columns["rss"],
                "requests": columns["steps"],
                "pid": 1000 + g,
                "started": T0 + g * length,
                "answers_until": T0 + (g + 1) * length if g < generations - 1 else np.inf,
            }
        )
        parts.append(part[part["time"] >= T0 + g * length + down])
    return pd.concat(parts, ignore_index=True)


def scraped(fine: pd.DataFrame, disruption: str, rng: np.random.Generator) -> pd.DataFrame:
    """The series as a 15 s scrape sees it: the last sample at or before each scrape time, none
    while a restarting process is down."""
    grid = np.arange(fine["time"].iloc[0] + SCRAPE_S, fine["time"].iloc[-1], SCRAPE_S)
    idx = np.searchsorted(fine["time"].to_numpy(), grid, side="right") - 1
    out = fine.iloc[idx].assign(time=grid).reset_index(drop=True)
    out = out[out["time"] < out["answers_until"]]
    if disruption == "gaps":
        keep = rng.uniform(size=len(out)) > 0.03
        outage = int(rng.integers(len(out) // 4, 3 * len(out) // 4))
        keep[outage : outage + int(600 / SCRAPE_S)] = False
        out = out[keep]
    return out.drop(columns="answers_until").reset_index(drop=True)


def prometheus_answer(frame: pd.DataFrame) -> dict[str, object]:
    """A saved range-query answer of the memory and the start time of one instance."""
    labels = {"instance": "app:8000", "job": "app"}

    def series(name: str, column: str) -> dict[str, object]:
        pairs = zip(frame["time"], frame[column], strict=True)
        values = [[float(t), repr(float(v))] for t, v in pairs]
        return {"metric": {"__name__": name, **labels}, "values": values}

    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                series("process_resident_memory_bytes", "rss"),
                series("process_start_time_seconds", "started"),
            ],
        },
    }


def judge(frame: pd.DataFrame, evidence: str, root: Path, rule: RestartRule) -> tuple[str, str]:
    """The verdict on ``frame`` exported as ``evidence`` says, and its first reasons."""
    kind = "prometheus" if evidence == "prometheus" else "csv"
    path = root / ("answer.json" if kind == "prometheus" else "export.csv")
    with RunSink(
        root / "runs",
        {"kind": kind, "from": str(path)},
        name=evidence,
        warmup_s=WARMUP_S,
        rule=rule,
        counts_steps=evidence == "count",
    ) as sink:
        if kind == "prometheus":
            path.write_text(json.dumps(prometheus_answer(frame)))
            import_saved(path, sink)
        else:
            kept = {"memory": [], "pid": ["pid"], "count": ["requests"]}[evidence]
            frame[["time", "rss", *kept]].to_csv(path, index=False)
            columns = CsvColumns(
                time="time",
                memory="rss",
                pid="pid" if evidence == "pid" else None,
                count="requests" if evidence == "count" else None,
            )
            import_csv(path, sink, columns)
        [run] = sink.finish()
    verdict = analyze(run).verdict
    shutil.rmtree(run)
    return verdict.label, " ".join(verdict.reasons[:3])


def outcome(case: synthetic.Case, label: str) -> str:
    if label in case.expected:
        return "right"
    return "undecided" if label == "INCONCLUSIVE" else "wrong"


def collect(seeds: int, rule: RestartRule, root: Path) -> list[dict[str, str]]:
    """Every case, seed, disruption and evidence: its verdict and reasons."""
    results = []
    for case in CASES:
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            one = fine_series(case, seed, RECYCLED.get(case.name, 1))
            three = fine_series(case, seed, RECYCLED.get(case.name, 3))
            for disruption in DISRUPTIONS:
                frame = scraped(three if disruption == "restarts" else one, disruption, rng)
                for evidence in EVIDENCE:
                    label, why = judge(frame, evidence, root, rule)
                    results.append(
                        {
                            "case": case.name,
                            "seed": str(seed),
                            "disruption": disruption,
                            "evidence": evidence,
                            "label": label,
                            "outcome": outcome(case, label),
                            "why": why,
                        }
                    )
    return results


def _cell(rows: list[dict[str, str]]) -> str:
    """``L5`` or ``N3 P2``: the verdicts of some results, with ``!`` on a wrong one."""
    counts = Counter(r["label"] for r in rows)
    wrong = any(r["outcome"] == "wrong" for r in rows)
    text = " ".join(f"{SHORT[label]}{counts[label]}" for label in LABELS if counts[label])
    return text + ("!" if wrong else "")


def _score(rows: list[dict[str, str]]) -> str:
    n = Counter(r["outcome"] for r in rows)
    total = len(rows)
    return (
        f"{n['right'] / total:4.0%} right ({n['right']}/{total}), {n['wrong']} wrong, "
        f"{n['undecided']} undecided"
    )


def report(results: list[dict[str, str]]) -> None:
    """Verdicts per case and export, accuracy per form, the confusion table."""
    by: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
    for r in results:
        by[(r["case"], r["evidence"], r["disruption"])].append(r)
        by[(r["evidence"], r["disruption"])].append(r)
        by[(r["evidence"],)].append(r)
        by[(r["disruption"],)].append(r)
    print(
        "verdicts (L LEAK, P PLATEAU, N NO_LEAK, I INCONCLUSIVE; ! a wrong one) per case, "
        "export and disruption:\n"
    )
    print(f"{'case':<20} {'export':<11} " + " ".join(f"{d:<12}" for d in DISRUPTIONS))
    for case in CASES:
        for evidence in EVIDENCE:
            cells = [_cell(by[(case.name, evidence, d)]) for d in DISRUPTIONS]
            print(f"{case.name:<20} {evidence:<11} " + " ".join(f"{c:<12}" for c in cells))
    print("\naccuracy per form:")
    for evidence in EVIDENCE:
        for disruption in DISRUPTIONS:
            print(f"  {evidence:<11} {disruption:<9} {_score(by[(evidence, disruption)])}")
    print()
    for key in [(e,) for e in EVIDENCE] + [(d,) for d in DISRUPTIONS]:
        print(f"  {key[0] + ' (all)':<21} {_score(by[key])}")
    print("\nconfusion (truth by row, verdict by column):")
    print(f"{'':<10} " + " ".join(f"{label:>12}" for label in LABELS))
    expected = {c.name: c.expected for c in CASES}
    for truth in ("leak", "not leak"):
        rows = [r for r in results if ("LEAK" in expected[r["case"]]) == (truth == "leak")]
        counts = Counter(r["label"] for r in rows)
        print(f"{truth:<10} " + " ".join(f"{counts[label]:>12}" for label in LABELS))
    n = Counter(r["outcome"] for r in results)
    decided = n["right"] + n["wrong"]
    print(
        f"\noverall: {_score(results)}; right when decided {n['right']}/{decided} = "
        f"{n['right'] / decided:.1%} (Precog, memory only: 85%)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--restart-drop",
        choices=("on", "off"),
        default="on",
        help="restart detection by a drop to the baseline (leaklab import's default: on)",
    )
    parser.add_argument("--why", action="store_true", help="print the reasons of every miss")
    args = parser.parse_args(argv)
    rule = RestartRule() if args.restart_drop == "on" else RestartRule(drop=None)
    root = Path(tempfile.mkdtemp(prefix="leaklab-import-accuracy-"))
    started = time.perf_counter()
    try:
        results = collect(args.seeds, rule, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{len(CASES)} cases x {len(DISRUPTIONS)} disruptions x {len(EVIDENCE)} exports x "
        f"{args.seeds} seeds, {HOURS:g} h each at {SCRAPE_S:g} s (warm-up "
        f"{WARMUP_S / 60:g} min per process), restart detection by a drop "
        f"{args.restart_drop}, in {time.perf_counter() - started:.0f} s\n"
    )
    report(results)
    if args.why:
        print("\nevery verdict that is not right:")
        for r in results:
            if r["outcome"] != "right":
                print(
                    f"{r['case']} seed {r['seed']} {r['evidence']}/{r['disruption']}: "
                    f"{r['label']}: {r['why']}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
