"""The supervisor's policy (PM2's numbers), the prediction arithmetic and the request log,
without processes."""

from __future__ import annotations

import math
import signal

import pytest

from leaklab import store
from leaklab.analysis import recycling
from leaklab.runner.supervisor import (
    Backoff,
    CheckClock,
    CrashLimit,
    RecyclePolicy,
    Supervisor,
    parse_signal,
)


def test_backoff_follows_pm2_exp_backoff_restart_delay():
    backoff = Backoff()
    delays = [backoff.next_delay() for _ in range(16)]
    assert delays[:4] == pytest.approx([0.1, 0.15, 0.225, 0.3375])
    assert all(
        b == pytest.approx(min(15.0, a * 1.5)) for a, b in zip(delays, delays[1:], strict=False)
    )
    assert delays[-1] == 15.0  # capped at 15 s
    backoff.note_uptime(29.9)
    assert backoff.next_delay() == 15.0  # not stable yet
    backoff.note_uptime(30.0)
    assert backoff.next_delay() == pytest.approx(0.1)  # 30 s up: back to the start


def test_check_clock_keeps_a_fixed_schedule():
    clock = CheckClock(30.0)
    assert not clock.due(29.9)
    assert clock.due(30.0) and not clock.due(30.5)
    assert clock.due(95.0)  # a late check does not shift the schedule ...
    assert clock.next_at == 120.0  # ... and the missed tick at 90 s is skipped, not replayed


def test_signals_and_policy_validation():
    assert parse_signal("SIGINT") is signal.SIGINT
    assert parse_signal("term") is signal.SIGTERM
    assert parse_signal("9") is signal.SIGKILL
    with pytest.raises(ValueError, match="accepted forms"):
        parse_signal("SIGFOO")
    policy = RecyclePolicy(limit=150_000_000)
    assert (
        policy.check_interval_s,
        policy.kill_signal,
        policy.kill_timeout_s,
        policy.max_restarts,
    ) == (30.0, "SIGINT", 1.6, 16)
    assert policy.to_dict()["kill_signal"] == "SIGINT"
    with pytest.raises(ValueError, match="known modes: restart, reload"):
        RecyclePolicy(limit=1, mode="bounce")
    with pytest.raises(ValueError, match="positive"):
        RecyclePolicy(limit=1, check_interval_s=0)


def test_supervisor_gives_up_after_max_restarts_consecutive_crashes():
    sup = Supervisor(RecyclePolicy(limit=10**8, max_restarts=2))
    first = sup.crash_restart(1.0, 0, uptime_s=0.1, returncode=1, error="boom")
    assert first.backoff_s == 0.1 and sup.spawn_at == pytest.approx(1.1)
    assert not sup.spawn_due(1.05) and sup.spawn_due(1.1)
    sup.finish_pending(1.5, healthy=False)
    sup.crash_restart(2.0, 1, uptime_s=0.1, returncode=1, error="boom")
    with pytest.raises(CrashLimit, match="crashed 3 times in a row .*gave up after 2 restarts"):
        sup.crash_restart(3.0, 2, uptime_s=0.1, returncode=1, error="boom")


def test_prediction_of_the_incident():
    """578 %/h from 50 MB is 80.3 KB/s: 150 MB after 1245 s; PM2's 30 s check adds 15 s on average
    and 1.2 MB of overshoot; a 2 s restart at 37 req/s fails 74 requests."""
    rate = 50e6 * 5.78 / 3600
    p = recycling.predict(rate, 50e6, 150e6, check_interval_s=30, restart_s=2.0, rate=37.0)
    assert p.time_to_limit_s == pytest.approx(1245.7, abs=0.5)
    assert p.restart_interval_s == pytest.approx(1245.7 + 15 + 2, abs=0.5)
    assert p.restarts_per_hour == pytest.approx(3600 / p.restart_interval_s)
    assert p.overshoot_bytes == pytest.approx(rate * 15) and p.max_overshoot_bytes == pytest.approx(
        rate * 30
    )
    assert p.failed_per_restart == pytest.approx(74.0)
    assert p.success_rate == pytest.approx(1 - 2.0 / p.restart_interval_s)
    reload = recycling.predict(
        rate, 50e6, 150e6, 30, 2.0, downtime_s=0.0, lost_per_restart=3.0, rate=37.0, mode="reload"
    )
    assert reload.failed_per_restart == 3.0 and reload.success_rate > p.success_rate
    flat = recycling.predict(0.0, 50e6, 150e6, rate=37.0)
    assert (
        flat.restarts_per_hour == 0.0
        and flat.success_rate == 1.0
        and math.isinf(flat.time_to_limit_s)
    )


def test_request_log_round_trip_and_truncated_last_line(tmp_path):
    path = store.new_run_dir(tmp_path, "svc", None)
    with store.RunWriter(path, {"scenario": "svc"}) as writer:
        writer.request({"t": 0.5, "generation": 0, "latency_s": 0.01, "status": 200, "error": None})
        writer.request(
            {"t": 0.6, "generation": 1, "latency_s": 0.002, "status": None, "error": "refused"}
        )
    with open(path / store.REQUESTS, "a") as fh:
        fh.write("0.7,1,0.0")  # cut short by a crash
    with pytest.warns(UserWarning, match="requests.csv: last line is truncated"):
        run = store.read_run(path)
    assert run.requests["t"] == [0.5, 0.6]
    assert run.requests["error"] == ["", "refused"]
    assert run.requests["status"][0] == 200.0 and math.isnan(run.requests["status"][1])
    assert recycling.succeeded(run.requests).tolist() == [True, False]
    assert store.read_requests(tmp_path) == {}  # a run without service mode has no request log
