"""``leaklab watch --pm2``: the leaky Node.js service under a real PM2 (project-local, private
PM2_HOME, daemon killed at the end) restarting on max_memory_restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from leaklab import store
from leaklab.runner import load
from leaklab.runner.command import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "scenarios" / "node" / "server.js"
PM2 = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "pm2"
# Real Node.js and PM2 runs of 15-25 s each: the soak job (make soak) runs them.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PM2.exists() or shutil.which("node") is None,
        reason="PM2 is installed into .venv/node by the Makefile set-up",
    ),
]


@pytest.fixture
def pm2_home(tmp_path):
    """A private PM2 daemon (1 s memory checks instead of 30 s); killed, and checked gone, at the
    end."""
    env = {**os.environ, "PM2_HOME": str(tmp_path / "pm2"), "PM2_WORKER_INTERVAL": "1000"}
    yield env
    pid_file = tmp_path / "pm2" / "pm2.pid"
    daemon = psutil.Process(int(pid_file.read_text().strip())) if pid_file.exists() else None
    subprocess.run([str(PM2), "kill"], env=env, capture_output=True, timeout=60)
    if daemon is not None:
        daemon.wait(timeout=10)  # raises TimeoutExpired if the daemon outlived the test
        assert not daemon.is_running()


def test_watch_pm2_follows_real_restarts(tmp_path, pm2_home):
    port = free_port()
    started = subprocess.run(
        [
            str(PM2),
            "start",
            str(SERVER),
            "--name",
            "leaky",
            "--max-memory-restart",
            "58M",
            "--node-args=--expose-gc --max-old-space-size=200",
            "--",
            "--port",
            str(port),
            "--variant",
            "leaky",
        ],
        env=pm2_home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr[-2000:]
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
            "15s",
            "--interval",
            "0.25s",
            "--health",
            f"http://127.0.0.1:{port}/health",
            "--health-rate",
            "10/s",
            "--out",
            str(tmp_path / "runs"),
            "--json",
        ],
        env=pm2_home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the traffic that makes it leak: ~6.6 KB kept per request, at 250/s
    traffic = load.LoadGenerator(
        load.LoadConfig(rate=250, duration_s=15), time.monotonic(), lambda row: None
    )
    traffic.set_target(port, 0)
    traffic.start()
    out, err = watch.communicate(timeout=90)
    traffic.stop()
    traffic.join(10)
    assert watch.returncode == 0, err[-2000:]
    summary = json.loads(out)
    pm2 = summary["pm2"]
    assert pm2["restarts_by_pm2"] >= 2
    assert (
        pm2["generations_seen"] == pm2["restarts_by_pm2"] + 1
    )  # one generation per pid PM2 started
    run = store.read_run(summary["run_dir"])
    restarts = run.events_of("restart")
    assert len(restarts) == pm2["restarts_by_pm2"]
    limit = 58 * 2**20
    assert run.meta["config"]["recycle"]["limit"] == limit
    memory_restarts = [r for r in restarts if r["reason"] == "memory"]
    assert memory_restarts and all(
        r["rss"] >= 0.9 * limit and r["pm2_memory"] >= 0.9 * limit for r in memory_restarts
    )
    # our reading of each pid's memory and PM2's agree (both are RSS of the same process)
    rss, theirs = run.columns["rss"], run.columns["pm2_memory"]
    ratios = sorted(a / b for a, b in zip(rss, theirs, strict=True) if a == a and b == b and b > 0)
    assert 0.85 < ratios[len(ratios) // 2] < 1.15
    report = summary["generations_report"]
    assert report["restarts"] == pm2["restarts_by_pm2"]
    assert report["restarts_per_hour"] > 0
    grown = [g for g in report["generations"] if g["bytes_per_h"] is not None]
    assert grown and all(
        g["bytes_per_h"] > 0 for g in grown
    )  # each generation grows until PM2 restarts it
    assert 0 < report["success_rate"] <= 1
    drawn = subprocess.run(
        [
            sys.executable,
            "-m",
            "leaklab",
            "report",
            summary["run_dir"],
            "--out",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "Process generations" in markdown and "memory after each restart" in markdown
