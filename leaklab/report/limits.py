"""The memory limit a report measures against, and recycling at that limit predicted
from each run's growth (:mod:`leaklab.analysis.recycling`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leaklab import pm2_defaults, units
from leaklab.analysis import projection, recycling
from leaklab.analysis.growth import Growth
from leaklab.report.subject import ReportRun


@dataclass(frozen=True)
class MemoryLimit:
    """The memory limit that "time to limit" is measured against, and where it came from."""

    bytes: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "source": self.source}


def limits_for(runs: Sequence[ReportRun], override: int | None = None) -> list[MemoryLimit]:
    """One limit per run: ``--limit`` if given, else the recycling limit of the first recycled
    run (the same for every run, so before and after meet the same limit), else each run's
    own RSS cap."""
    if override is not None:
        return [MemoryLimit(float(override), "--limit") for _ in runs]
    recycled = next((r for r in runs if r.recycle_policy), None)
    if recycled is not None:
        assert recycled.recycle_policy is not None
        source = (
            "the run's recycling limit"
            if len(runs) == 1
            else f"the recycling limit of {recycled.label}"
        )
        return [MemoryLimit(float(recycled.recycle_policy.limit or 0), source) for _ in runs]
    out = []
    for r in runs:
        cap = r.run.config.max_rss
        out.append(
            MemoryLimit(float(cap), "the run's --max-rss cap")
            if cap
            else MemoryLimit(None, "none recorded")
        )
    return out


def time_to_limit(g: Growth | None, limit: MemoryLimit) -> float:
    """Seconds from a fresh process (the fitted baseline) to the limit at the fitted rate."""
    if g is None or limit.bytes is None or not units.finite(g.baseline):
        return math.nan
    return projection.time_to_limit(g.baseline, limit.bytes, g.per_s)


def recycling_plan(runs: Sequence[ReportRun], override: int | None = None) -> dict[str, Any] | None:
    """The recycling that predictions assume: the first recycled run's policy (``--limit``
    replacing its limit), or ``--limit`` with PM2's defaults; None without either."""
    policy = next((r.recycle_policy for r in runs if r.recycle_policy), None)
    if policy is None and override is None:
        return None
    plan = {
        "check_interval_s": pm2_defaults.PM2_CHECK_INTERVAL_S,
        "mode": pm2_defaults.DEFAULT_MODE,
        "kill_signal": pm2_defaults.PM2_KILL_SIGNAL,
        "kill_timeout_s": pm2_defaults.PM2_KILL_TIMEOUT_S,
        **(policy.to_dict() if policy else {}),
    }
    if override is not None:
        plan["limit"] = override
    return plan


def predict(r: ReportRun, plan: dict[str, Any] | None) -> recycling.Prediction | None:
    """Recycling under ``plan`` predicted from ``r``'s growth (None when it has none to go on)."""
    if plan is None:
        return None
    try:
        return recycling.predict_from_run(
            r.run,
            float(plan["limit"]),
            float(plan["check_interval_s"]),
            mode=str(plan["mode"]),
            kill_signal=str(plan["kill_signal"]),
            kill_timeout_s=float(plan["kill_timeout_s"]),
            analysis=r.analysis,
        )
    except ValueError:
        return None
