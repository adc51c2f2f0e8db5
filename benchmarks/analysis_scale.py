"""Analysis at scale: a 24 h run sampled at 1 Hz (86,400 rows), loaded and analysed.

The run is written once with the store's writer (a 1 KB/step leak at 20 steps/s
with the synthetic noise); then a fresh process times ``store.read_run`` and ``analyze`` (the first
call, as ``leaklab analyze`` pays it, and the best of a few) and reports its peak RSS. The
imports happen before the clock starts.

    .venv/bin/python benchmarks/analysis_scale.py [--rows 86400] [--repeat 3]

Targets (issue 4): load + analyse in under 1 s and under 200 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "tests")
)  # the synthetic-run generator
import synthetic  # noqa: E402

MEASURE = r"""
import json, resource, sys, time, warnings
import numpy  # imports are not what is measured
from leaklab import store
from leaklab.analysis import analyze

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 1e6

path, repeat = sys.argv[1], int(sys.argv[2])
before = rss_mb()
loads, analyses = [], []
run = a = None
for _ in range(repeat):
    run = a = None  # one run in memory at a time, as in `leaklab analyze`
    t0 = time.perf_counter()
    run = store.read_run(path)
    t1 = time.perf_counter()
    a = analyze(run)
    t2 = time.perf_counter()
    loads.append(t1 - t0)
    analyses.append(t2 - t1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
print(json.dumps({"rows": run.n_samples, "load_s": min(loads), "analyze_s": min(analyses),
                  "first_load_s": loads[0], "first_analyze_s": analyses[0],
                  "rss_before_mb": before, "peak_mb": peak, "verdict": a.verdict.label,
                  "rss_per_step": a.growth["rss"].bytes_per_step}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=86_400)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    case = replace(
        synthetic.case("retain-1KB"),
        name="day-1KB",
        rate=20.0,
        duration_s=float(args.rows - 1),
        interval_s=1.0,
        noise=replace(synthetic.Noise(), gc_period_s=600.0),
    )
    root = Path(tempfile.mkdtemp(prefix="leaklab-scale-"))
    try:
        run = synthetic.write_run(case, root)
        size_mb = (run / "samples.csv").stat().st_size / 1e6
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, str(run), str(args.repeat)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = result["load_s"] + result["analyze_s"]
    peak = result["peak_mb"]
    print(f"rows                 {result['rows']:,} ({size_mb:.1f} MB samples.csv)")
    first = result["first_load_s"] + result["first_analyze_s"]
    print(
        f"store.read_run       {result['load_s']:.3f} s  (first call "
        f"{result['first_load_s']:.3f} s)"
    )
    print(
        f"analyze              {result['analyze_s']:.3f} s  (first call "
        f"{result['first_analyze_s']:.3f} s)"
    )
    print(
        f"load + analyze       {total:.3f} s best of {args.repeat}, {first:.3f} s first call   "
        f"target < 1 s   ratio {first / 1.0:.2f}"
    )
    print(
        f"peak RSS             {peak:.0f} MB (after imports {result['rss_before_mb']:.0f} MB)   "
        f"target < 200 MB   ratio {peak / 200:.2f}"
    )
    print(
        f"result               {result['verdict']}, rss {result['rss_per_step']:.1f} B/step "
        "(true 1024)"
    )
    ok = first < 1.0 and peak < 200
    print("all targets met" if ok else "MISSED a target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
