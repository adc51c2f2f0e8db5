"""The incident in Node.js (scenarios/node/server.js) run with ``leaklab run -- node ...``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from leaklab import store

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "scenarios" / "node" / "server.js"
NODE = shutil.which("node")
# Real Node.js and PM2 runs of 15-25 s each: the soak job (make soak) runs them.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="Node.js is installed by the Makefile set-up"),
]
FLAGS = ["--expose-gc", "--max-old-space-size=200"]


def _run(tmp_path: Path, *args: str, variant: str) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "leaklab",
            "run",
            "--out",
            str(tmp_path),
            "--json",
            *args,
            "--",
            str(NODE),
            *FLAGS,
            str(SERVER),
            "--port",
            "{port}",
            "--variant",
            variant,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


# V8 sizes its heap over the first seconds under load (the fixed service too: ~53 to ~59 MB
# in 3 s, flat after): that start-up is the warm-up, not the trend.
LOAD = [
    "--load",
    "http://127.0.0.1:{port}/",
    "--rate",
    "200/s",
    "--duration",
    "14s",
    "--warmup",
    "4s",
]


def test_leaky_node_service_leaks_in_the_js_heap_and_outside_it(tmp_path):
    leaky = _run(tmp_path, *LOAD, variant="leaky")
    assert leaky["verdict"] == "LEAK"
    assert (
        leaky["requests"]["failed"] <= 0.01 * leaky["requests"]["sent"]
    )  # a busy machine may time one out
    run = store.read_run(leaky["run_dir"])
    used = [v for v in run.columns["v8_heap_used"] if v == v]
    assert (
        len(used) >= 15 and max(used[-5:]) > used[0] + 3e6
    )  # ~3 KB of JS objects kept per request, 2,800 requests
    # each request keeps ~3 KB of JS objects (headers copy, a 1 KB string, closures, promises)
    # and a 1 KB Buffer outside the heap: both grow, the JS heap more (docs/testing.md: 2.3 to
    # 2.6 times on a quiet machine, 1.3 times beside other test jobs)
    heap = leaky["heap"]
    # V8 commits its heap in jumps of megabytes, so the committed share of RSS growth over a
    # 10 s window lands anywhere between 0.3 and 0.7: growth is there, in and outside the heap.
    assert heap["where"] != "flat"
    assert heap["heap_used_per_s"] > heap["external_per_s"] > 0
    # JS objects kept per request: 1.4 to 2.6 KB measured (the GC's timing moves the used heap's
    # slope), the fixed service's 0.1 to 0.4 KB (docs/testing.md)
    assert heap["heap_used_per_s"] / leaky["requests"]["throughput_rps"] > 1000


def test_fixed_node_service_keeps_no_js_objects_per_request(tmp_path):
    fixed = _run(tmp_path, *LOAD, variant="fixed")
    assert fixed["requests"]["failed"] <= 0.01 * fixed["requests"]["sent"]
    assert fixed["requests"]["ok"] >= 2700
    # Retained JS objects per request: the leaky service keeps 1.4-2.6 KB, the fixed one 0.1 to
    # 0.4 KB of noise (docs/testing.md). Its RSS still creeps on short runs while V8 grows its
    # committed heap (the young generation: heap total 10 to 15 MB with the used heap flat at
    # 6-8 MB), so the RSS verdict of a 14 s run is not asserted here.
    assert fixed["heap"]["heap_used_per_s"] / fixed["requests"]["throughput_rps"] < 600


def test_leaky_node_service_is_recycled_at_a_limit_and_reported(tmp_path):
    # ~6.6 KB per request at 400/s from ~47 MB: past 62 MB within ~6 s, then again after each
    # restart
    summary = _run(
        tmp_path,
        "--load",
        "http://127.0.0.1:{port}/",
        "--rate",
        "400/s",
        "--duration",
        "14s",
        "--recycle",
        "62MB",
        "--check-interval",
        "0.5s",
        "--interval",
        "0.25s",
        "--profile",
        "rss",
        variant="leaky",
    )
    assert summary["restarts"]["memory"] >= 1
    run = store.read_run(summary["run_dir"])
    restarts = run.events_of("restart")
    assert [r["reason"] for r in restarts] == ["memory"] * summary["restarts"]["memory"]
    assert all(r["rss"] > 62e6 and r["healthy_after_s"] > 0 for r in restarts)
    assert len(set(run.columns["generation"])) == len(restarts) + 1
    report = subprocess.run(
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
    assert report.returncode == 0, report.stderr[-2000:]
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "JS heap or native" in markdown and "Process generations" in markdown
