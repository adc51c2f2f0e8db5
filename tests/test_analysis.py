"""Growth, intervals and verdicts on synthetic runs whose truth is known
(:mod:`synthetic`, next to the tests); real child runs are in test_analysis_real.py."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import synthetic

from leaklab import store
from leaklab.analysis import Thresholds, WarmupError, analyze, growth, parse_warmup


def quiet(name: str, **changes: object) -> synthetic.Case:
    return replace(synthetic.case(name), noise=synthetic.QUIET, **changes)


def test_public_api_fields() -> None:
    a = analyze(synthetic.as_run_data(synthetic.case("retain-1KB"), seed=1))
    assert set(a.growth) == {"rss", "uss", "blocks"}
    g = a.growth["rss"]
    for name in (
        "signal",
        "unit",
        "bytes_per_s",
        "bytes_per_step",
        "mb_per_hour",
        "pct_per_hour",
        "baseline",
        "ci95",
        "ci95_per_step",
        "n_samples",
        "t_start",
        "t_end",
    ):
        assert hasattr(g, name), name
    assert g.unit == "bytes" and a.growth["blocks"].unit == "blocks"
    assert g.mb_per_hour == pytest.approx(g.bytes_per_s * 3600 / 1e6)
    assert g.pct_per_hour == pytest.approx(100 * g.bytes_per_s * 3600 / g.baseline)
    assert a.verdict.label == "LEAK" and a.verdict.signal == "rss" and a.verdict.reasons
    assert a.top_types == [] and a.top_sites == [] and a.chains == []


def test_quiet_leak_is_measured_exactly() -> None:
    """Without noise, the slope is the injected rate (pages of 4 KB are the only rounding)."""
    a = analyze(synthetic.as_run_data(quiet("retain-1KB")))
    rss = a.growth["rss"]
    assert rss.bytes_per_step == pytest.approx(1024, rel=0.01)
    assert rss.bytes_per_s == pytest.approx(1024 * rss.steps_per_s, rel=0.02)
    assert rss.ci95_per_step[0] <= 1024 * 1.01 and rss.ci95_per_step[1] >= 1024 * 0.99
    assert a.growth["blocks"].bytes_per_step == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_noisy_1kb_leak_within_5_percent(seed: int) -> None:
    """Allocator chunks, GC sawtooth, autocorrelated wander and outliers on a 60 s run:
    the benchmark measured a worst error of 0.8% over 10 seeds; 5% is the issue's target."""
    a = analyze(synthetic.as_run_data(synthetic.case("retain-1KB"), seed))
    for signal in ("rss", "uss"):
        assert a.growth[signal].bytes_per_step == pytest.approx(1024, rel=0.05)
    assert a.growth["blocks"].bytes_per_step == pytest.approx(1.0, rel=0.05)
    assert a.verdict.label == "LEAK"


@pytest.mark.parametrize("case", [c.name for c in synthetic.CASES])
def test_verdicts_are_never_wrong(case: str) -> None:
    """Three seeds per case: the verdict is one of the expected ones, or INCONCLUSIVE
    for the bounded cases (the sawtooth's troughs are noisy: see the benchmark), never LEAK
    for a bounded case, never anything but LEAK for a leak."""
    c = synthetic.case(case)
    for seed in (21, 22, 23):
        label = analyze(synthetic.as_run_data(c, seed)).verdict.label
        if "LEAK" in c.expected:
            assert label == "LEAK", (case, seed, label)
        else:
            assert label in (*c.expected, "INCONCLUSIVE"), (case, seed, label)


def test_native_leak_names_memory_outside_python_objects() -> None:
    a = analyze(synthetic.as_run_data(synthetic.case("native-1KB"), 3))
    assert a.verdict.label == "LEAK" and a.verdict.signal == "rss"
    assert a.signal_verdicts["blocks"].label == "NO_LEAK"
    assert "outside Python objects" in " ".join(a.verdict.reasons)


def test_python_leak_hidden_in_rss_noise_is_found_in_blocks() -> None:
    """4 bytes and one object per step at 200 steps/s: RSS cannot resolve 800 B/s under
    30 KB of wander in a minute, the block count can."""
    c = replace(synthetic.case("retain-64B"), bytes_per_step=4)
    a = analyze(synthetic.as_run_data(c, 5))
    assert a.signal_verdicts["blocks"].label == "LEAK"
    assert a.signal_verdicts["rss"].label != "LEAK"
    assert a.verdict.label == "LEAK" and a.verdict.signal == "blocks"


def test_cache_that_fills_is_a_plateau_and_says_so() -> None:
    a = analyze(synthetic.as_run_data(synthetic.case("cache-fills"), 4))
    assert a.verdict.label == "PLATEAU"
    assert "stopped" in a.verdict.reasons[0]
    assert abs(a.growth["rss"].tail_per_s) < 0.25 * a.growth["rss"].head_per_s


def test_sawtooth_is_judged_by_its_troughs() -> None:
    """A 3.3 MB sawtooth every 4 s, sampled every 0.5 s: a trough is seen up to half a
    second after its clear (up to 410 KB up the next ramp), so one minute cannot bound
    the floor below the 3.2 KB/s threshold; five minutes can."""
    minute = analyze(synthetic.as_run_data(synthetic.case("sawtooth-4s"), 3))
    assert minute.growth["rss"].resets >= 10
    assert minute.signal_verdicts["rss"].label == "INCONCLUSIVE"
    assert minute.verdict.more_time_s and minute.verdict.more_time_s > 0
    five = analyze(synthetic.as_run_data(synthetic.case("sawtooth-4s-5min"), 3))
    assert five.signal_verdicts["rss"].label == "NO_LEAK"
    assert "sawtooth" in five.signal_verdicts["rss"].reasons[0]


def test_leak_under_a_sawtooth_is_still_a_leak() -> None:
    """A structure cleared every 4 s on top of 200 B/step that is never cleared: the
    sawtooth dominates the range, the troughs carry the leak."""
    c = quiet("sawtooth-4s")
    meta, cols, events = synthetic.generate(c, 0)
    steps = np.nan_to_num(np.asarray(cols["steps"]))
    cols["rss"] = (np.asarray(cols["rss"]) + 200 * steps).tolist()
    run = store.RunData(Path("<sawtooth+leak>"), {"schema_version": 1, **meta}, cols, events)
    a = analyze(run)
    assert a.signal_verdicts["rss"].label == "LEAK"
    assert "floor" in a.signal_verdicts["rss"].reasons[0]


def test_fast_leak_is_called_within_ten_seconds() -> None:
    """1 KB/step at 500 steps/s, 10 s run (9 s of samples after the warm-up)."""
    for seed in (1, 2, 3):
        a = analyze(synthetic.as_run_data(synthetic.case("fast-1KB-10s"), seed))
        assert a.verdict.label == "LEAK"
        assert a.growth["rss"].window_s <= 10
        assert a.growth["rss"].ci95_per_step[0] > 900


def test_interval_is_honest_for_autocorrelated_noise() -> None:
    """AR(1) noise (phi 0.8 per sample, 30 KB) around 1 KB/s over 240 samples: an interval
    that ignored the autocorrelation would hold the truth far less than 95% of the time.
    Measured: 91% of 80 series (96% white, 94% phi 0.5); asserted >= 80% of 50."""
    slope, n, phi, sd = 1000.0, 240, 0.8, 30e3
    hits = 0
    reps = 50
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        t = np.arange(n) * 0.5
        e = rng.standard_normal(n) * sd * math.sqrt(1 - phi**2)
        w = np.zeros(n)
        w[0] = rng.standard_normal() * sd
        for k in range(1, n):
            w[k] = phi * w[k - 1] + e[k]
        g = growth.estimate("rss", t, t * 100, 3e7 + slope * t + w)
        hits += g.ci95[0] <= slope <= g.ci95[1]
    assert hits / reps >= 0.8


def test_short_noisy_run_is_inconclusive_with_how_much_longer() -> None:
    """64 B/step at 50 steps/s (3.2 KB/s) under 30 KB wander: 12 s cannot decide; the
    suggested extra time then does."""
    c = replace(synthetic.case("retain-64B"), blocks_per_step=0, rate=50, duration_s=12)
    a = analyze(synthetic.as_run_data(c, 8))
    assert a.verdict.label == "INCONCLUSIVE"
    more = a.verdict.more_time_s
    assert more is not None and more > 0
    longer = analyze(synthetic.as_run_data(replace(c, duration_s=12 + more), 8))
    assert longer.verdict.label == "LEAK"


def test_steps_slope_follows_steps_when_the_rate_changes() -> None:
    """100 steps/s for 30 s then 400 steps/s: per step stays 1 KB, per second does not."""
    c = quiet("retain-1KB", duration_s=60)
    meta, cols, events = synthetic.generate(c, 0)
    t = np.asarray(cols["t"])
    steps = np.where(t < 30, 100 * t, 3000 + 400 * (t - 30))
    cols["steps"] = steps.tolist()
    cols["rss"] = (30e6 + 1024 * steps).tolist()
    run = store.RunData(Path("<rate change>"), {"schema_version": 1, **meta}, cols, events)
    g = analyze(run).growth["rss"]
    assert g.bytes_per_step == pytest.approx(1024, rel=0.01)
    assert g.steps_per_s > 150


def test_recycled_generations_are_not_counted_as_drops() -> None:
    """Three process generations, each starting over at 30 MB and leaking 1 KB/step:
    the restarts are not growth, and the slope is the within-generation one."""
    n = 300
    t = np.arange(n) * 0.5
    gen = (t // 50).astype(float)
    steps = (t - gen * 50) * 200
    cols = {
        "t": t.tolist(),
        "steps": steps.tolist(),
        "rss": (30e6 + 1024 * steps).tolist(),
        "generation": gen.tolist(),
        "allocated_blocks": (9e4 + steps).tolist(),
    }
    meta = {
        "schema_version": 1,
        "status": "completed",
        "config": {"warmup": {"steps": 200}, "interval_s": 0.5},
    }
    a = analyze(store.RunData(Path("<recycled>"), meta, cols, []))
    g = a.growth["rss"]
    assert g.generations == 3
    assert g.bytes_per_step == pytest.approx(1024, rel=0.01)
    assert g.resets == 0
    assert a.window.mask[gen == 1].sum() < (gen == 1).sum()  # each generation skips its own warm-up


def _processes(case: synthetic.Case, count: int, seed: int = 0) -> store.RunData:
    """``count`` processes of ``case`` one after the other, each a generation that starts over
    (steps counted on across them, as a recycled run counts them)."""
    meta, first, events = synthetic.generate(case, seed)
    columns: dict[str, list[float]] = {name: [] for name in first}
    for g in range(count):
        _, cols, _ = synthetic.generate(case, seed * 100 + g) if g else (meta, first, events)
        offset = columns["steps"][-1] if g else 0.0
        for name, values in cols.items():
            if name == "t":
                values = [v + g * case.duration_s for v in values]
            elif name == "steps":
                values = [v + offset for v in values]
            elif name == "generation":
                values = [float(g)] * len(values)
            columns[name].extend(values)
    return store.RunData(
        Path(f"<{count} x {case.name}>"), {"schema_version": 1, **meta}, columns, []
    )


@pytest.mark.parametrize(
    "changes, expected",
    [
        # A cache that fills in the first half of every process' life, then stays: each
        # restart refills it, which is not growth to the end of a process.
        ({"bytes_per_step": 1024, "bound_bytes": 1024 * 200 * 30}, "PLATEAU"),
        ({"bytes_per_step": 1024}, "LEAK"),
    ],
)
def test_growth_to_the_end_is_judged_within_each_process(
    changes: dict[str, float], expected: str
) -> None:
    case = replace(synthetic.case("no-retention"), duration_s=60, expected=(expected,), **changes)
    a = analyze(_processes(case, 3))
    assert a.growth["rss"].generations == 3
    assert a.label == expected, a.verdict


def test_setup_rows_and_missing_uss_are_skipped() -> None:
    c = quiet("retain-1KB", duration_s=20)
    meta, cols, events = synthetic.generate(c, 0)
    cols["uss"] = [math.nan] * len(cols["t"])
    a = analyze(store.RunData(Path("<no uss>"), {"schema_version": 1, **meta}, cols, events))
    assert "uss" not in a.growth
    first_stepping = next(i for i, s in enumerate(cols["steps"]) if math.isfinite(s))
    assert first_stepping > 0 and not a.window.mask[:first_stepping].any()


def test_warmup_recorded_and_overridden() -> None:
    run = synthetic.as_run_data(quiet("retain-1KB", duration_s=20))
    a = analyze(run)
    assert a.window.source == "run"
    assert a.window.steps_start >= run.meta["warmup_end"]["steps"]
    none = analyze(run, warmup=0)
    assert none.window.source == "none" and none.growth["rss"].n_samples > a.growth["rss"].n_samples
    by_time = analyze(run, warmup="10s")
    assert by_time.window.source == "argument" and by_time.window.t_start >= 10
    by_steps = analyze(run, warmup="1000")
    assert by_steps.window.steps_start >= 1000


@pytest.mark.parametrize("bad", ["soon", "-3", "10 parsecs", {"minutes": 3}])
def test_bad_warmup_lists_the_accepted_forms(bad: object) -> None:
    with pytest.raises(WarmupError, match="accepted forms"):
        parse_warmup(bad)


def test_warmup_that_never_ended_is_said() -> None:
    run = synthetic.as_run_data(quiet("retain-1KB", duration_s=20))
    a = analyze(run, warmup="100000")
    assert a.window.source == "none"
    assert any("never ended" in note for note in a.notes)


@pytest.mark.parametrize("status", ["running", "interrupted", "failed", "killed_at_cap"])
def test_cut_short_runs_are_analysed_and_say_so(status: str) -> None:
    run = synthetic.as_run_data(synthetic.case("retain-1KB"), 2)
    run.meta["status"] = status
    keep = len(run.columns["t"]) // 2
    run.columns = {k: v[:keep] for k, v in run.columns.items()}
    a = analyze(run)
    assert a.status == status and a.verdict.label == "LEAK"
    assert f"{keep - int((~a.window.mask).sum())} samples" in a.notes[0]


def test_empty_run_is_inconclusive() -> None:
    meta = {"schema_version": 1, "status": "failed", "config": {}}
    a = analyze(store.RunData(Path("<empty>"), meta, {"t": [], "steps": [], "rss": []}, []))
    assert a.verdict.label == "INCONCLUSIVE" and a.growth == {}
    json.dumps(a.to_dict(), allow_nan=False)


def test_too_few_samples_is_inconclusive_with_time_needed() -> None:
    run = synthetic.as_run_data(quiet("retain-1KB", duration_s=3))
    a = analyze(run)
    assert a.verdict.label == "INCONCLUSIVE"
    assert a.verdict.more_time_s and a.verdict.more_time_s > 0
    assert "samples" in a.verdict.reasons[0]


def test_thresholds_decide_materiality() -> None:
    """The same 64 B/step leak is immaterial under a 100 B/step threshold."""
    run = synthetic.as_run_data(quiet("retain-64B"))
    assert analyze(run).verdict.label == "LEAK"
    lax = Thresholds(min_bytes_per_step=100, min_blocks_per_step=2)
    assert analyze(run, thresholds=lax).verdict.label == "NO_LEAK"


def test_to_dict_is_json_with_the_documented_keys() -> None:
    a = analyze(synthetic.as_run_data(synthetic.case("retain-1KB"), 1))
    data = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert {"verdict", "reasons", "growth", "status", "warmup"} <= set(data)
    rss = data["growth"]["rss"]
    for key in ("bytes_per_step", "bytes_per_s", "mb_per_hour", "pct_per_hour", "ci95", "baseline"):
        assert key in rss
    assert len(rss["ci95"]) == 2 and rss["ci95"][0] <= rss["bytes_per_s"] <= rss["ci95"][1]
    assert data["verdict"] == "LEAK"


def test_written_run_reads_back_the_same(tmp_path) -> None:
    """Through the store's writer and reader, the analysis is the same as in memory."""
    c = synthetic.case("cache-fills")
    path = synthetic.write_run(c, tmp_path, seed=4)
    on_disk = analyze(path)
    in_memory = analyze(synthetic.as_run_data(c, 4))
    assert on_disk.verdict.label == in_memory.verdict.label
    assert on_disk.growth["rss"].bytes_per_s == pytest.approx(
        in_memory.growth["rss"].bytes_per_s, rel=1e-9
    )


@pytest.mark.parametrize(
    "as_imported, as_one, expected",
    [
        ("LEAK", "NO_LEAK", "INCONCLUSIVE"),  # a recycled leak, or a structure cleared
        ("PLATEAU", "LEAK", "INCONCLUSIVE"),
        ("LEAK", "INCONCLUSIVE", "LEAK"),  # one process: too few falls to tell anything
        ("LEAK", "LEAK", "LEAK"),
        ("PLATEAU", "NO_LEAK", "PLATEAU"),
        ("INCONCLUSIVE", "NO_LEAK", "INCONCLUSIVE"),
    ],
)
def test_inferred_restarts_decide_only_where_both_readings_agree(
    as_imported: str, as_one: str, expected: str
) -> None:
    from leaklab.analysis.inferred_restarts import reconcile
    from leaklab.analysis.verdict import Verdict

    imported = Verdict(as_imported, [f"as imported: {as_imported}"], "rss", 60.0)
    verdict = reconcile(imported, Verdict(as_one, [f"as one: {as_one}"], "rss"), 4)
    assert verdict.label == expected
    if expected == as_imported:
        assert verdict is imported
    else:
        assert f"Read as restarts, {as_imported}: as imported" in verdict.reasons[1]
        assert verdict.reasons[2].endswith(f"as one: {as_one}") and verdict.more_time_s is None
