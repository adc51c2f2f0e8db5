"""``leaklab analyze`` and the summary at the end of ``leaklab run``, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import synthetic


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_analyze_prints_the_summary_table(tmp_path: Path) -> None:
    run = synthetic.write_run(synthetic.case("retain-1KB"), tmp_path, seed=3)
    out = cli("analyze", str(run))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith("signal"))
    assert "per step" in header and "%/h" in header and "95% CI" in header
    rss = next(line for line in lines if line.startswith("rss "))
    assert "KB/step" in rss and "LEAK" in rss
    assert any(line.startswith("verdict   LEAK") for line in lines)


def test_analyze_json_has_the_documented_fields(tmp_path: Path) -> None:
    run = synthetic.write_run(synthetic.case("cache-fills"), tmp_path, seed=3)
    out = cli("analyze", str(run), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "PLATEAU" and data["reasons"]
    for signal in ("rss", "uss", "blocks"):
        g = data["growth"][signal]
        for key in ("bytes_per_step", "bytes_per_s", "mb_per_hour", "pct_per_hour", "ci95"):
            assert key in g, (signal, key)
        assert len(g["ci95"]) == 2


def test_analyze_defaults_to_the_latest_run(tmp_path: Path) -> None:
    synthetic.write_run(synthetic.case("no-retention"), tmp_path / "runs", seed=1)
    latest = synthetic.write_run(synthetic.case("retain-1KB"), tmp_path / "runs", seed=2)
    out = cli("analyze", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert Path(json.loads(out.stdout)["run"]).name == latest.name


def test_analyze_warmup_and_threshold_options(tmp_path: Path) -> None:
    run = synthetic.write_run(synthetic.case("retain-64B"), tmp_path, seed=3)
    strict = json.loads(cli("analyze", str(run), "--json", "--warmup", "20s").stdout)
    assert strict["warmup"]["source"] == "argument" and strict["warmup"]["t"] >= 20
    lax = json.loads(cli("analyze", str(run), "--json", "--min-growth", "1KB/step").stdout)
    assert lax["signals"]["rss"]["label"] == "NO_LEAK"


def test_analyze_usage_errors_exit_2_and_say_what_to_do(tmp_path: Path) -> None:
    missing = cli("analyze", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "not a run directory" in missing.stderr and "meta.json" in missing.stderr
    empty = cli("analyze", "--runs", str(tmp_path))
    assert empty.returncode == 2 and "no runs under" in empty.stderr
    run = synthetic.write_run(synthetic.case("retain-1KB"), tmp_path, seed=1)
    bad_warmup = cli("analyze", str(run), "--warmup", "soon")
    assert bad_warmup.returncode == 2 and "accepted forms" in bad_warmup.stderr
    bad_growth = cli("analyze", str(run), "--min-growth", "lots")
    assert bad_growth.returncode == 2 and "accepted forms" in bad_growth.stderr


@pytest.mark.slow  # a run then its analysis, ~15 s: the soak job runs it
def test_run_ends_with_the_same_summary(tmp_path: Path, test_scenario) -> None:
    """A real 2 s child retaining 16 KB per step: the run's own output carries the verdict."""
    args = [
        "run",
        test_scenario("retain_bytes"),
        "--variant",
        "leaky",
        "--param",
        "size=16384",
        "--duration",
        "2s",
        "--rate",
        "300/s",
        "--interval",
        "0.1",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    text = cli(*args)
    assert text.returncode == 0, text.stderr
    assert "verdict   LEAK" in text.stdout and "per step" in text.stdout
    data = json.loads(cli(*args, "--json").stdout)
    assert data["status"] == "completed" and data["verdict"] == "LEAK" and data["reasons"]
    assert data["growth"]["rss"]["bytes_per_step"] > 16384
