"""The incident's mitigation, reproduced: the http-agent seed preset served at 37 req/s and
recycled at a memory limit, time compressed with the scenario's ``speed`` parameter.

speed=20 makes every request do 20 upstream calls, so the incident's ~2.2 KB per request at
37 req/s (150 MB about every 20 minutes) runs 20 times faster: about one restart a minute.
docs/testing.md has the measured restarts, overshoot and failures the margins come from.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from leaklab import runner, scenario, store
from leaklab.analysis import recycling
from leaklab.runner.supervisor import RecyclePolicy

SCENARIO = str(Path(__file__).resolve().parent.parent / "scenarios" / "http_agent.py")
SPEED = 20
RATE = 37.0
#: the seed preset's response size and starting RSS, given to the fixed variant too
SEED_PRESET = scenario.load(SCENARIO).variants["seed"].params


def _serve(
    out: Path, variant: str, duration: float, limit: int | None, check_s: float = 2.0
) -> store.RunData:
    # The fixed variant gets the seed's response size and starting RSS: the same load, without the
    # leak.
    params = {"speed": str(SPEED)}
    if variant != "seed":
        params.update(SEED_PRESET)
    result = runner.run(
        runner.RunConfig(
            scenario=SCENARIO,
            variant=variant,
            params=params,
            serve=True,
            rate=RATE,
            duration_s=duration,
            interval_s=0.25,
            out=str(out),
            progress=False,
            probes=[],
            recycle=RecyclePolicy(limit=limit, check_interval_s=check_s) if limit else None,
        )
    )
    assert result.status == "completed", result.message
    return store.read_run(result.run_dir)


@pytest.mark.slow  # 20 s of the seed preset recycled: the soak job runs it
def test_seed_service_restarts_and_cleans_up_its_upstreams(tmp_path):
    """The short version: 70 MB is reached in ~11 s from ~51 MB."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    run = _serve(tmp_path, "seed", 20.0, 70_000_000, check_s=0.5)
    m = recycling.analyze_recycling(run)
    assert m.memory_restarts >= 1 and m.crash_restarts == 0, m
    for slope in m.generation_slopes:
        assert slope.rss_start < 60_000_000, slope  # back to the baseline after every restart
    # Teardown (which stops the scenario's upstream process) finished within PM2's 1.6 s kill
    # timeout.
    finished = [e for e in run.events_of("restart") if "stopped_after_s" in e]
    assert finished and not any(e["killed"] for e in finished)
    assert all(e["reason"] == "interrupted" for e in run.events_of("done"))
    assert m.failed > 0 and m.success_rate < 1.0  # the restart refused real requests
    assert {
        p.pid for p in psutil.Process().children(recursive=True)
    } <= before  # no upstream left behind


@pytest.mark.slow
def test_seed_recycled_at_150mb_matches_the_prediction_and_fixed_never_restarts(tmp_path):
    base = _serve(tmp_path / "base", "seed", 40.0, None)
    predicted = recycling.predict_from_run(base, 150_000_000, check_interval_s=2.0)
    assert 50 <= predicted.restarts_per_hour <= 70, (
        predicted
    )  # ~1 a minute: the incident, 20x faster

    recycled = _serve(tmp_path / "recycled", "seed", 200.0, 150_000_000)
    m = recycling.analyze_recycling(recycled)
    side_by_side = recycling.compare(recycled, base)
    print("measured vs predicted:", side_by_side)
    assert m.memory_restarts >= 3, m
    assert 0.8 <= side_by_side["restarts_per_hour"]["ratio"] <= 1.2, side_by_side
    for e in recycled.events_of("restart"):
        if e["reason"] == "memory":
            assert 150_000_000 < e["rss"] < 150_000_000 + 3 * predicted.bytes_per_s * 2.0, e
    for slope in m.generation_slopes:
        assert slope.rss_start < 60_000_000, slope
        assert 0.9 <= slope.bytes_per_s / predicted.bytes_per_s <= 1.1, slope
    assert m.failed_per_restart > 0.0 and m.success_rate < 1.0

    fixed = _serve(tmp_path / "fixed", "fixed", 60.0, 150_000_000)
    f = recycling.analyze_recycling(fixed)
    assert f.memory_restarts == 0 and f.generations == 1 and f.failed == 0, f
