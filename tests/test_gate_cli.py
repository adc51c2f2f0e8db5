"""``leaklab gate`` end to end: real child runs of the test scenarios, real analysis.

tests/scenarios/retain_bytes.py keeps ``size`` bytes per step (leaky) or none (fixed). The
limits below (16 B/step, 0.05 blocks/step) sit far from both variants' measured growth
(docs/testing.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from leaklab import store

SCENARIOS = Path(__file__).parent / "scenarios"


def _write(tmp_path: Path, checks: str, header: str = "") -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.leaklab.gate]\nduration = "3s"\ninterval = "0.1s"\nout = "runs"\n' + header + checks,
        encoding="utf-8",
    )
    return path


def _check(name: str, scenario: str, variant: str | None = None, extra: str = "") -> str:
    lines = [
        "[[tool.leaklab.gate.checks]]",
        f'name = "{name}"',
        f'scenario = "{SCENARIOS / scenario}.py"',
    ]
    if variant:
        lines.append(f'variant = "{variant}"')
    return "\n".join(lines) + "\n" + extra + "\n"


LIMITS = 'max_per_step = "16B"\nmax_blocks_per_step = 0.05\nverdict = ["NO_LEAK", "PLATEAU"]\n'


def _gate(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", "gate", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fixed_passes_leaky_fails_with_json_and_junit(tmp_path: Path) -> None:
    _write(
        tmp_path,
        _check("fixed", "retain_bytes", "fixed", LIMITS)
        + _check("leaky", "retain_bytes", "leaky", LIMITS),
    )
    result = _gate(tmp_path, "-j", "2", "--json", "--junit-xml", "reports/gate.xml")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["exit_code"] == 1 and report["summary"] == {"checks": 2, "passed": 1, "failed": 1}
    fixed, leaky = report["checks"]
    assert fixed["status"] == "pass" and fixed["verdict"] == "NO_LEAK"
    assert leaky["status"] == "fail" and leaky["verdict"] == "LEAK"
    per_step = next(j for j in leaky["judgements"] if j["key"] == "max_per_step")
    # 1024 bytes kept per step: the whole interval sits above 16 B/step.
    assert per_step["outcome"] == "fail" and per_step["ci95"][0] > 512
    blocks = next(j for j in leaky["judgements"] if j["key"] == "max_blocks_per_step")
    assert 1.5 < blocks["measured"] < 3
    assert Path(tmp_path / leaky["run_dir"], "meta.json").is_file()
    suite = ET.parse(tmp_path / "reports/gate.xml").getroot().find("testsuite")
    assert suite is not None and (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
    ) == ("2", "1", "0")


def test_lines_name_the_measured_figure_next_to_its_limit(tmp_path: Path) -> None:
    _write(tmp_path, _check("leaky", "retain_bytes", "leaky", 'max_per_step = "16B"\n'))
    result = _gate(tmp_path)
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL"))
    assert line.startswith("FAIL  leaky: FAILED rss +1.")
    assert "KB/step (95% CI +" in line and "> max_per_step 16B" in line
    assert "0 of 1 check(s) passed; the gate fails" in result.stdout


def test_baseline_update_then_regression(tmp_path: Path) -> None:
    """Record the fixed variant's figures, then point the same check at the leaky one
    with a loose limit it passes: only the baseline comparison fails."""
    loose = 'max_per_step = "1MB"\n'
    _write(
        tmp_path,
        _check("retain", "retain_bytes", "fixed", loose),
        header='baseline = "leaklab-baseline.json"\n',
    )
    recorded = _gate(tmp_path, "--update-baseline")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    entries = json.loads((tmp_path / "leaklab-baseline.json").read_text())["checks"]
    assert entries["retain"]["signal"] == "rss" and entries["retain"]["verdict"] == "NO_LEAK"
    _write(
        tmp_path,
        _check("retain", "retain_bytes", "leaky", loose),
        header='baseline = "leaklab-baseline.json"\n',
    )
    compared = _gate(tmp_path, "--json")
    assert compared.returncode == 1
    judgements = {j["key"]: j for j in json.loads(compared.stdout)["checks"][0]["judgements"]}
    assert judgements["max_per_step"]["outcome"] == "pass"
    assert (
        judgements["baseline"]["outcome"] == "fail"
        and "baseline CI high" in judgements["baseline"]["text"]
    )


def test_failed_and_capped_runs_fail_with_their_reason(tmp_path: Path) -> None:
    _write(
        tmp_path,
        _check("crash", "crash", None, 'params = { at_step = 20 }\nverdict = "NO_LEAK"\n')
        + _check(
            "capped",
            "retain_bytes",
            "leaky",
            (
                'params = { size = 4000000 }\nmax_rss = "150MB"\nduration = "20s"\n'
                'verdict = "NO_LEAK"\n'
            ),
        ),
    )
    result = _gate(tmp_path, "-j", "2", "--json")
    assert result.returncode == 1
    crash, capped = json.loads(result.stdout)["checks"]
    assert crash["status"] == "error" and crash["run_status"] == "failed"
    assert crash["message"].startswith(
        "run failed: scenario raised in step: ValueError: step 20 exploded on purpose"
    )
    assert capped["status"] == "error" and capped["run_status"] == "killed_at_cap"
    assert capped["message"].startswith("run was killed at the memory cap: RSS")


def test_configuration_errors_exit_2_naming_the_key(tmp_path: Path) -> None:
    _write(tmp_path, _check("x", "retain_bytes", "leeky", LIMITS))
    result = _gate(tmp_path)
    assert result.returncode == 2
    assert (
        "tool.leaklab.gate.checks[0].variant: scenario 'retain-bytes' has no variant 'leeky'; "
        "known variants: leaky, fixed"
    ) in result.stderr
    assert not (tmp_path / "runs").exists()
    unknown = _gate(tmp_path, "--check", "nope")
    assert (
        unknown.returncode == 2
        and "--check 'nope': no such check; known checks: x" in unknown.stderr
    )
    missing = _gate(tmp_path, "--update-baseline")
    assert missing.returncode == 2 and "--update-baseline needs a file" in missing.stderr


def test_interrupt_stops_the_running_checks(tmp_path: Path) -> None:
    _write(
        tmp_path, _check("long", "retain_bytes", "fixed", 'duration = "60s"\nverdict = "NO_LEAK"\n')
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaklab", "gate"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        child_pid = None
        while time.monotonic() < deadline and child_pid is None:
            time.sleep(0.2)
            for events in (tmp_path / "runs").glob("*/events.jsonl"):
                for line in events.read_text().splitlines():
                    event = json.loads(line)
                    if event.get("kind") == "ready":
                        child_pid = event["pid"]
        assert child_pid is not None, "the check's child never became ready"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted; stopped the running checks" in err
    (run,) = [store.read_run(d) for d in (tmp_path / "runs").iterdir()]
    assert run.meta["status"] == "interrupted"
    deadline = time.monotonic() + 10
    while (
        psutil.pid_exists(child_pid) and psutil.Process(child_pid).status() != psutil.STATUS_ZOMBIE
    ):
        assert time.monotonic() < deadline, "the check's child outlived the gate"
        time.sleep(0.1)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_default_jobs_is_half_the_cpus() -> None:
    from leaklab import gate

    assert gate.default_jobs() == max(1, len(os.sched_getaffinity(0)) // 2)
