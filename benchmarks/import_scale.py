"""Import and rank a fleet: 1,000 series of 24 h at 15 s (5.76 million points) by default.

The fleet is written as one long CSV (time, pod, rss; a dashboard's export), then timed:
``leaklab import FLEET.csv --series pod`` and ``leaklab rank DIR --json``, each in its own
process, with its peak RSS. ``--source prometheus`` backfills the same samples into a real
Prometheus server (promtool, the Debian package) on 127.0.0.1 and times
``leaklab import --prometheus URL --query process_resident_memory_bytes`` instead. Imports stream
(the file is read in chunks and each run is appended to), so the peak stays far below the data's
size. Some pods leak (1-20 MB/h), some fill a cache and stop, some restart now and then; the leakers
must rank first.

    .venv/bin/python benchmarks/import_scale.py                # 1,000 x 24 h (target: < 30 s)
    .venv/bin/python benchmarks/import_scale.py --series 100 --hours 6   # short mode
    .venv/bin/python benchmarks/import_scale.py --source prometheus      # through a real Prometheus
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

LEAKCLI = str(Path(sys.executable).with_name("leaklab"))
STEP_S = 15.0
METRIC = "process_resident_memory_bytes"


def write_fleet(
    path: Path, n_series: int, hours: float, seed: int = 0, openmetrics: bool = False
) -> dict[str, float]:
    """The fleet's CSV (and with ``openmetrics``, the same samples in OpenMetrics text for
    promtool's backfill), ending a minute ago; returns the pods that leak and their MB/h."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / STEP_S)
    end = (int(time.time()) // 60 - 1) * 60
    t = end - (n - 1) * STEP_S + np.arange(n) * STEP_S
    leakers: dict[str, float] = {}
    frames = []
    for k in range(n_series):
        pod = f"pod-{k:04d}"
        base = rng.uniform(40e6, 400e6)
        noise = (
            rng.normal(0, 0.002 * base, n)
            + np.repeat(rng.normal(0, 0.001 * base, n // 40 + 1), 40)[:n]
        )
        kind = k % 20
        hours_since = (t - t[0]) / 3600
        if kind == 0:  # a leak: 1-20 MB/h, restarted every ~8 h
            rate = rng.uniform(1e6, 20e6)
            since_restart = np.mod(hours_since, rng.uniform(6, 10))
            y = base + rate * since_restart
            leakers[pod] = rate / 1e6
        elif kind == 1:  # a cache that fills within the first two hours
            y = base + 30e6 * (1 - np.exp(-hours_since / 0.5))
        else:
            y = np.full(n, base)
        frames.append(pd.DataFrame({"time": t, "pod": pod, "rss": np.round(y + noise)}))
    # One row per (time, pod), sorted by time: what a dashboard exports.
    fleet = pd.concat(frames).sort_values("time", kind="stable")
    fleet.to_csv(path, index=False)
    if openmetrics:
        lines = (
            METRIC
            + '{pod="'
            + fleet["pod"]
            + '"} '
            + fleet["rss"].astype("int64").astype(str)
            + " "
            + fleet["time"].astype("int64").astype(str)
        )
        with open(path.with_suffix(".om"), "w") as fh:
            fh.write(f"# TYPE {METRIC} gauge\n")
            fh.write("\n".join(lines))
            fh.write("\n# EOF\n")
    return leakers


def timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS (MB) of the command (its worker processes
    included), its stdout. The benchmark's own process stays small (the fleet is written
    by a child), since a child inherits its parent's RSS high-water mark."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().decode()


def from_prometheus(source: Path, root: Path, out: Path) -> tuple[float, float, float]:
    """Backfill the fleet into a Prometheus TSDB (promtool), serve it on 127.0.0.1, and time
    ``leaklab import --prometheus`` of every series over the whole range."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from prometheus_support import missing_reason, prometheus_binary, start_prometheus

    if prometheus_binary() is None or shutil.which("promtool") is None:
        raise SystemExit(missing_reason())
    data = root / "tsdb"
    started = time.perf_counter()
    subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(source.with_suffix(".om")),
            str(data),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"backfilled with promtool in {time.perf_counter() - started:.1f} s (not timed below)")
    source.with_suffix(".om").unlink()
    times = pd.read_csv(source, usecols=["time"])["time"]
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    server, url = start_prometheus(config, data, root / "prometheus.log", retention="30d")
    try:
        wall, cpu, peak, _ = timed(
            [
                LEAKCLI,
                "import",
                "--prometheus",
                url,
                "--query",
                METRIC,
                "--start",
                str(int(times.min())),
                "--end",
                str(int(times.max())),
                "--step",
                "15s",
                "--out",
                str(out),
                "--json",
            ]
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return wall, cpu, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--source",
        choices=["csv", "prometheus"],
        default="csv",
        help="import from the CSV export, or from a real Prometheus server holding the same "
        "samples (backfilled with promtool; the backfill is not timed)",
    )
    parser.add_argument("--write", metavar="CSV", help=argparse.SUPPRESS)
    parser.add_argument("--openmetrics", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write:
        leakers = write_fleet(
            Path(args.write), args.series, args.hours, openmetrics=args.openmetrics
        )
        Path(args.write).with_suffix(".leakers.json").write_text(json.dumps(leakers))
        return 0
    root = Path(tempfile.mkdtemp(prefix="leaklab-import-scale-"))
    try:
        source = root / "fleet.csv"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--write",
                str(source),
                "--series",
                str(args.series),
                "--hours",
                str(args.hours),
            ]
            + (["--openmetrics"] if args.source == "prometheus" else []),
            check=True,
        )
        rates = json.loads(source.with_suffix(".leakers.json").read_text())
        leakers = set(rates)
        points = args.series * int(args.hours * 3600 / STEP_S)
        print(
            f"fleet: {args.series} series x {args.hours:g} h at {STEP_S:g} s = {points:,} points, "
            f"{source.stat().st_size / 1e6:,.0f} MB of CSV (written in "
            f"{time.perf_counter() - started:.1f} s)"
        )
        out = root / "runs"
        load_before = os.getloadavg()[0]
        if args.source == "prometheus":
            import_s, import_cpu, import_mb = from_prometheus(source, root, out)
        else:
            import_s, import_cpu, import_mb, _ = timed(
                [
                    LEAKCLI,
                    "import",
                    str(source),
                    "--series",
                    "pod",
                    "--memory",
                    "rss",
                    "--out",
                    str(out),
                    "--json",
                ]
            )
        rank_s, rank_cpu, rank_mb, text = timed(
            [LEAKCLI, "rank", str(out), "--json", "--jobs", str(args.jobs)]
        )
        rows = json.loads(text)["rows"]
        top = {r["labels"].get("pod") for r in rows[: len(leakers)]}
        judged = {r["labels"].get("pod") for r in rows if r["verdict"] == "LEAK"}
        total = import_s + rank_s
        print(
            f"import  {import_s:6.1f} s wall  {import_cpu:6.1f} s CPU   peak RSS "
            f"{import_mb:6.0f} MB"
        )
        print(
            f"rank    {rank_s:6.1f} s wall  {rank_cpu:6.1f} s CPU   peak RSS {rank_mb:6.0f} "
            f"MB   ({args.jobs} jobs)"
        )
        print(
            f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before the import, "
            f"{os.getloadavg()[0]:.1f} at the end (other work slows the wall time)"
        )
        print(
            f"total   {total:6.1f} s   target < 30 s at 1,000 x 24 h: "
            f"{'met' if total < 30 else 'NOT met'}"
        )
        print(
            f"leakers {len(leakers)}: {len(top & leakers)} ranked in the top {len(leakers)}, "
            f"{len(judged & leakers)} judged LEAK; {len(judged - leakers)} other pods judged LEAK"
        )
        missed = sorted(
            (rates[r["labels"]["pod"]], r["verdict"])
            for r in rows
            if r["labels"].get("pod") in leakers and r["verdict"] != "LEAK"
        )
        if missed:
            print(
                "leakers not judged LEAK (true MB/h, verdict): "
                + ", ".join(f"{rate:.1f} {verdict}" for rate, verdict in missed)
            )
        return 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
