"""``leaklab watch PID``: a running process recorded from outside, with health probes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from process_support import wait_for_samples

from leaklab import store
from leaklab.runner.command import free_port

ROOT = Path(__file__).resolve().parent.parent
FLASK_APP = ROOT / "examples" / "leaky_flask_app.py"


def _watch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", "watch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the app never listened")


def test_watch_records_a_running_service_and_probes_its_health(tmp_path):
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, str(FLASK_APP), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, app)
        done = _watch(
            str(app.pid),
            "--duration",
            "4s",
            "--health",
            f"http://127.0.0.1:{port}/work",
            "--health-rate",
            "20/s",
            "--out",
            str(tmp_path),
            "--json",
        )
        assert app.poll() is None  # watching never stops what it watches
    finally:
        app.kill()
        app.wait()
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["ended_by"] == "duration" and summary["generations"] == 1
    run = store.read_run(summary["run_dir"])
    assert run.meta["source"] == "watch" and run.meta["watched"]["pid"] == app.pid
    assert set(run.columns["pid"]) == {app.pid}
    assert len(run.columns["t"]) >= 7  # every 0.5 s for 4 s
    assert (
        summary["requests"]["sent"] >= 60
        and summary["requests"]["ok"] == summary["requests"]["sent"]
    )
    # the health probes were real requests: the app kept one record for each
    assert app.pid in store.read_processes(summary["run_dir"])["pid"]


def _watch_in_background(pid: int, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leaklab", "watch", str(pid), "--out", str(out), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_ends_when_the_process_exits_or_on_ctrl_c(tmp_path):
    short = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        watch = _watch_in_background(short.pid, tmp_path / "exit")
        wait_for_samples(tmp_path / "exit", watch, 2)
        short.kill()
        out, err = watch.communicate(timeout=30)
    finally:
        short.kill()
        short.wait()
    assert watch.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["ended_by"] == "exit" and summary["samples"] >= 2
    assert store.read_run(summary["run_dir"]).events_of("exit")

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        watch = _watch_in_background(sleeper.pid, tmp_path / "int")
        wait_for_samples(tmp_path / "int", watch, 1)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert watch.returncode == 0, err[-2000:]
    assert json.loads(out)["ended_by"] == "interrupt"


def test_watch_a_pid_that_is_gone_exits_2_and_records_nothing(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    done = _watch(str(gone.pid), "--out", str(tmp_path))
    assert done.returncode == 2 and f"no process with pid {gone.pid}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not tmp_path.exists() or not list(tmp_path.iterdir())
    for args, message in [
        ([], "give a PID or --pm2 NAME"),
        (["1", "--health", "http://127.0.0.1:{port}/"], "needs the service's own port"),
    ]:
        done = _watch(*args, "--out", str(tmp_path))
        assert done.returncode == 2 and message in done.stderr, done.stderr
