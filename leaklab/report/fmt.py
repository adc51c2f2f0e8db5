"""A signal's growth as the report shows it: thin adapters from :class:`Growth` to
:mod:`leaklab.units`, where every number is formatted."""

from __future__ import annotations

from leaklab import units
from leaklab.analysis.growth import Growth


def mb_per_hour(growth: Growth) -> str:
    """``8,010 MB/h``; allocated blocks read as blocks/h."""
    return units.format_growth_per_hour(growth.per_s, growth.unit)


def pct_per_hour(growth: Growth) -> str:
    return units.format_pct_per_hour(growth.pct_per_hour)


def per_step(growth: Growth) -> str:
    return units.format_growth(growth.per_step, growth.unit, "step")


def ci_per_step(growth: Growth) -> str:
    """The 95% interval per step, or per second where steps are unknown."""
    if units.finite(growth.ci95_per_step[0]) and units.finite(growth.ci95_per_step[1]):
        return units.format_ci(
            growth.ci95_per_step, lambda v: units.format_growth(v, growth.unit, "step")
        )
    return units.format_ci(growth.ci95, lambda v: units.format_growth(v, growth.unit, "s"))
