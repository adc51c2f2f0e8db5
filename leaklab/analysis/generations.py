"""Process generations of a run that something restarted (leaklab's supervisor or PM2):
what each generation did, and whether memory really goes back down after a restart.

Baseline creep: a restart that does not bring memory back to where the previous
generation started means something outlives the process (a shared cache, a sidecar,
files in tmpfs, the parent's own growth) or the leak is already there at start-up.
It is its own finding: recycling cannot hide it for long.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from leaklab import store, units
from leaklab.analysis import recycling
from leaklab.kinds import EventKind

#: Creep is a finding when the baselines rise by more than this share of the first one per restart
#: and the rise's 95% interval excludes zero.
CREEP_SHARE_PER_RESTART = 0.02


@dataclass
class GenerationSummary:
    generation: int
    pid: int | None
    t_start: float
    t_end: float
    rss_start: float  # memory after the (re)start: the first sample once serving
    rss_peak: float
    bytes_per_h: float  # growth within the generation
    percent_per_h: float


@dataclass
class GenerationsReport:
    generations: list[GenerationSummary] = field(default_factory=list)
    restarts: int = 0
    restarts_per_hour: float = math.nan
    restart_interval_s: float = math.nan
    success_rate: float = math.nan
    downtime_per_restart_s: float = math.nan
    creep_bytes_per_restart: float = math.nan
    creep_low: float = math.nan  # 95% interval of the creep
    creep_high: float = math.nan
    creeps: bool = False

    def to_dict(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))

    def creep_text(self) -> str:
        """The creep per restart with its 95% interval: ``+2.1MB per restart (95% CI ...)``."""
        interval = units.format_interval(
            units.format_size(self.creep_low, signed=True),
            units.format_size(self.creep_high, signed=True),
        )
        return (
            f"{units.format_size(self.creep_bytes_per_restart, signed=True)} per restart "
            f"(95% CI {interval})"
        )


def generations_report(run: store.RunData | str | os.PathLike[str]) -> GenerationsReport:
    if not isinstance(run, store.RunData):
        run = store.read_run(run, warn=False)
    metrics = recycling.analyze_recycling(run)
    pids = {int(e.get("generation", 0)): e.get("pid") for e in run.events_of(EventKind.START)}
    summaries = [
        GenerationSummary(
            s.generation,
            pids.get(s.generation),
            s.t_start,
            s.t_end,
            s.rss_start,
            s.rss_peak,
            s.bytes_per_s * 3600,
            100 * s.bytes_per_s * 3600 / s.rss_start if s.rss_start else math.nan,
        )
        for s in metrics.generation_slopes
    ]
    restarts = len(run.events_of(EventKind.RESTART))
    report = GenerationsReport(
        summaries,
        restarts,
        metrics.restarts_per_hour,
        metrics.restart_interval_s,
        metrics.success_rate,
        metrics.downtime_per_restart_s,
    )
    starts = [(g.generation, g.rss_start) for g in summaries]
    if len(starts) >= 3:
        # Imported only for a run with restarts to compare: it costs most of a second.
        from scipy import stats

        x = np.array([s[0] for s in starts], dtype=float)
        y = np.array([s[1] for s in starts], dtype=float)
        slope, _, low, high = stats.theilslopes(y, x)
        report.creep_bytes_per_restart, report.creep_low, report.creep_high = (
            float(slope),
            float(low),
            float(high),
        )
        report.creeps = bool(low > 0 and slope > CREEP_SHARE_PER_RESTART * y[0])
    return report


def format_report(report: GenerationsReport) -> str:
    lines = ["gen  pid       from      to   after restart    peak   growth within"]
    for g in report.generations:
        lines.append(
            f"{g.generation:>3}  {g.pid or '':<8} {g.t_start:>6.1f}s {g.t_end:>6.1f}s  "
            f"{units.format_size(g.rss_start):>12}  {units.format_size(g.rss_peak):>8}  "
            f"{units.format_growth(g.bytes_per_h, 'bytes', 'h', signed=True)} "
            f"({g.percent_per_h:+,.0f}%/h)"
        )
    if report.restarts:
        lines.append(
            f"restarts  {report.restarts} ({report.restarts_per_hour:,.0f}/h; one every "
            f"{units.format_duration(report.restart_interval_s)})"
        )
    if math.isfinite(report.success_rate):
        lines.append(
            f"health    success {report.success_rate:.1%}"
            + (
                f", {report.downtime_per_restart_s:.2f}s down per restart"
                if math.isfinite(report.downtime_per_restart_s)
                else ""
            )
        )
    if math.isfinite(report.creep_bytes_per_restart):
        verdict = (
            "memory does not go back down after a restart: baseline creep"
            if report.creeps
            else "no baseline creep"
        )
        lines.append(f"baseline  {report.creep_text()}: {verdict}")
    return "\n".join(lines)
