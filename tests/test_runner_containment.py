"""What a run guarantees whatever its scenario does: it ends within --duration plus the
grace, nothing it started outlives it (in any session, even when the leaklab parent is
killed with SIGKILL), its logs stay bounded, and the memory cap stops a runaway child
without breaking a program that keeps thousands of threads.

Every test runs real processes of tests/scenarios/misbehaves.py; the time margins come from
runs beside the whole suite and two CPU-bound processes (docs/testing.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from leaklab import runner, store
from leaklab.runner.generation import LOG_HEAD_BYTES, LOG_TAIL_BYTES

SCENARIO = str(Path(__file__).parent / "scenarios" / "misbehaves.py")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _run(tmp_path: Path, variant: str, **fields) -> runner.RunResult:
    config = dict(
        scenario=SCENARIO,
        variant=variant,
        out=str(tmp_path / "runs"),
        progress=False,
        probes=[],
        profile="rss",
        interval_s=0.1,
    )
    config.update(fields)
    return runner.run(runner.RunConfig(**config))


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", *args], capture_output=True, text=True, timeout=timeout
    )


# -- --duration bounds the run ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "where"), [("hang-setup", "in setup"), ("hang-step", "in a step")]
)
def test_a_stuck_run_ends_at_duration_plus_grace_and_says_where(tmp_path, variant, where):
    started = time.monotonic()
    result = _run(tmp_path, variant, duration_s=1.0, grace_s=2.0)
    took = time.monotonic() - started
    assert result.status == "timed_out" and result.exit_code == 4
    assert where in result.message and "(grace)" in result.message
    # 3 s is the bound; the kill and the reaper's clean-up took < 0.5 s in every measurement.
    assert 3.0 <= result.duration_s < 8.0 and took < 10.0, (result.duration_s, took)
    run = store.read_run(result.run_dir)
    assert run.meta["status"] == "timed_out" and run.meta["config"]["grace_s"] == 2.0
    assert run.events_of("timed_out")[0]["grace_s"] == 2.0
    assert run.n_samples >= 10  # sampled from outside all along, though the child never answered
    assert _gone(int(run.events_of("start")[0]["pid"]))


def test_cli_exit_code_and_gate_reason_for_a_stuck_scenario(tmp_path):
    done = _cli(
        "run",
        SCENARIO,
        "-v",
        "hang-step",
        "--duration",
        "1s",
        "--grace",
        "2s",
        "--profile",
        "rss",
        "--out",
        str(tmp_path / "runs"),
    )
    assert done.returncode == 4, done.stderr
    assert "timed_out" in done.stdout and "in a step" in done.stdout

    config = tmp_path / "pyproject.toml"
    config.write_text(
        '[tool.leaklab.gate]\nout = "gate"\n[[tool.leaklab.gate.checks]]\nname = "stuck"\n'
        f'scenario = "{SCENARIO}"\nvariant = "hang-step"\nduration = "1s"\ngrace = "2s"\n'
        'max_per_step = "16B"\n',
        encoding="utf-8",
    )
    started = time.monotonic()
    gate = _cli("gate", "--config", str(config), "--json")
    assert time.monotonic() - started < 60
    assert gate.returncode == 1, gate.stderr
    outcome = json.loads(gate.stdout)["checks"][0]
    assert outcome["run_status"] == "timed_out" and outcome["message"].startswith(
        "run timed out: still running"
    )


# -- no process outlives the run ---------------------------------------------------------------


def test_processes_in_other_sessions_do_not_outlive_a_completed_run(tmp_path):
    pidfile = tmp_path / "pids"
    seen_alive: list[bool] = []

    def on_sample(_row):
        if pidfile.exists() and not seen_alive:
            seen_alive.append(all(_alive(int(p)) for p in pidfile.read_text().split()))

    result = runner.run(
        runner.RunConfig(
            scenario=SCENARIO,
            variant="escape",
            params={"pidfile": str(pidfile)},
            duration_s=1.5,
            interval_s=0.1,
            out=str(tmp_path / "runs"),
            progress=False,
            probes=[],
            profile="rss",
        ),
        on_sample=on_sample,
    )
    assert result.status == "completed"
    pids = [int(p) for p in pidfile.read_text().split()]
    assert seen_alive == [True], "the escaped processes never ran"
    for pid in (
        pids
    ):  # a sleeper in its own session and a double-forked daemon, both adopted by the reaper
        assert _gone(pid), f"process {pid} outlived the run"
    log = (result.run_dir / "artifacts" / "child-stderr.log").read_text()
    assert "killed 2 process(es) the scenario left running" in log


def test_a_process_slow_to_die_is_counted_once():
    # A process holding 1 GB takes longer than one kill round to die (its pages are freed
    # first), more so on a busy machine: it was signalled again and listed once per round.
    # The sweep kills every descendant of its caller, so it runs in its own interpreter.
    sweep = (
        "import subprocess, sys\n"
        "from leaklab.runner import reaper\n"
        "holder = subprocess.Popen([sys.executable, '-c', "
        "\"b = b'x' * (1 << 30); print(flush=True); import time; time.sleep(120)\"], "
        "stdout=subprocess.PIPE)\n"
        "holder.stdout.readline()\n"
        "print(reaper.kill_everything_below({}, None), holder.pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", sweep], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    killed, holder = done.stdout.rsplit(" ", 1)
    assert json.loads(killed) == [int(holder)]


def test_nothing_survives_when_the_leaklab_parent_is_killed_with_sigkill(tmp_path):
    pidfile = tmp_path / "pids"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leaklab",
            "run",
            SCENARIO,
            "-v",
            "escape",
            "-p",
            f"pidfile={pidfile}",
            "--duration",
            "120s",
            "--profile",
            "rss",
            "--out",
            str(tmp_path / "runs"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_the_parent_once_the_child_escaped(parent, pidfile)


def _kill_the_parent_once_the_child_escaped(parent: subprocess.Popen, pidfile: Path) -> None:
    """SIGKILL the leaklab parent once the child has started its escaped processes; then
    nothing below the parent, escaped or not, may be left."""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not pidfile.exists():
            time.sleep(0.05)
        assert pidfile.exists(), "the child never started its processes"
        time.sleep(0.3)
        below = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
        escaped = [int(p) for p in pidfile.read_text().split()]
        assert len(below) >= 2 and all(_alive(p) for p in escaped)  # the reaper and the child
    finally:
        parent.kill()
        parent.wait()
    for pid in below + escaped:
        assert _gone(pid), f"process {pid} outlived the SIGKILLed parent"


def _command_run(tmp_path: Path, variant: str, seconds: float, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leaklab",
        "run",
        "--out",
        str(tmp_path / "runs"),
        "--profile",
        "rss",
        "--no-progress",
        "--json",
        *extra,
        "--",
        sys.executable,
        SCENARIO,
        variant,
        str(seconds),
        str(tmp_path / "pids"),
    ]


def test_processes_a_command_started_in_other_sessions_do_not_outlive_its_run(tmp_path):
    done = subprocess.run(
        _command_run(tmp_path, "escape", 1.0, "--duration", "30s"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed"
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    for pid in pids:  # a sleeper in its own session and a double-forked daemon
        assert _gone(pid), f"process {pid} outlived the command's run"
    log = (Path(summary["run_dir"]) / "artifacts" / "child-stderr.log").read_text()
    assert "killed 2 process(es) the scenario left running" in log


def test_nothing_a_command_started_survives_when_the_leaklab_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        _command_run(tmp_path, "escape", 120, "--duration", "120s"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_the_parent_once_the_child_escaped(parent, tmp_path / "pids")


# -- bounded logs ---------------------------------------------------------------------------------


def test_child_logs_keep_head_and_tail_and_say_what_was_dropped(tmp_path):
    result = _run(tmp_path, "flood", duration_s=1.5)
    assert result.status == "completed" and result.steps > 100  # > 10 MB written to each stream
    for name, char in (("child-stdout.log", b"o"), ("child-stderr.log", b"e")):
        data = (result.run_dir / "artifacts" / name).read_bytes()
        assert len(data) <= LOG_HEAD_BYTES + LOG_TAIL_BYTES + 200
        head, note, tail = data.partition(b"\n[leaklab: ")
        assert note, "no note about the dropped bytes"
        dropped = int(tail.split(b" bytes dropped", 1)[0].replace(b",", b""))
        assert dropped > 5 * 10**6
        assert len(head) == LOG_HEAD_BYTES and head.startswith(char * 100_000 + b"\n" + char)
        assert (
            tail.endswith(char * 1000 + b"\n") and len(tail.split(b"]\n", 1)[1]) == LOG_TAIL_BYTES
        )


def test_a_commands_logs_keep_head_and_tail(tmp_path):
    done = subprocess.run(
        _command_run(tmp_path, "flood", 1.5, "--duration", "30s"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    artifacts = Path(json.loads(done.stdout)["run_dir"]) / "artifacts"
    for name in ("child-stdout.log", "child-stderr.log"):
        data = (artifacts / name).read_bytes()
        assert len(data) <= LOG_HEAD_BYTES + LOG_TAIL_BYTES + 200
        _head, note, tail = data.partition(b"\n[leaklab: ")
        assert note, "no note about the dropped bytes"
        assert int(tail.split(b" bytes dropped", 1)[0].replace(b",", b"")) > 2 * 10**6


# -- the memory cap and the address-space backstop ------------------------------------------------


def test_three_thousand_live_threads_run_to_completion_under_the_default_cap(tmp_path):
    # The old backstop (4 x cap, or cap + 8 GiB: 16 GiB) stopped this at ~1,920 threads.
    result = _run(tmp_path, "threads", steps=50, params={"threads": 3000})
    assert result.status == "completed", result.message
    assert store.read_run(result.run_dir).meta["config"]["max_rss"] == runner.default_max_rss()


def test_the_cap_stops_a_50_mb_per_s_leak_with_a_small_overshoot(tmp_path):
    cap = 200 * 10**6
    result = _run(tmp_path, "leak", rate=50, duration_s=60, max_rss=cap)
    assert result.status == "killed_at_cap" and result.duration_s < 30
    # Polled every 0.1 s: ~5 MB at 50 MB/s; measured 5.6-14.8 MB (benchmarks/cap_overshoot.py).
    assert result.rss_peak - cap < 50 * 10**6, result.rss_peak


def test_the_cap_stops_one_8_gb_allocation(tmp_path):
    cap = 200 * 10**6
    result = _run(tmp_path, "allocate", duration_s=60, max_rss=cap)
    assert result.status == "killed_at_cap" and result.duration_s < 30
    # Writing 8 GB takes seconds; measured overshoot 23-79 MB at the first poll over the cap.
    assert result.rss_peak - cap < 1.5 * 10**9, result.rss_peak
