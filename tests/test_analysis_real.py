"""The analysis on real child runs of tests/scenarios/retain_bytes.py, whose leak is known.

A retained ``bytearray(size)`` costs ``size`` bytes plus its object header, malloc's chunk
header and its list slot, so the margins allow size..size+256 B plus 2%. The first megabyte
or so after start-up is served from memory freed during start-up, which RSS does not see:
the small leak is measured after a warm-up of steps. docs/testing.md has the measurements.
"""

from __future__ import annotations

import pytest

from leaklab import runner, units
from leaklab.analysis import analyze


def record(tmp_path, test_scenario, variant: str, size: int, warmup: str | None = None):
    config = runner.RunConfig(
        scenario=test_scenario("retain_bytes"),
        variant=variant,
        params={"size": size},
        duration_s=4.0,
        rate=500.0,
        # Every 20 ms, asked: the 200 samples the margins were measured on. At the 50 ms the
        # run would choose, the fixed run's allocated blocks read PLATEAU: the child's own
        # sampling refills CPython's free lists that a full collection empties, about 2 blocks
        # a sample for its first 50 samples, then none (docs/analysis.md).
        interval_s=0.02,
        out=str(tmp_path),
        progress=False,
        warmup=units.parse_steps_or_duration(warmup) if warmup else None,
    )
    result = runner.run(config)
    assert result.status == "completed", result.message
    return analyze(result.run_dir)


@pytest.mark.parametrize(("size", "warmup"), [(16384, None), (1024, "1000")])
def test_leaky_run_measures_the_retained_bytes_per_step(
    tmp_path, test_scenario, size: int, warmup: str | None
) -> None:
    a = record(tmp_path, test_scenario, "leaky", size, warmup)
    rss = a.growth["rss"]
    assert size <= rss.bytes_per_step <= size * 1.02 + 256, rss.bytes_per_step
    lo, hi = rss.ci95_per_step
    assert lo <= rss.bytes_per_step <= hi and hi - lo < 0.1 * size
    assert 1.0 <= a.growth["blocks"].bytes_per_step <= 3.0
    assert a.verdict.label == "LEAK" and a.verdict.signal == "rss"
    assert "Python objects are being retained" in " ".join(a.verdict.reasons)


def test_fixed_run_is_no_leak(tmp_path, test_scenario) -> None:
    a = record(tmp_path, test_scenario, "fixed", 16384)
    rss = a.growth["rss"]
    assert rss.ci95_per_step[1] < 16, rss.ci95_per_step
    assert a.signal_verdicts["rss"].label == "NO_LEAK"
    assert a.verdict.label == "NO_LEAK"
