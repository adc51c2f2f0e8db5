"""``leaklab run -- CMD``: real programs (a Flask app, gunicorn and its worker) as the child."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from process_support import wait_for_samples

from leaklab import store

ROOT = Path(__file__).resolve().parent.parent
FLASK_APP = ROOT / "examples" / "leaky_flask_app.py"
BIN = Path(sys.executable).parent


def _leaklab(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", *args], capture_output=True, text=True, timeout=timeout
    )


def _run_json(tmp_path: Path, *args: str) -> dict:
    done = _leaklab("run", "--out", str(tmp_path), "--json", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow  # ~20 s of a real Flask app under load: the soak job runs it
def test_flask_app_in_one_file_is_reproduced_diagnosed_and_reported(tmp_path):
    summary = _run_json(
        tmp_path,
        "--load",
        "http://127.0.0.1:{port}/work",
        "--rate",
        "100/s",
        "--duration",
        "10s",
        "--",
        sys.executable,
        str(FLASK_APP),
        "--port",
        "{port}",
    )
    assert summary["status"] == "completed"
    assert summary["requests"]["ok"] >= 900  # 1,000 sent at 100/s
    assert summary["verdict"] == "LEAK"
    assert summary["top_types"][0]["type"].endswith("RequestRecord")
    assert any(
        "leaky_flask_app.py" in s["file"] and s["function"] == "RequestRecord.__init__"
        for s in summary["top_sites"]
    )
    assert any("SEEN" in c["text"] and "RequestRecord" in c["text"] for c in summary["chains"])
    run = store.read_run(summary["run_dir"])
    assert run.meta["source"] == "command" and run.meta["config"]["steps_are"] == "requests served"
    # steps are requests served, and every sampled process is the program's
    steps = [s for s in run.columns["steps"] if s == s]
    assert steps == sorted(steps) and steps[-1] == pytest.approx(summary["requests"]["ok"], abs=110)
    processes = store.read_processes(summary["run_dir"])
    assert set(processes["pid"]) == set(run.columns["pid"])
    report = _leaklab("report", summary["run_dir"], "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr[-2000:]
    assert "RequestRecord" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")


def test_aiohttp_app_in_one_file_is_diagnosed_to_its_root(tmp_path):
    app = ROOT / "examples" / "leaky_aiohttp_app.py"
    # A type is named from its counts after the baseline. Their budgeted cadence follows each
    # count's wall time, which a busy machine stretches: an 8 s run then had as few as one
    # count after the baseline (docs/testing.md). The naming is under test here, so the
    # cadence is fixed.
    summary = _run_json(
        tmp_path,
        "--snapshot-every",
        "1s",
        "--load",
        "http://127.0.0.1:{port}/work",
        "--rate",
        "200/s",
        "--duration",
        "8s",
        "--",
        sys.executable,
        str(app),
        "--port",
        "{port}",
    )
    assert summary["verdict"] == "LEAK"
    assert any(t["type"].endswith("SessionRecord") for t in summary["top_types"][:3])
    assert any(
        c["text"].startswith("__main__.SHUTDOWN -> Future") and c["text"].endswith("SessionRecord")
        for c in summary["chains"]
    )


@pytest.mark.slow  # ~15 s of recycling: the soak job runs it
def test_command_is_recycled_at_its_memory_limit(tmp_path):
    # 20 KB kept per request at 200/s: ~4 MB/s over a ~47 MB start, past 65 MB within seconds.
    summary = _run_json(
        tmp_path,
        "--load",
        "http://127.0.0.1:{port}/work",
        "--rate",
        "200/s",
        "--duration",
        "12s",
        "--recycle",
        "65MB",
        "--check-interval",
        "0.5s",
        "--profile",
        "rss",
        "--",
        sys.executable,
        str(FLASK_APP),
        "--port",
        "{port}",
        "--payload",
        "20000",
    )
    assert summary["restarts"]["memory"] >= 1
    run = store.read_run(summary["run_dir"])
    restarts = run.events_of("restart")
    assert len(restarts) == summary["restarts"]["memory"]
    assert all(r["rss"] > 65e6 for r in restarts)
    # Every restart's new process became healthy, but the last one may still be starting when
    # the load ends (seen on a busy machine).
    assert (
        all(r["healthy_after_s"] > 0 for r in restarts[:-1])
        and restarts[-1].get("healthy_after_s", 1) > 0
    )
    assert len({p for p in run.columns["pid"] if p == p}) == len(restarts) + 1
    ports = [e["port"] for e in run.events_of("start")]
    assert len(set(ports)) == len(ports)  # a free port for each generation
    # requests fail only while a restart is under way (restart mode: down until the new one is
    # healthy)
    windows = [(r["t"] - 0.2, r["t"] + r.get("healthy_after_s", math.inf) + 1.0) for r in restarts]
    requests = run.requests
    failed = [
        t for t, status in zip(requests["t"], requests["status"], strict=True) if status != 200
    ]
    assert len(failed) == summary["requests"]["failed"]
    assert all(any(lo <= t <= hi for lo, hi in windows) for t in failed)
    served = {
        g
        for g, status in zip(requests["generation"], requests["status"], strict=True)
        if status == 200
    }
    assert served == set(range(len(restarts) + 1))  # every generation served


@pytest.mark.slow  # ~10 s of a real gunicorn: the soak job runs it
@pytest.mark.skipif(not (BIN / "gunicorn").exists(), reason="gunicorn is a dev dependency")
def test_gunicorn_worker_gets_the_probes(tmp_path):
    summary = _run_json(
        tmp_path,
        "--load",
        "http://127.0.0.1:{port}/work",
        "--rate",
        "100/s",
        "--duration",
        "8s",
        "--",
        str(BIN / "gunicorn"),
        "-w",
        "1",
        "-b",
        "127.0.0.1:{port}",
        "--chdir",
        str(FLASK_APP.parent),
        "leaky_flask_app:app",
    )
    run = store.read_run(summary["run_dir"])
    starts = run.events_of("inprocess_start")
    master = next(e for e in starts if not e["forked"])
    worker = next(e for e in starts if e["forked"])
    assert worker["ppid"] == master["pid"]
    assert summary["top_types"][0]["type"].endswith("RequestRecord")
    processes = store.read_processes(summary["run_dir"])
    assert {master["pid"], worker["pid"]} <= set(processes["pid"])


def test_bad_commands_exit_2_with_a_clear_message(tmp_path):
    missing = _leaklab(
        "run", "--out", str(tmp_path), "--", "no-such-program-xyz", "--port", "{port}"
    )
    assert missing.returncode == 2 and "command not found: 'no-such-program-xyz'" in missing.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing recorded

    def run_python(*argv: str) -> subprocess.CompletedProcess[str]:
        return _leaklab(
            "run", "--out", str(tmp_path), "--duration", "5s", "--", sys.executable, *argv
        )

    at_once = run_python("-c", "import sys; sys.exit('config file missing')")
    assert at_once.returncode == 2
    assert "exited (exit code 1) before it was ready: config file missing" in at_once.stderr
    assert "Traceback" not in at_once.stderr

    # A Python program counts as started 1 s after its in-process probes report in; one whose
    # probes never load (python -S) is waited for, and exiting meanwhile is exiting at once.
    never_reported = run_python(
        "-S", "-c", "import sys, time; time.sleep(2); sys.exit('late config error')"
    )
    assert never_reported.returncode == 2, never_reported.stderr
    assert "exited (exit code 1) before it was ready: late config error" in never_reported.stderr

    silent = _leaklab(
        "run",
        "--out",
        str(tmp_path),
        "--load",
        "http://127.0.0.1:{port}/",
        "--rate",
        "10/s",
        "--ready-timeout",
        "1s",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(20)",
    )
    assert silent.returncode == 2
    assert "never listened on 127.0.0.1:" in silent.stderr
    kept = [p for p in tmp_path.iterdir() if store.read_samples(p)["t"]]
    assert kept  # what was recorded before it failed is kept

    for args, message in [
        (["--variant", "x"], "--variant applies to scenarios"),
        (["--load", "http://example.com/", "--rate", "1/s"], "must target 127.0.0.1"),
        (["--load", "http://127.0.0.1:{port}/"], "--load needs a request rate"),
        (["--steps", "10"], "--steps counts requests served"),
    ]:
        done = _leaklab("run", "--out", str(tmp_path), *args, "--", sys.executable, "-c", "pass")
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)


def test_ctrl_c_stops_the_program_and_keeps_the_run(tmp_path):
    import signal

    import psutil

    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leaklab",
            "run",
            "--out",
            str(tmp_path),
            "--duration",
            "60s",
            "--profile",
            "rss",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_samples(tmp_path, run, 3)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130, err[-2000:]
    (run_dir,) = tmp_path.iterdir()
    data = store.read_run(run_dir)
    assert data.meta["status"] == "interrupted" and len(data.columns["t"]) >= 3
    program = data.events_of("start")[0]["pid"]
    assert (
        not psutil.pid_exists(program) or psutil.Process(program).status() == psutil.STATUS_ZOMBIE
    )
