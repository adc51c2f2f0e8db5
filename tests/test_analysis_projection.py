"""Projections: time to a memory limit and the recycling model, checked against a
step-by-step simulation of a supervisor that polls memory."""

from __future__ import annotations

import math
import random

import pytest

from leaklab.analysis import projection


def simulate(
    rate: float,
    baseline: float,
    limit: float,
    check: float,
    restart: float,
    hours: float = 4.0,
    dt: float = 0.02,
) -> tuple[float, float, float]:
    """Restarts per hour, mean overshoot and downtime share of a polled supervisor,
    advanced in dt steps. Each process generation grows at rate +-5% and each restart
    takes restart +-20%, as real ones do: the crossings then fall all over the polling
    interval, which is what the model assumes."""
    rng = random.Random(7)
    t, memory, restarts, overshoot, down = 0.0, baseline, 0, 0.0, 0.0
    speed = rate
    next_check = check * 0.37
    horizon = hours * 3600
    while t < horizon:
        t += dt
        memory += speed * dt
        if t >= next_check:
            next_check += check
            if memory > limit:
                restarts += 1
                overshoot += memory - limit
                took = restart * rng.uniform(0.8, 1.2)
                down += took
                t += took
                while next_check < t:
                    next_check += check
                memory = baseline
                speed = rate * rng.uniform(0.95, 1.05)
    return restarts / hours, overshoot / max(restarts, 1), down / t


def test_time_to_limit() -> None:
    assert projection.time_to_limit(50e6, 150e6, 100e3) == pytest.approx(1000.0)
    assert projection.time_to_limit(200e6, 150e6, 100e3) == 0.0
    assert projection.time_to_limit(50e6, 150e6, 0.0) == math.inf
    assert projection.time_to_limit(50e6, 150e6, -5.0) == math.inf


def test_incident_figures() -> None:
    """578 %/h from 50 MB with a 150 MB limit: about 21 minutes between restarts
    (PM2 restarted every 15-20 minutes in the incident)."""
    rate = 50e6 * 5.78 / 3600
    p = projection.project_recycling(rate, 50e6, 150e6, check_interval_s=1.0, restart_s=2.0)
    assert p.time_to_limit_s == pytest.approx(1245.7, rel=1e-3)
    assert p.restarts_per_hour == pytest.approx(2.884, rel=1e-3)
    assert p.downtime_fraction == pytest.approx(2 / p.cycle_s)
    assert p.overshoot_bytes == pytest.approx(rate * 0.5)
    assert p.expected_peak == pytest.approx(150e6 + rate * 0.5)


@pytest.mark.parametrize(
    ("rate", "check", "restart"), [(1e6, 5.0, 3.0), (2e5, 30.0, 1.0), (5e6, 1.0, 0.5)]
)
def test_model_matches_a_polling_simulation(rate: float, check: float, restart: float) -> None:
    """Restarts per hour within 3%, mean overshoot within 25%, downtime within 5% of a
    simulated supervisor (4 simulated hours, 7 to 280 restarts)."""
    baseline, limit = 50e6, 150e6
    p = projection.project_recycling(rate, baseline, limit, check, restart)
    restarts, overshoot, down = simulate(rate, baseline, limit, check, restart)
    assert restarts == pytest.approx(p.restarts_per_hour, rel=0.03, abs=0.5)
    assert overshoot == pytest.approx(p.overshoot_bytes, rel=0.25)
    assert down == pytest.approx(p.downtime_fraction, rel=0.05, abs=1e-4)


def test_no_growth_never_restarts() -> None:
    p = projection.project_recycling(0.0, 50e6, 150e6, 1.0, 2.0)
    assert p.restarts_per_hour == 0.0 and p.downtime_fraction == 0.0 and p.cycle_s == math.inf
    assert p.to_dict()["cycle_s"] is None


def test_time_to_limit_from_growth() -> None:
    import synthetic

    from leaklab.analysis import analyze

    a = analyze(synthetic.as_run_data(synthetic.case("retain-1KB"), 1))
    g = a.growth["rss"]
    eta = projection.time_to_limit_from(g, g.last + 10e6)
    assert eta == pytest.approx(10e6 / g.bytes_per_s)
