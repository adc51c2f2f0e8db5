"""The runner with real child processes: growth that is really there, and every way a run can end.

retain_bytes leaky with size=1024 keeps 2 allocated blocks and about 1.1 KB of RSS per step
(payload, bytearray header, list slot, malloc header); fixed keeps none. docs/testing.md has
the measurements the margins come from.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from process_support import wait_for_samples

from leaklab import runner, store
from leaklab.runner.heap import BlockCounter


def per_step_slope(run: store.RunData, column: str, skip_steps: int) -> float:
    steps = np.asarray(run.columns["steps"])
    values = np.asarray(run.columns[column])
    keep = ~np.isnan(steps) & ~np.isnan(values) & (steps >= skip_steps)
    assert keep.sum() >= 10, f"too few samples: {keep.sum()}"
    return float(np.polyfit(steps[keep], values[keep], 1)[0])


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", *args], capture_output=True, text=True, timeout=timeout
    )


def test_leaky_child_grows_by_the_bytes_it_retains(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("retain_bytes"),
            variant="leaky",
            params={"size": "1024"},
            steps=20_000,
            rate=5_000,
            interval_s=0.1,
            out=str(tmp_path),
            progress=False,
        )
    )
    assert result.status == "completed" and result.exit_code == 0
    assert result.steps == 20_000
    run = store.read_run(result.run_dir)
    assert run.meta["warmup_end"]["steps"] == 2_000  # default warm-up: 10% of the steps
    rss_per_step = per_step_slope(run, "rss", 2_000)
    blocks_per_step = per_step_slope(run, "allocated_blocks", 2_000)
    assert 1_024 <= rss_per_step <= 1_024 * 1.25, rss_per_step
    assert 1.5 <= blocks_per_step <= 2.5, blocks_per_step
    assert result.rss_end - result.rss_start > 20_000 * 1_024 * 0.9


def test_fixed_child_does_not_grow(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("retain_bytes"),
            variant="fixed",
            steps=20_000,
            rate=5_000,
            interval_s=0.1,
            out=str(tmp_path),
            progress=False,
        )
    )
    run = store.read_run(result.run_dir)
    assert abs(per_step_slope(run, "allocated_blocks", 2_000)) < 0.05
    assert abs(per_step_slope(run, "rss", 2_000)) < 20


def test_run_directory_contents(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("retain_bytes"),
            steps=500,
            rate=1_000,
            interval_s=0.05,
            out=str(tmp_path),
            progress=False,
            argv=["leaklab", "run", "x"],
        )
    )
    run = store.read_run(result.run_dir)
    meta = run.meta
    assert meta["status"] == "completed" and meta["end"] is not None
    assert meta["scenario"] == "retain-bytes" and meta["variant"] == "leaky"
    assert meta["params"] == {"size": 1024}
    assert meta["argv"] == ["leaklab", "run", "x"]
    assert {"python", "leaklab", "psutil"} <= set(meta["versions"])
    assert meta["counters"]["steps"] == 500
    assert meta["config"]["rate"] == 1_000
    assert list(run.columns)[: len(store.BASE_COLUMNS)] == list(store.BASE_COLUMNS)
    assert run.n_samples >= 8
    assert set(run.columns["pid"]) != {float("nan")}
    kinds = [e["kind"] for e in run.events]
    assert (
        kinds[0] == "start" and "ready" in kinds and "warmup_end" in kinds and kinds[-1] == "done"
    )


def test_rate_is_respected(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("retain_bytes"),
            variant="fixed",
            duration_s=2.0,
            rate=100,
            out=str(tmp_path),
            progress=False,
        )
    )
    assert 170 <= result.steps <= 202, result.steps


def test_async_scenario_runs_on_one_event_loop(tmp_path, test_scenario):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("async_counter"), steps=2_000, out=str(tmp_path), progress=False
        )
    )
    assert result.status == "completed", result.message


@pytest.mark.parametrize(
    ("phase", "steps_at_least"), [("step", 49), ("setup", 0), ("teardown", 300)]
)
def test_scenario_that_raises_fails_and_keeps_its_data(
    tmp_path, test_scenario, phase, steps_at_least
):
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("crash"),
            params={"phase": phase},
            steps=300,
            out=str(tmp_path),
            progress=False,
        )
    )
    assert result.status == "failed" and result.exit_code == 1
    assert phase in result.message
    assert result.steps >= steps_at_least
    run = store.read_run(result.run_dir)
    assert run.meta["status"] == "failed" and run.meta["exit"]["phase"] == phase
    assert "exploded on purpose" in (result.run_dir / "artifacts" / "traceback.txt").read_text()
    assert run.events_of("done")[0]["reason"] == "failed"


def test_max_errors_tolerates_some_step_errors(tmp_path, test_scenario):
    # crash raises on every step from at_step on: 10 errors in 59 steps.
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("crash"),
            params={"at_step": "50"},
            steps=59,
            max_errors=10,
            out=str(tmp_path),
            progress=False,
        )
    )
    assert result.status == "completed" and result.errors == 10
    run = store.read_run(result.run_dir)
    assert len(run.events_of("step_error")) == 5  # full tracebacks for the first five only


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_memory_cap_kills_the_child_and_its_children(tmp_path, test_scenario):
    pidfile = tmp_path / "helper.pid"
    result = runner.run(
        runner.RunConfig(
            scenario=test_scenario("spawns_child"),
            params={"size": "2MB", "pidfile": str(pidfile)},
            duration_s=60,
            rate=200,
            max_rss=200 * 10**6,
            interval_s=0.1,
            out=str(tmp_path / "runs"),
            progress=False,
        )
    )
    assert result.status == "killed_at_cap" and result.exit_code == 3
    assert result.duration_s < 30
    run = store.read_run(result.run_dir)
    assert run.meta["status"] == "killed_at_cap"
    assert run.n_samples >= 5
    assert max(run.columns["rss"]) > 200 * 10**6
    assert run.events_of("killed_at_cap")[0]["max_rss"] == 200 * 10**6
    child_pid = int(run.columns["pid"][-1])
    assert _wait_gone(child_pid)
    assert _wait_gone(int(pidfile.read_text())), (
        "the scenario's own helper process outlived the run"
    )


def test_include_children_sums_the_childs_children(tmp_path, test_scenario):
    common = dict(
        scenario=test_scenario("spawns_child"),
        params={"size": "1"},
        steps=50,
        rate=100,
        interval_s=0.1,
        progress=False,
    )
    alone = runner.run(runner.RunConfig(out=str(tmp_path / "a"), **common))
    summed = runner.run(runner.RunConfig(out=str(tmp_path / "b"), include_children=True, **common))
    # The helper is a whole Python interpreter: several MB of RSS on top of the child's.
    assert summed.rss_end - alone.rss_end > 3 * 10**6, (alone.rss_end, summed.rss_end)


def test_ctrl_c_keeps_the_run_marks_it_and_leaves_no_process(tmp_path, test_scenario):
    pidfile = tmp_path / "helper.pid"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leaklab",
            "run",
            test_scenario("spawns_child"),
            "--param",
            "size=1000",
            "--param",
            f"pidfile={pidfile}",
            "--duration",
            "60",
            "--rate",
            "100/s",
            "--interval",
            "0.1",
            "--out",
            str(tmp_path / "runs"),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not pidfile.exists():
        time.sleep(0.05)
    assert pidfile.exists(), "scenario setup never ran"
    wait_for_samples(tmp_path / "runs", proc, 5, min_steps=25)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    assert summary["steps"] > 20
    run = store.read_run(summary["run_dir"])
    assert run.meta["status"] == "interrupted" and run.n_samples >= 5
    assert run.events_of("done")[0]["reason"] == "interrupted"  # teardown ran
    assert _wait_gone(int(pidfile.read_text()))
    assert _wait_gone(int(run.columns["pid"][-1]))


def test_cli_json_summary_and_usage_errors(tmp_path, test_scenario):
    done = run_cli(
        "run", test_scenario("retain_bytes"), "--steps", "300", "--out", str(tmp_path), "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {"run_dir", "status", "steps", "duration_s", "rss_start", "rss_end"} <= set(summary)
    assert summary["steps"] == 300 and Path(summary["run_dir"]).is_dir()

    unknown = run_cli(
        "run", "no-such-scenario", "--scenarios", str(Path(test_scenario("crash")).parent)
    )
    assert (
        unknown.returncode == 2
        and "known scenarios:" in unknown.stderr
        and "retain-bytes" in unknown.stderr
    )
    bad_size = run_cli("run", test_scenario("retain_bytes"), "--max-rss", "lots")
    assert bad_size.returncode == 2 and "accepted forms" in bad_size.stderr
    bad_param = run_cli("run", test_scenario("retain_bytes"), "--param", "size=big")
    assert bad_param.returncode == 2 and "expected an integer" in bad_param.stderr


def test_list_shows_variants_and_params(test_scenario):
    folder = str(Path(test_scenario("crash")).parent)
    listing = run_cli("list", "--scenarios", folder, "--json")
    entries = {e["name"]: e for e in json.loads(listing.stdout)}
    assert entries["retain-bytes"]["variants"] == {
        "leaky": "keep every buffer",
        "fixed": "drop every buffer",
    }
    assert entries["retain-bytes"]["params"]["size"]["default"] == 1024
    assert entries["crash"]["description"] == "Raises at a chosen step or phase."


def test_child_process_is_gone_after_every_run(tmp_path, test_scenario):
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    runner.run(
        runner.RunConfig(
            scenario=test_scenario("retain_bytes"), steps=100, out=str(tmp_path), progress=False
        )
    )
    after = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    assert after <= before


def test_a_preempted_block_read_does_not_stop_the_reads_after_it():
    # A 2,000,000-block heap read in 2 ms, then once in 200 ms (the process lost the CPU during
    # the walk): the 200 ms are the machine's, not the walk's, so they do not count against the
    # budget (here half the elapsed time, to keep the test short).
    counter = BlockCounter(budget=0.5)
    counter.charge(2e-3, 2_000_000)
    counter.charge(200e-3, 2_000_000)
    assert counter.cost_s == pytest.approx(2e-3)
    assert counter.spent_s == pytest.approx(4e-3)
    assert counter.read() is None  # 6 ms of reads in no elapsed time: over budget
    time.sleep(0.03)  # half of 30 ms covers them; charged by the clock it would take 0.8 s
    assert counter.read() == pytest.approx(sys.getallocatedblocks(), rel=0.01)
    assert counter.reads == 3 and counter.skipped == 1


def test_the_step_loop_times_the_call_a_probe_leaves_it(tmp_path):
    """A probe's ``loop_call`` is made by the step loop between two steps, and how long it took is
    there for the probes (memray counts its tracker's start, and expects its stop to cost as much,
    against its budget)."""
    from leaklab import probes
    from leaklab.runner.child import Reporter, StepLoop
    from leaklab.runner.spec import ChildSpec

    class LeavesACall(probes.Probe):
        name = "leaves-a-call"

        def tick(self, ctx: probes.ProbeContext) -> None:
            if ctx.steps == 2:
                ctx.loop_call = lambda: time.sleep(0.02)

    read_fd, write_fd = os.pipe()
    try:
        spec = ChildSpec(t0=time.monotonic(), artifacts=str(tmp_path), steps=4)
        ctx = probes.ProbeContext(artifacts=tmp_path, emit=lambda *_a, **_k: None)
        loop = StepLoop(spec, Reporter(write_fd), None, [LeavesACall()], ctx)
        loop.run_sync(lambda _state: None)
    finally:
        os.close(write_fd)
        os.close(read_fd)
    assert loop.steps == 4 and ctx.loop_call is None
    assert ctx.loop_call_s is not None and ctx.loop_call_s >= 0.02
