"""Presentation of numbers the analysis computed: formatting only, never arithmetic on data.

Sizes and durations go through :mod:`leaklab.units`; this adds the few shapes a
report needs on top (MB/h with three significant figures, %/h, intervals).
"""

from __future__ import annotations

import math

from leaklab import units
from leaklab.analysis.growth import Growth
from leaklab.analysis.verdict import fmt_rate

NA = "n/a"


def finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def sig(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """``sig(8013.55) == '8,010'``, ``sig(0.01234) == '0.0123'``: significant figures, no exponent."""
    if not finite(value):
        return NA
    assert value is not None
    sign = "+" if signed and value > 0 else ""
    if value == 0:
        return "0"
    places = digits - 1 - int(math.floor(math.log10(abs(value))))
    rounded = round(value, places)
    text = f"{rounded:,.{max(0, places)}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return sign + text


def mb_per_hour(growth: Growth) -> str:
    """``8,010 MB/h``; allocated blocks read as blocks/h."""
    if growth.unit == "blocks":
        return f"{sig(growth.bytes_per_s * 3600 if finite(growth.bytes_per_s) else None)} blocks/h"
    return f"{sig(growth.mb_per_hour)} MB/h"


def pct_per_hour(growth: Growth) -> str:
    value = growth.pct_per_hour
    if not finite(value):
        return NA
    return f"{sig(value, signed=True)}%/h"


def per_step(growth: Growth) -> str:
    return fmt_rate(growth, growth.bytes_per_step, "step")


def ci_per_step(growth: Growth) -> str:
    lo, hi = growth.ci95_per_step
    if finite(lo) and finite(hi):
        return f"{fmt_rate(growth, lo, 'step')} to {fmt_rate(growth, hi, 'step')}"
    lo, hi = growth.ci95
    if finite(lo) and finite(hi):
        return f"{fmt_rate(growth, lo, 's')} to {fmt_rate(growth, hi, 's')}"
    return NA


def size(value: float | None) -> str:
    return units.format_size(value) if finite(value) else NA


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NA
    return units.format_duration(seconds)


def percent(fraction: float | None, digits: int = 4) -> str:
    """``percent(0.9987) == '99.87%'``."""
    if not finite(fraction):
        return NA
    assert fraction is not None
    return f"{sig(fraction * 100, digits)}%"


def per_hour_count(value: float | None) -> str:
    return f"{sig(value)}/h" if finite(value) else NA


def rate_per_s(value: float | None, what: str = "req/s") -> str:
    return f"{sig(value)} {what}" if finite(value) else NA


def rate_mb_per_hour(bytes_per_s: float | None) -> str:
    """Bytes per second shown as MB/h, as growth is everywhere in a report."""
    if not finite(bytes_per_s):
        return NA
    assert bytes_per_s is not None
    return f"{sig(bytes_per_s * 3600 / 1e6)} MB/h"


def count(value: float | None) -> str:
    return sig(value) if finite(value) else NA
