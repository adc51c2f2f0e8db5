"""Projections from a growth rate: when memory reaches a limit, and what recycling
on a memory limit (PM2's ``max_memory_restart``) costs.

Pure arithmetic on numbers, so the recycling model can be checked against a
measured supervised run. Rates are in bytes per second; a rate that is zero or
negative never reaches the limit (``math.inf``).

The recycling model: a fresh process serves from ``baseline`` bytes and grows
linearly at ``rate``; a supervisor reads memory every ``check_interval_s`` and
restarts the process at the first check that sees it above ``limit``; a restart
keeps it out of service for ``restart_s``. The crossing falls at a uniformly
random moment between two checks, so on average it is noticed half an interval
later (at most one interval), and memory overshoots the limit by the growth in
that time.

Example (the incident this project reproduces): 578 %/h from 50 MB is
``rate = 50e6 * 5.78 / 3600`` = 80 KB/s; a 150 MB limit is crossed after
``time_to_limit(50e6, 150e6, rate)`` = 1246 s, about 21 minutes; with a 1 s check
and a 2 s restart that is 2.9 restarts per hour, down 0.16% of the time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def time_to_limit(current: float, limit: float, bytes_per_s: float) -> float:
    """Seconds until ``current`` bytes growing at ``bytes_per_s`` reach ``limit``
    (0 if already there, ``inf`` if not growing)."""
    if current >= limit:
        return 0.0
    if not math.isfinite(bytes_per_s) or bytes_per_s <= 0:
        return math.inf
    return (limit - current) / bytes_per_s


def expected_detection_delay(check_interval_s: float) -> float:
    """Mean wait between crossing the limit and the check that notices it."""
    return max(check_interval_s, 0.0) / 2


def expected_overshoot(bytes_per_s: float, check_interval_s: float) -> float:
    """Mean bytes above the limit when the restart is triggered (worst case: twice this)."""
    if not math.isfinite(bytes_per_s) or bytes_per_s <= 0:
        return 0.0
    return bytes_per_s * expected_detection_delay(check_interval_s)


def restart_cycle_s(
    time_to_limit_s: float, check_interval_s: float = 0.0, restart_s: float = 0.0
) -> float:
    """Mean seconds from one restart to the next: grow to the limit (``time_to_limit_s``
    from a fresh process), wait for the check, be down for the restart."""
    if math.isinf(time_to_limit_s):
        return math.inf
    return time_to_limit_s + expected_detection_delay(check_interval_s) + max(restart_s, 0.0)


def restarts_per_hour(cycle_s: float) -> float:
    """Mean restarts per hour with a restart every ``cycle_s`` (0 if memory never gets to the
    limit: an infinite cycle)."""
    if math.isinf(cycle_s):
        return 0.0
    if cycle_s <= 0:
        return math.inf
    return 3600.0 / cycle_s


def downtime_fraction(cycle_s: float, restart_s: float) -> float:
    """Share of wall time spent restarting, with a restart every ``cycle_s``."""
    if math.isinf(cycle_s) or cycle_s <= 0:
        return 0.0 if math.isinf(cycle_s) else 1.0
    return max(restart_s, 0.0) / cycle_s


@dataclass(frozen=True)
class RecycleProjection:
    """What recycling at a memory limit is expected to look like."""

    bytes_per_s: float
    baseline: float
    limit: float
    check_interval_s: float
    restart_s: float
    time_to_limit_s: float  # from a fresh process to the limit
    cycle_s: float  # mean time between restarts
    overshoot_bytes: float  # mean memory above the limit at the restart
    max_overshoot_bytes: float  # worst case: a full check interval late
    restarts_per_hour: float
    downtime_fraction: float

    @property
    def expected_peak(self) -> float:
        return self.limit + self.overshoot_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def project_recycling(
    bytes_per_s: float,
    baseline: float,
    limit: float,
    check_interval_s: float = 1.0,
    restart_s: float = 0.0,
) -> RecycleProjection:
    """The full recycling projection in one object."""
    grow = time_to_limit(baseline, limit, bytes_per_s)
    cycle = restart_cycle_s(grow, check_interval_s, restart_s)
    over = expected_overshoot(bytes_per_s, check_interval_s) if math.isfinite(grow) else 0.0
    return RecycleProjection(
        bytes_per_s=bytes_per_s,
        baseline=baseline,
        limit=limit,
        check_interval_s=check_interval_s,
        restart_s=restart_s,
        time_to_limit_s=grow,
        cycle_s=cycle,
        overshoot_bytes=over,
        max_overshoot_bytes=2 * over,
        restarts_per_hour=restarts_per_hour(cycle),
        downtime_fraction=downtime_fraction(cycle, restart_s),
    )


def time_to_limit_from(growth: Any, limit: float, current: float | None = None) -> float:
    """:func:`time_to_limit` for a :class:`~leaklab.analysis.Growth`, from ``current``
    (default: the last value the run measured)."""
    start = growth.last if current is None else current
    return time_to_limit(start, limit, growth.per_s)
