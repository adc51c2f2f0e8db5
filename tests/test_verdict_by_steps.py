"""Verdicts at any run length, through the real runner: step-bounded runs sampled by work,
look-alikes that must not read as leaks, and runs of no set length that stop on a
confident verdict.

retain_bytes at 1 KB/step keeps about 1.1 KB of RSS (payload, bytearray header, list slot,
malloc header) and 2 blocks per step; docs/testing.md has the measured figures.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from leaklab import runner, store
from leaklab.analysis import analyze
from leaklab.analysis.sequential import SequentialStop, look_level, look_times
from leaklab.runner.spec import MIN_INTERVAL_S, MIN_SAMPLES_PER_RUN


def _run(tmp_path, scenario: str, **fields) -> runner.RunResult:
    config = runner.RunConfig(scenario=scenario, out=str(tmp_path), progress=False, **fields)
    result = runner.run(config)
    assert result.status == "completed", result.message
    return result


@pytest.mark.parametrize("steps", [500, 2_000])
def test_a_short_step_bounded_run_has_a_trend(tmp_path, test_scenario, steps):
    result = _run(
        tmp_path,
        test_scenario("retain_bytes"),
        variant="leaky",
        params={"size": "1024"},
        steps=steps,
    )
    run = store.read_run(result.run_dir)
    # Sampled by work: a run of a few hundredths of a second still gets its least number of
    # samples, however fast its steps (a whole one in a boundary's rounding may be lost).
    assert run.n_samples >= MIN_SAMPLES_PER_RUN - 1, run.n_samples
    a = analyze(run)
    assert a.label == "LEAK", a.verdict


@pytest.mark.parametrize("length", [{"duration_s": 1.0}, {"steps": 2_000, "rate": 1_000}])
def test_a_short_run_is_sampled_no_more_often_than_a_long_one(tmp_path, test_scenario, length):
    result = _run(tmp_path, test_scenario("retain_bytes"), variant="fixed", **length)
    run = store.read_run(result.run_dir)
    steps, t = np.asarray(run.columns["steps"]), np.asarray(run.columns["t"])
    stepping = t[(steps > 0) & (steps < steps[~np.isnan(steps)].max())]
    # A busy machine only spreads the samples out: the median spacing is the child's clock.
    assert np.median(np.diff(stepping)) >= 0.9 * MIN_INTERVAL_S, np.diff(stepping)
    assert run.n_samples >= MIN_SAMPLES_PER_RUN - 1, run.n_samples
    a = analyze(run)
    assert a.label != "LEAK", a.verdict


def test_a_long_step_bounded_run_measures_bytes_per_step(tmp_path, test_scenario):
    result = _run(
        tmp_path,
        test_scenario("retain_bytes"),
        variant="leaky",
        params={"size": "1024"},
        steps=20_000,
    )
    a = analyze(result.run_dir)
    assert a.label == "LEAK" and a.verdict.signal == "rss"
    assert abs(a.growth["rss"].bytes_per_step - 1_024) <= 0.1 * 1_024, a.growth[
        "rss"
    ].bytes_per_step
    assert a.growth["blocks"].bytes_per_step == pytest.approx(2.0, abs=0.05)


def test_samples_carry_the_childs_own_rss_and_post_collection_counts(tmp_path, test_scenario):
    result = _run(
        tmp_path,
        test_scenario("retain_bytes"),
        variant="leaky",
        params={"size": "1024"},
        steps=2_000,
    )
    run = store.read_run(result.run_dir)
    inside = [v for v in run.columns["child_rss"] if v == v]
    collected = [v for v in run.columns["collected_blocks"] if v == v]
    assert len(inside) == run.n_samples
    # Forced at the first and last sample at least; the counts after collection grow with the leak.
    assert len(collected) >= 2 and collected[-1] - collected[0] >= 2 * 2_000 * 0.9
    summary = store.read_run(result.run_dir).events_of("collections")
    assert summary and summary[0]["forced"] >= 2


def test_client_churn_with_reference_cycles_is_not_a_leak(tmp_path, test_scenario):
    result = _run(tmp_path, test_scenario("client_churn"), steps=2_000)
    a = analyze(result.run_dir)
    assert a.label != "LEAK", a.verdict


def test_a_buffer_that_fills_and_flushes_is_bounded(tmp_path, test_scenario):
    result = _run(tmp_path, test_scenario("flushed_buffer"), steps=10_000)
    a = analyze(result.run_dir)
    assert a.label in ("PLATEAU", "NO_LEAK"), a.verdict
    assert a.signal_verdicts["blocks"].label in ("PLATEAU", "NO_LEAK"), a.signal_verdicts["blocks"]


def test_a_run_of_no_set_length_stops_when_the_leak_is_certain(tmp_path, test_scenario):
    rule = SequentialStop(max_duration_s=60)
    result = _run(
        tmp_path,
        test_scenario("retain_bytes"),
        variant="leaky",
        params={"size": "1024"},
        rate=500,
        stop_rule=rule,
        max_duration_s=60,
    )
    run = store.read_run(result.run_dir)
    decided = run.events_of("decided")
    assert decided and decided[0]["label"] == "LEAK"
    assert decided[0]["t"] < 10, decided
    assert result.duration_s < 20
    assert run.meta["config"]["until_confident"] is True
    assert run.meta["config"]["stop_rule"]["level"] == pytest.approx(rule.level)
    a = analyze(run)
    assert a.label == "LEAK"
    assert any("stricter interval" in note for note in a.notes)
    # The analysis reads the rows the deciding look read: it starts where that window started.
    assert run.meta["warmup_end"] == decided[0]["window_start"]


def test_a_run_of_no_set_length_ends_at_its_maximum_when_nothing_is_certain(
    tmp_path, test_scenario
):
    # A buffer filling at 20 records/s has not reached its bound of 2,000 by the maximum:
    # the rule looks only at 2 s and 3 s, and a look before the first one is due never comes.
    rule = SequentialStop(max_duration_s=1.5)
    result = _run(
        tmp_path, test_scenario("flushed_buffer"), rate=20, stop_rule=rule, max_duration_s=1.5
    )
    run = store.read_run(result.run_dir)
    assert rule.times == [1.5]
    assert 1.4 <= result.duration_s <= 15
    assert run.meta["config"]["until_confident"] is True


def test_the_look_schedule_keeps_the_family_wise_error():
    times = look_times(300)
    assert times[0] == 3.0 and times[-1] == 300
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    level = look_level(len(times))
    assert (1 - level) * len(times) == pytest.approx(0.05)


def test_the_cli_runs_until_confident_and_says_so(tmp_path, test_scenario):
    from click.testing import CliRunner

    from leaklab.cli import cli

    out = CliRunner().invoke(
        cli,
        [
            "run",
            test_scenario("retain_bytes"),
            "--rate",
            "500/s",
            "--max-duration",
            "30s",
            "--out",
            str(tmp_path),
            "--json",
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["verdict"] == "LEAK"
    assert data["duration_s"] < 20
    bad = CliRunner().invoke(
        cli,
        [
            "run",
            test_scenario("retain_bytes"),
            "--steps",
            "10",
            "--max-duration",
            "30s",
            "--out",
            str(tmp_path),
        ],
    )
    assert bad.exit_code == 2 and "--max-duration" in bad.output
