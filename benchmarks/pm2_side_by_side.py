"""The leaky Node.js service recycled by PM2 (max_memory_restart) and by `leaklab run --recycle`,
side by side: restarts/h, memory at restart, downtime per restart, success rate.

    python benchmarks/pm2_side_by_side.py            # short: 300 req/s, 80 MB, 2 s checks, 40 s
    each python benchmarks/pm2_side_by_side.py --full     # PM2's defaults: 150 MB, 30 s checks, 5
    min each

Both sides run `scenarios/node/server.js --variant leaky` with the incident's flags
(--expose-gc --max-old-space-size=200), the same open-loop load (leaklab's load generator,
GET / at --rate) and the same limit and check interval (PM2_WORKER_INTERVAL for PM2,
--check-interval for leaklab). PM2 is the project-local one (.venv/node), under a private
PM2_HOME whose daemon is killed at the end; `leaklab watch --pm2` records it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from leaklab import store, units  # noqa: E402
from leaklab.analysis.recycling import analyze_recycling  # noqa: E402
from leaklab.runner import load  # noqa: E402
from leaklab.runner.command import free_port  # noqa: E402

SERVER = ROOT / "scenarios" / "node" / "server.js"
PM2 = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "pm2"
NODE_FLAGS = "--expose-gc --max-old-space-size=200"


def _leaklab(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "leaklab", args[0], "--json", *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"leaklab {args[0]} failed ({done.returncode}): {done.stderr[-1500:]}")
    return json.loads(done.stdout)


def under_pm2(rate: float, limit: int, check_s: float, duration_s: float, out: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="leaklab-pm2-"))
    env = {**os.environ, "PM2_HOME": str(home), "PM2_WORKER_INTERVAL": str(int(check_s * 1000))}
    port = free_port()
    try:
        subprocess.run(
            [
                str(PM2),
                "start",
                str(SERVER),
                "--name",
                "leaky",
                "--max-memory-restart",
                str(limit),
                f"--node-args={NODE_FLAGS}",
                "--",
                "--port",
                str(port),
                "--variant",
                "leaky",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "leaklab",
                "watch",
                "--pm2",
                "leaky",
                "--pm2-bin",
                str(PM2),
                "--duration",
                f"{duration_s}s",
                "--interval",
                "0.25s",
                "--out",
                str(out),
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        rows: list[dict] = []
        traffic = load.LoadGenerator(
            load.LoadConfig(rate=rate, duration_s=duration_s), time.monotonic(), rows.append
        )
        traffic.set_target(port, 0)
        traffic.start()
        traffic.join(duration_s + 30)
        stdout, stderr = watch.communicate(timeout=120)
        if watch.returncode != 0:
            raise SystemExit(f"leaklab watch --pm2 failed: {stderr[-1500:]}")
        summary = json.loads(stdout)
    finally:
        subprocess.run([str(PM2), "kill"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
    run = store.read_run(summary["run_dir"])
    restarts = run.events_of("restart")
    sent = traffic.summary()
    failed_conn = sum(
        v for k, v in sent["errors"].items() if k in ("refused", "reset", "disconnected", "connect")
    )
    return {
        "restarts": len(restarts),
        "restarts_by_pm2": summary["pm2"]["restarts_by_pm2"],
        "restarts_per_h": 3600 * len(restarts) / duration_s,
        "memory_at_restart": _mean([r.get("rss") for r in restarts]),
        "downtime_per_restart_s": failed_conn / rate / len(restarts) if restarts else math.nan,
        "success_rate": sent["ok"] / sent["sent"] if sent["sent"] else math.nan,
        "requests": sent["sent"],
        "failed": sent["sent"] - sent["ok"],
        "errors": sent["errors"],
        "run_dir": summary["run_dir"],
    }


def under_leaklab(rate: float, limit: int, check_s: float, duration_s: float, out: Path) -> dict:
    summary = _leaklab(
        "run",
        "--out",
        str(out),
        "--load",
        "http://127.0.0.1:{port}/",
        "--rate",
        f"{rate}/s",
        "--duration",
        f"{duration_s}s",
        "--recycle",
        str(limit),
        "--check-interval",
        f"{check_s}s",
        "--profile",
        "rss",
        "--",
        shutil.which("node") or "node",
        *NODE_FLAGS.split(),
        str(SERVER),
        "--port",
        "{port}",
        "--variant",
        "leaky",
    )
    metrics = analyze_recycling(summary["run_dir"])
    restarts = store.read_run(summary["run_dir"]).events_of("restart")
    return {
        "restarts": len(restarts),
        "restarts_per_h": 3600 * len(restarts) / duration_s,
        "memory_at_restart": _mean([r.get("rss") for r in restarts]),
        "downtime_per_restart_s": metrics.downtime_per_restart_s,
        "success_rate": metrics.success_rate,
        "requests": metrics.requests,
        "failed": metrics.failed,
        "errors": metrics.failures_by_error,
        "run_dir": summary["run_dir"],
    }


def _mean(values: list) -> float:
    good = [float(v) for v in values if v is not None]
    return sum(good) / len(good) if good else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="PM2's defaults: 150 MB, 30 s checks, 5 minutes each"
    )
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument(
        "--out", default=None, help="folder for the two runs (default: a temporary one)"
    )
    args = parser.parse_args()
    if not PM2.exists() or shutil.which("node") is None:
        raise SystemExit(
            "PM2 and Node.js are installed by `make .venv/.installed` (nodejs, npm, .venv/node/pm2)"
        )
    limit, check_s, duration_s = (
        (150 * 2**20, 30.0, 300.0) if args.full else (80 * 2**20, 2.0, 40.0)
    )
    out = Path(args.out or tempfile.mkdtemp(prefix="leaklab-bench-"))
    print(
        f"leaky Node.js service, {args.rate:g} req/s, limit {units.format_size(limit)} "
        f"({limit // 2**20}M), memory checked every {check_s:g}s, {duration_s:g}s each"
    )
    pm2 = under_pm2(args.rate, limit, check_s, duration_s, out)
    ours = under_leaklab(args.rate, limit, check_s, duration_s, out)
    rows = [
        ("restarts", "restarts", "{:.0f}"),
        ("restarts/h", "restarts_per_h", "{:,.0f}"),
        ("memory at restart", "memory_at_restart", None),
        ("downtime per restart", "downtime_per_restart_s", "{:.2f}s"),
        ("success rate", "success_rate", "{:.2%}"),
        ("requests failed", "failed", "{:,.0f}"),
    ]
    print(f"\n{'':<22}{'PM2 max_memory_restart':>24}{'leaklab run --recycle':>24}")
    for label, key, fmt in rows:
        cells = []
        for side in (pm2, ours):
            value = side.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("n/a")
            else:
                cells.append(units.format_size(value) if fmt is None else fmt.format(value))
        print(f"{label:<22}{cells[0]:>24}{cells[1]:>24}")
    print(f"\nfailures   PM2 {pm2['errors']}   leaklab {ours['errors']}")
    print(
        f"PM2 counted {pm2['restarts_by_pm2']} restarts; `leaklab watch --pm2` saw "
        f"{pm2['restarts']}"
    )
    print(f"runs       {pm2['run_dir']}\n           {ours['run_dir']}")


if __name__ == "__main__":
    main()
