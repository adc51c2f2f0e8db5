"""Recycling, measured and predicted: what restarting on a memory limit costs.

Measured, from a recycled run (``leaklab run --recycle LIMIT``), by
:func:`analyze_recycling` (or :func:`recycling_metrics` for a plain dict):
restarts per hour, restart time and downtime per restart, success rate and
throughput of the load, overshoot above the limit between checks, and the
leak rate recovered from the sawtooth: each generation's own slope.

Predicted, from a run *without* recycling, by :func:`predict_from_run` (or
:func:`predict` from plain numbers): the same quantities for a limit, a check
interval and a restart time, using the run's growth (:func:`leaklab.analysis.analyze`)
and the model of :mod:`leaklab.analysis.projection`. :func:`compare` puts the
two side by side.

Everything here is a pure function of the run directory's data.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from leaklab import store
from leaklab.analysis import projection
from leaklab.analysis.growth import Growth, GrowthOptions, estimate
from leaklab.kinds import EventKind
from leaklab.kinds import Verdict as Label
from leaklab.pm2_defaults import (
    DEFAULT_MODE,
    PM2_CHECK_INTERVAL_S,
    PM2_KILL_SIGNAL,
    PM2_KILL_TIMEOUT_S,
)
from leaklab.records import RecycleSettings

#: PM2's memory check interval, the default for predictions.
DEFAULT_CHECK_INTERVAL_S = PM2_CHECK_INTERVAL_S
#: Restart time assumed when the run does not show how long a start takes.
DEFAULT_RESTART_S = 2.0
#: Fewer bootstrap replicates than a full analysis: one slope per generation, many generations.
_SLOPE_OPTIONS = GrowthOptions(n_boot=100)
#: Connection-level failures: the ones a restart causes (an HTTP 5xx is the scenario's own error).
CONNECTION_ERRORS = (
    "refused",
    "reset",
    "disconnected",
    "connect",
    "timeout",
    "truncated",
    "oserror",
    "no_target",
)


def _run(run: store.RunData | str | os.PathLike[str]) -> store.RunData:
    return run if isinstance(run, store.RunData) else store.read_run(run, warn=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


@dataclass
class GenerationSlope:
    """One process generation's stretch of the sawtooth."""

    generation: int
    t_start: float  # first sample used (after the generation was healthy)
    t_end: float  # last sample used (before its restart was triggered)
    n_samples: int
    rss_start: float
    rss_peak: float
    bytes_per_s: float
    bytes_per_step: float
    baseline: float = (
        math.nan
    )  # the fitted line's value at t_start (with bytes_per_s, the line itself)


@dataclass
class RecyclingMetrics:
    """What recycling cost in one run (NaN where the run cannot tell)."""

    limit: float
    check_interval_s: float
    mode: str
    kill_signal: str
    generations: int
    memory_restarts: int
    crash_restarts: int
    restart_times: list[float]  # trigger time of every memory restart (seconds since the start)
    restart_interval_s: float  # mean time between consecutive memory restarts
    restarts_per_hour: float
    restart_time_s: float  # mean time from the trigger until the new generation answered /health
    #: mean time from a generation being healthy until its memory restart was triggered: growing to
    #: the limit plus waiting for the next check (the restart interval without the restart itself)
    time_to_restart_s: float
    downtime_per_restart_s: (
        float  # traffic lost per restart, in seconds of load (failed requests / rate)
    )
    failed_per_restart: float  # connection-level failed requests per restart
    overshoot_bytes: float  # mean RSS above the limit when a restart was triggered
    max_overshoot_bytes: float
    leak_bytes_per_s: float  # the underlying leak: median of the generations' slopes
    leak_bytes_per_step: float
    baseline_rss: float  # median RSS of a fresh generation when it started serving
    generation_slopes: list[GenerationSlope] = field(default_factory=list)
    requests: int = 0
    ok: int = 0
    failed: int = 0
    failures_by_error: dict[str, int] = field(default_factory=dict)
    success_rate: float = math.nan
    throughput_rps: float = math.nan  # successful requests per second over the load
    offered_rps: float = math.nan
    load_s: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _restarts(run: store.RunData) -> list[dict[str, Any]]:
    return sorted(
        (e for e in run.events_of(EventKind.RESTART) if isinstance(e.get("t"), (int, float))),
        key=lambda e: e["t"],
    )


def _load_window(run: store.RunData) -> tuple[float, float]:
    start = next((e.get("t") for e in run.events_of(EventKind.LOAD_START)), None)
    end = next((e.get("ended_at") or e.get("t") for e in run.events_of(EventKind.LOAD_END)), None)
    if start is None or end is None:
        return math.nan, math.nan
    return float(start), float(end)


def succeeded(requests: dict[str, list[Any]]) -> np.ndarray:
    """Per request of ``requests.csv``: True when a 2xx/3xx response came back."""
    statuses = np.asarray(requests.get("status", []), dtype=float)
    errors = np.array([not e for e in requests.get("error", [])], dtype=bool)
    if len(errors) != len(statuses):
        errors = np.ones(len(statuses), dtype=bool)
    with np.errstate(invalid="ignore"):
        return (statuses >= 200) & (statuses < 400) & errors


def _serving_since(run: store.RunData) -> dict[int, float]:
    """When each generation started taking work: ``healthy`` (service mode), else ``ready``."""
    since = {
        int(e.get("generation", 0)): float(e["t"])
        for e in run.events_of(EventKind.HEALTHY)
        if e.get("t") is not None
    }
    for e in run.events_of(EventKind.READY):
        if e.get("t") is not None:
            since.setdefault(int(e.get("generation", 0)), float(e["t"]))
    return since


def generation_slopes(run: store.RunData | str | os.PathLike[str]) -> list[GenerationSlope]:
    """Each generation's RSS slope, over its samples from healthy until its restart was triggered
    (or the load ended); generations with fewer than 5 such samples are left out."""
    run = _run(run)
    t = np.asarray(run.columns.get("t", []), dtype=float)
    if not len(t):
        return []
    rss = np.asarray(run.columns.get("rss", []), dtype=float)
    steps = np.asarray(run.columns.get("steps", [math.nan] * len(t)), dtype=float)
    gen = np.nan_to_num(np.asarray(run.columns.get("generation", [0.0] * len(t)), dtype=float))
    healthy = _serving_since(run)
    triggered = {int(e.get("generation", 0)): float(e["t"]) for e in _restarts(run)}
    slopes: list[GenerationSlope] = []
    _, load_end = _load_window(run)
    for g in np.unique(gen):
        number = int(g)
        lo = healthy.get(number, -math.inf)
        # Until its restart, or until the load stopped (a service without requests does not grow).
        hi = min(triggered.get(number, math.inf), load_end if math.isfinite(load_end) else math.inf)
        # Strictly before the trigger: the row written at the trigger and the final one are the
        # peak, not the trend.
        rows = (gen == g) & (t >= lo) & (t < hi) & np.isfinite(rss) & np.isfinite(steps)
        if rows.sum() < 5:
            continue
        growth = estimate("rss", t[rows], steps[rows], rss[rows], options=_SLOPE_OPTIONS)
        peak_rows = (gen == g) & np.isfinite(rss)
        slopes.append(
            GenerationSlope(
                generation=number,
                t_start=float(t[rows][0]),
                t_end=float(t[rows][-1]),
                n_samples=int(rows.sum()),
                rss_start=float(rss[rows][0]),
                rss_peak=float(np.max(rss[peak_rows])),
                bytes_per_s=growth.per_s,
                bytes_per_step=growth.per_step,
                baseline=growth.baseline,
            )
        )
    return slopes


def _restart_rate(run: store.RunData, during: list[float], load_s: float) -> tuple[float, float]:
    """Mean time between the memory restarts ``during`` the load, and restarts per hour (from
    that interval, else from the count over the load or the run)."""
    intervals = list(np.diff(during)) if len(during) >= 2 else []
    interval = _mean([float(x) for x in intervals])
    if math.isfinite(interval) and interval > 0:
        return interval, 3600.0 / interval
    span = (
        load_s
        if math.isfinite(load_s) and load_s > 0
        else float(run.meta.get("duration_s") or math.nan)
    )
    per_hour = (
        3600.0 * len(during) / span if span and math.isfinite(span) and span > 0 else math.nan
    )
    return interval, per_hour


def _failures_by_error(requests: dict[str, list[Any]], ok_mask: np.ndarray) -> dict[str, int]:
    """Failed requests counted by their error (``http_503`` for an HTTP error status)."""
    by_error: dict[str, int] = {}
    for status, error, good in zip(
        requests.get("status", []), requests.get("error", []), ok_mask, strict=False
    ):
        if good:
            continue
        key = error or (f"http_{int(status)}" if math.isfinite(status) else "unknown")
        by_error[key] = by_error.get(key, 0) + 1
    return by_error


def _leak_rates(slopes: list[GenerationSlope]) -> tuple[float, float]:
    """The underlying leak per second and per step: the median of the generations' slopes."""
    good = [s for s in slopes if math.isfinite(s.bytes_per_s)]
    per_s = float(np.median([s.bytes_per_s for s in good])) if good else math.nan
    per_step = (
        float(np.nanmedian([s.bytes_per_step for s in good]))
        if good and any(math.isfinite(s.bytes_per_step) for s in good)
        else math.nan
    )
    return per_s, per_step


def _lifetimes(run: store.RunData, memory: list[dict[str, Any]]) -> list[float]:
    """How long each generation restarted at the memory limit served before its restart."""
    healthy = _serving_since(run)
    return [
        float(e["t"]) - healthy[int(e["generation"])]
        for e in memory
        if int(e.get("generation", 0)) in healthy
    ]


def _overshoots(memory: list[dict[str, Any]], limit: float) -> list[float]:
    """How far above ``limit`` each memory restart found the process."""
    return [
        float(e["rss"]) - limit for e in memory if e.get("rss") is not None and math.isfinite(limit)
    ]


def _mean_restart_time(memory: list[dict[str, Any]]) -> float:
    """The mean time from a memory restart until the new generation was healthy."""
    return _mean(
        [float(e["healthy_after_s"]) for e in memory if e.get("healthy_after_s") is not None]
    )


def _generation_count(run: store.RunData) -> int:
    """The run's process generations: its counter, else the generations its rows name."""
    return int(
        (run.meta.get("counters") or {}).get("generations")
        or len(np.unique(run.columns.get("generation", [0])))
    )


def analyze_recycling(run: store.RunData | str | os.PathLike[str]) -> RecyclingMetrics:
    """The measured cost of recycling in a run (any run: one without restarts gives zeros)."""
    run = _run(run)
    policy = run.config.recycle or RecycleSettings()
    limit = float(policy.limit or math.nan)
    restarts = _restarts(run)
    memory = [e for e in restarts if e.get("reason") == "memory"]
    crash = [e for e in restarts if e.get("reason") == "crash"]
    times = [float(e["t"]) for e in memory]
    load_start, load_end = _load_window(run)
    load_s = load_end - load_start
    # Only restarts that happened while the load ran count against it.
    interval, per_hour = _restart_rate(
        run, [tt for tt in times if not math.isfinite(load_end) or tt < load_end], load_s
    )
    lived = _lifetimes(run, memory)
    overshoot = _overshoots(memory, limit)
    ok_mask = succeeded(run.requests)
    n, ok = len(ok_mask), int(ok_mask.sum())
    by_error = _failures_by_error(run.requests, ok_mask)
    n_restarts = len(memory) + len(crash)
    rate = float(run.config.rate or math.nan)
    connection_failures = sum(v for k, v in by_error.items() if k in CONNECTION_ERRORS)
    failed_per_restart = connection_failures / n_restarts if n_restarts else math.nan
    slopes = generation_slopes(run)
    leak_per_s, leak_per_step = _leak_rates(slopes)
    return RecyclingMetrics(
        limit=limit,
        check_interval_s=float(policy.check_interval_s or math.nan),
        mode=str(policy.mode or ""),
        kill_signal=str(policy.kill_signal or ""),
        generations=_generation_count(run),
        memory_restarts=len(memory),
        crash_restarts=len(crash),
        restart_times=times,
        restart_interval_s=interval,
        restarts_per_hour=per_hour,
        restart_time_s=_mean_restart_time(memory),
        time_to_restart_s=_mean(lived),
        downtime_per_restart_s=failed_per_restart / rate
        if rate and math.isfinite(rate)
        else math.nan,
        failed_per_restart=failed_per_restart,
        overshoot_bytes=_mean(overshoot),
        max_overshoot_bytes=max(overshoot) if overshoot else math.nan,
        leak_bytes_per_s=leak_per_s,
        leak_bytes_per_step=leak_per_step,
        baseline_rss=float(np.median([s.rss_start for s in slopes])) if slopes else math.nan,
        generation_slopes=slopes,
        requests=n,
        ok=ok,
        failed=n - ok,
        failures_by_error=by_error,
        success_rate=ok / n if n else math.nan,
        throughput_rps=ok / load_s if n and load_s > 0 else math.nan,
        offered_rps=n / load_s if n and load_s > 0 else math.nan,
        load_s=load_s,
    )


def recycling_metrics(run: store.RunData | str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`analyze_recycling` as a JSON-ready dict (NaN becomes None)."""
    return analyze_recycling(run).to_dict()


# -- prediction ------------------------------------------------------------------------------


@dataclass
class Prediction:
    """Recycling at one limit, predicted from a run without recycling."""

    limit: float
    check_interval_s: float
    restart_s: float  # from the trigger until the new process takes the load
    downtime_s: float  # per restart, the service refuses requests this long
    mode: str
    kill_signal: str
    lost_in_flight_per_restart: float  # requests in progress when the old process is killed
    failed_per_restart: float
    bytes_per_s: float
    bytes_per_s_ci95: tuple[float, float]
    baseline: float  # RSS of a fresh process when it starts serving
    time_to_limit_s: float  # from a fresh process to the limit
    restart_interval_s: float  # mean time between restarts
    restarts_per_hour: float
    restarts_per_hour_ci95: tuple[float, float]
    overshoot_bytes: float  # mean RSS above the limit at the restart
    max_overshoot_bytes: float  # one whole check interval late
    expected_peak: float
    downtime_fraction: float
    rate: float  # requests (steps) per second the run was driven at
    failed_per_hour: float
    success_rate: float  # the run's own success rate times the share of time up
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _restarts_per_hour_ci(
    bytes_per_s_ci95: tuple[float, float],
    baseline: float,
    limit: float,
    check_interval_s: float,
    restart_s: float,
) -> tuple[float, float]:
    """Restarts per hour at each end of the growth's interval (NaN where an end is unknown)."""

    def per_hour(bytes_per_s: float) -> float:
        if not math.isfinite(bytes_per_s):
            return math.nan
        grow = projection.time_to_limit(baseline, limit, bytes_per_s)
        return projection.restarts_per_hour(
            projection.restart_cycle_s(grow, check_interval_s, restart_s)
        )

    lo, hi = bytes_per_s_ci95
    return per_hour(lo), per_hour(hi)


def _prediction_notes(baseline: float, limit: float, time_to_limit_s: float) -> list[str]:
    """What makes a prediction degenerate: a fresh process over the limit, or no growth."""
    notes: list[str] = []
    if baseline >= limit:
        notes.append(
            "a fresh process is already above the limit: it would be restarted at every check"
        )
    if not math.isfinite(time_to_limit_s):
        notes.append("memory does not grow: the limit is never reached")
    return notes


def predict(
    bytes_per_s: float,
    baseline: float,
    limit: float,
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S,
    restart_s: float = DEFAULT_RESTART_S,
    downtime_s: float | None = None,
    lost_per_restart: float = 0.0,
    rate: float = math.nan,
    base_success: float = 1.0,
    mode: str = DEFAULT_MODE,
    kill_signal: str = PM2_KILL_SIGNAL,
    bytes_per_s_ci95: tuple[float, float] = (math.nan, math.nan),
) -> Prediction:
    """Recycling at ``limit`` for a process that starts serving at ``baseline`` bytes and grows
    ``bytes_per_s``; checks every ``check_interval_s``; a restart takes ``restart_s`` until the new
    process serves, ``downtime_s`` of it (default: all) refusing requests, and loses
    ``lost_per_restart`` requests that were in progress when the old process was killed."""
    downtime = restart_s if downtime_s is None else downtime_s
    proj = projection.project_recycling(bytes_per_s, baseline, limit, check_interval_s, restart_s)
    cycle = proj.cycle_s
    per_hour = proj.restarts_per_hour
    ci = _restarts_per_hour_ci(bytes_per_s_ci95, baseline, limit, check_interval_s, restart_s)
    down_fraction = (
        0.0 if not math.isfinite(cycle) else min(1.0, downtime / cycle) if cycle > 0 else 1.0
    )
    if math.isfinite(rate) and rate > 0:
        failed_per_restart = rate * downtime + lost_per_restart
        failed_per_hour = failed_per_restart * per_hour if math.isfinite(per_hour) else math.nan
        success = base_success * max(0.0, 1.0 - failed_per_hour / (rate * 3600))
    else:
        failed_per_restart = failed_per_hour = math.nan
        success = base_success * (1.0 - down_fraction)
    return Prediction(
        limit=limit,
        check_interval_s=check_interval_s,
        restart_s=restart_s,
        downtime_s=downtime,
        mode=mode,
        kill_signal=kill_signal,
        lost_in_flight_per_restart=lost_per_restart,
        failed_per_restart=failed_per_restart,
        bytes_per_s=bytes_per_s,
        bytes_per_s_ci95=bytes_per_s_ci95,
        baseline=baseline,
        time_to_limit_s=proj.time_to_limit_s,
        restart_interval_s=cycle,
        restarts_per_hour=per_hour,
        restarts_per_hour_ci95=ci,
        overshoot_bytes=proj.overshoot_bytes,
        max_overshoot_bytes=proj.max_overshoot_bytes,
        expected_peak=proj.expected_peak,
        downtime_fraction=down_fraction,
        rate=rate,
        failed_per_hour=failed_per_hour,
        success_rate=success,
        notes=_prediction_notes(baseline, limit, proj.time_to_limit_s),
    )


@dataclass
class RunTimings:
    """How long a process of this run took to start and to stop, as measured."""

    startup_s: float  # spawn until healthy (service) or ready (steps)
    # stop request (end of the load, nothing in flight) until the process was gone; NaN when not
    # measured
    stop_s: float
    serving_from: float  # when generation 0 started taking work (seconds since the start)
    latency_mean_s: float  # of the successful requests (0 without requests)
    latency_p99_s: float


def run_timings(run: store.RunData) -> RunTimings:
    def first(kind: str, generation: int | None = 0, after: float = -math.inf) -> float:
        for e in run.events_of(kind):
            t = e.get("t")
            if (
                (generation is None or int(e.get("generation", 0)) == generation)
                and isinstance(t, (int, float))
                and t >= after
            ):
                return float(t)
        return math.nan

    start = first(EventKind.START)
    serving = first(EventKind.HEALTHY)
    if math.isnan(serving):
        serving = first(EventKind.READY)
    load_end = first(EventKind.LOAD_END, None)
    # The generation serving when the load ended is the one stopped with nothing in flight.
    gone = first(EventKind.EXIT, None, load_end)
    if math.isnan(gone):
        gone = first(EventKind.DONE, None, load_end)
    stop = (
        gone - load_end
        if math.isfinite(load_end) and math.isfinite(gone) and gone >= load_end
        else math.nan
    )
    latency = np.asarray(run.requests.get("latency_s", []), dtype=float)[succeeded(run.requests)]
    return RunTimings(
        startup_s=serving - (start if math.isfinite(start) else 0.0),
        stop_s=stop,
        serving_from=serving,
        latency_mean_s=float(latency.mean()) if len(latency) else 0.0,
        latency_p99_s=float(np.quantile(latency, 0.99)) if len(latency) else 0.0,
    )


def _own_success_rate(run: store.RunData) -> float:
    """The share of requests that succeeded, not counting the ones a restart made fail
    (connection-level failures of a recycled run): the service's success rate when it is up."""
    ok = succeeded(run.requests)
    if not len(ok):
        return 1.0
    if _restarts(run):
        errors = np.array(
            [e in CONNECTION_ERRORS for e in run.requests.get("error", [])], dtype=bool
        )
        ok = ok | errors
    return float(ok.mean())


def _measured_restart(
    timings: RunTimings, mode: str, graceful: bool, kill_timeout_s: float
) -> tuple[float, str]:
    """The restart time the run measured (start-up, plus the graceful stop in restart mode), and
    a note saying how it was found; the default when the run does not show its start-up."""
    if not math.isfinite(timings.startup_s):
        return (
            DEFAULT_RESTART_S,
            f"restart time not measured in the run: assumed {DEFAULT_RESTART_S:g}s",
        )
    startup = timings.startup_s
    exit_s = timings.stop_s if math.isfinite(timings.stop_s) else 0.0
    stop = min(timings.latency_p99_s + exit_s, kill_timeout_s) if graceful else 0.0
    note = f"restart time measured in the run: start-up {startup:.2f}s" + (
        (
            f" + graceful stop {stop:.2f}s (slowest requests {timings.latency_p99_s:.2f}s, exit "
            f"{exit_s:.2f}s)"
        )
        if mode == "restart" and graceful
        else ""
    )
    return startup + (stop if mode == "restart" else 0.0), note


def _rss_growth(run: store.RunData, analysis: Any) -> tuple[Any, Growth]:
    """The run's analysis (``analysis``, else computed) and its RSS growth, which must be
    measured."""
    from leaklab.analysis import analyze

    a = analysis if analysis is not None else analyze(run)
    g = a.growth.get("rss")
    if g is None or not math.isfinite(g.per_s):
        raise ValueError(
            f"{run.path.name}: no RSS growth could be measured; run the scenario longer"
        )
    return a, g


def _serving_baseline(g: Growth, timings: RunTimings) -> float:
    """The fitted line, taken back to the moment a fresh process starts serving."""
    serving_from = timings.serving_from if math.isfinite(timings.serving_from) else g.t_start
    return g.baseline - g.per_s * (g.t_start - serving_from)


def _projected_rate(a: Any, bytes_per_s: float) -> tuple[float, str | None]:
    """The growth to project, and the note when the fitted slope is not projected."""
    judged = a.signal_verdicts.get("rss") if hasattr(a, "signal_verdicts") else None
    if judged is not None and judged.label in (Label.NO_LEAK, Label.PLATEAU) and bytes_per_s > 0:
        # A slope the analysis does not call growth (a single allocator step, a bound) projects no
        # restarts.
        return 0.0, (
            f"RSS is judged {judged.label}: its slope ({bytes_per_s:,.0f} B/s) is not projected"
        )
    return bytes_per_s, None


def predict_from_run(
    run: store.RunData | str | os.PathLike[str],
    limit: float,
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S,
    restart_s: float | None = None,
    mode: str = DEFAULT_MODE,
    kill_signal: str = PM2_KILL_SIGNAL,
    kill_timeout_s: float = PM2_KILL_TIMEOUT_S,
    analysis: Any = None,
) -> Prediction:
    """Predict recycling at ``limit`` from a run (best: one without recycling).

    The leak rate and baseline come from :func:`leaklab.analysis.analyze` (RSS growth;
    pairs within one generation, so a recycled run works too). The restart time
    defaults to what the run measured:

    * start-up: from spawning the child until it was healthy;
    * stop (``mode="restart"`` only: the new process starts once the old one is gone):
      a graceful stop waits for the requests in flight (the run's 99th-percentile
      latency) and then for the process to exit (as it did at the end of the run),
      at most ``kill_timeout_s``; ``kill_signal="SIGKILL"`` takes no time but loses
      the requests in flight (rate x mean latency, Little's law).

    With ``mode="reload"`` the old process serves until the new one is healthy: no
    downtime, and with SIGKILL only the requests in flight are lost.
    """
    run = _run(run)
    a, g = _rss_growth(run, analysis)
    timings = run_timings(run)
    rate = float(run.config.rate or math.nan)
    graceful = kill_signal.upper() not in ("SIGKILL", "KILL", "9")
    notes: list[str] = []
    baseline = _serving_baseline(g, timings)
    if restart_s is None:
        restart_s, note = _measured_restart(timings, mode, graceful, kill_timeout_s)
        notes.append(note)
    lost = 0.0 if graceful or not math.isfinite(rate) else rate * timings.latency_mean_s
    if _restarts(run):
        notes.append("the run was itself recycled: its growth is measured within each generation")
    base_success = _own_success_rate(run)
    bytes_per_s, unprojected = _projected_rate(a, g.per_s)
    if unprojected:
        notes.append(unprojected)
    prediction = predict(
        bytes_per_s,
        baseline,
        float(limit),
        check_interval_s,
        restart_s,
        downtime_s=0.0 if mode == "reload" else restart_s,
        lost_per_restart=lost,
        rate=rate,
        base_success=base_success,
        mode=mode,
        kill_signal=kill_signal.upper(),
        bytes_per_s_ci95=(float(g.ci95[0]), float(g.ci95[1])),
    )
    prediction.notes[:0] = notes
    return prediction


def compare(
    recycled: store.RunData | str | os.PathLike[str],
    baseline_run: store.RunData | str | os.PathLike[str],
) -> dict[str, Any]:
    """Predicted (from ``baseline_run``, without recycling) next to measured (``recycled``), with
    ratios measured / predicted. The prediction uses the recycled run's own policy."""
    recycled = _run(recycled)
    measured = analyze_recycling(recycled)
    policy = recycled.config.recycle or RecycleSettings()
    predicted = predict_from_run(
        baseline_run,
        measured.limit,
        measured.check_interval_s,
        mode=measured.mode or DEFAULT_MODE,
        kill_signal=measured.kill_signal or PM2_KILL_SIGNAL,
        kill_timeout_s=float(policy.kill_timeout_s or PM2_KILL_TIMEOUT_S),
    )

    def ratio(m: float, p: float) -> float:
        return m / p if math.isfinite(m) and math.isfinite(p) and p else math.nan

    rows = {
        "restarts_per_hour": (measured.restarts_per_hour, predicted.restarts_per_hour),
        "restart_interval_s": (measured.restart_interval_s, predicted.restart_interval_s),
        "time_to_restart_s": (
            measured.time_to_restart_s,
            predicted.time_to_limit_s
            + projection.expected_detection_delay(predicted.check_interval_s),
        ),
        "restart_time_s": (measured.restart_time_s, predicted.restart_s),
        "overshoot_bytes": (measured.overshoot_bytes, predicted.overshoot_bytes),
        "leak_bytes_per_s": (measured.leak_bytes_per_s, predicted.bytes_per_s),
        "baseline_rss": (measured.baseline_rss, predicted.baseline),
        "success_rate": (measured.success_rate, predicted.success_rate),
        "failed_per_restart": (measured.failed_per_restart, predicted.failed_per_restart),
    }
    return _clean(
        {
            name: {"measured": m, "predicted": p, "ratio": ratio(m, p)}
            for name, (m, p) in rows.items()
        }
    )
