"""Sizes, durations, rates and growth limits: parsed and formatted in one place.

Conventions (documented in the README):

* ``KB``/``MB``/``GB``/``TB`` are decimal (10**3 ...), ``KiB``/``MiB``/``GiB`` are
  binary, and a bare ``K``/``M``/``G`` is binary as in PM2's ``max_memory_restart``
  ("150M") and ``ulimit``. A bare number is bytes.
* Durations: ``500ms``, ``90s``, ``15m``, ``2h``, ``1d``, combinations (``1h30m``),
  a bare number is seconds.
* Rates: ``200/s``, ``37/s``, ``600/min``, ``3600/h``; a bare number is per second.
* Growth limits: ``0.5MB/h``, ``2KB/s``, ``16B/step``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass

SIZE_FORMS = (
    "bytes (4096), decimal units (500KB, 150MB, 1.5GB), binary units (150MiB, 2GiB) or PM2-style "
    "(150M, 1G)"
)
DURATION_FORMS = "seconds (90), or a number with a unit: 500ms, 90s, 15m, 2h, 1d, 1h30m"
RATE_FORMS = "per second (200 or 200/s), or per minute/hour (600/min, 3600/h)"
STEPS_OR_DURATION_FORMS = "a step count (1000) or a duration (10s, 2m)"
GROWTH_FORMS = "a size per time or per step: 0.5MB/h, 2KB/s, 16B/step"

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DURATION_UNITS = {
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PER_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0}

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SIZE_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]*)\s*$")
_DURATION_PART_RE = re.compile(rf"\s*({_NUMBER})\s*(ms|sec|min|s|m|h|d)?", re.IGNORECASE)


class UnitError(ValueError):
    """A value that does not parse; the message names the accepted forms."""


def parse_size(text: str | int | float) -> int:
    """Bytes in ``text``: ``parse_size("150MB") == 150_000_000``,
    ``parse_size("150M") == 157_286_400``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise UnitError(f"size must be a non-negative number of bytes, got {text!r}")
        return int(text)
    match = _SIZE_RE.match(str(text))
    unit = match.group(3).lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise UnitError(f"not a size: {text!r}; accepted forms: {SIZE_FORMS}")
    return int(round(float(match.group(1)) * _SIZE_UNITS[unit]))


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``: ``parse_duration("1h30m") == 5400.0``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise UnitError(f"duration must be non-negative, got {text!r}")
        return float(text)
    raw = str(text).strip()
    total, pos = 0.0, 0
    while pos < len(raw):
        match = _DURATION_PART_RE.match(raw, pos)
        if not match or match.end() == pos:
            raise UnitError(f"not a duration: {text!r}; accepted forms: {DURATION_FORMS}")
        unit = (match.group(3) or "s").lower()
        if match.group(3) is None and match.end() != len(raw):
            raise UnitError(f"not a duration: {text!r}; accepted forms: {DURATION_FORMS}")
        total += float(match.group(1)) * _DURATION_UNITS[unit]
        pos = match.end()
    if not raw:
        raise UnitError(f"not a duration: {text!r}; accepted forms: {DURATION_FORMS}")
    return total


def parse_rate(text: str | int | float) -> float:
    """Events per second in ``text``: ``parse_rate("37/s") == 37.0``,
    ``parse_rate("600/min") == 10.0``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, per = float(text), 1.0
    else:
        raw = str(text).strip().lower()
        count, _, unit = raw.partition("/")
        try:
            value = float(count)
        except ValueError:
            raise UnitError(f"not a rate: {text!r}; accepted forms: {RATE_FORMS}") from None
        per = _PER_UNITS.get(unit or "s")
        if per is None:
            raise UnitError(f"not a rate: {text!r}; accepted forms: {RATE_FORMS}")
    if value <= 0 or not math.isfinite(value):
        raise UnitError(f"rate must be positive, got {text!r}; accepted forms: {RATE_FORMS}")
    return value / per


@dataclass(frozen=True)
class StepsOrDuration:
    """Either a number of steps or a number of seconds (exactly one is set)."""

    steps: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return (
            f"{self.steps} steps"
            if self.steps is not None
            else format_duration(self.seconds or 0.0)
        )


def parse_steps_or_duration(text: str | int) -> StepsOrDuration:
    """``"1000"`` is 1000 steps, ``"10s"`` is ten seconds."""
    raw = str(text).strip()
    if re.fullmatch(r"\d+", raw):
        return StepsOrDuration(steps=int(raw))
    try:
        return StepsOrDuration(seconds=parse_duration(raw))
    except UnitError:
        raise UnitError(
            f"not a step count or duration: {text!r}; accepted forms: {STEPS_OR_DURATION_FORMS}"
        ) from None


@dataclass(frozen=True)
class GrowthLimit:
    """A growth threshold: ``bytes_per_s`` or ``bytes_per_step`` (exactly one is set)."""

    bytes_per_s: float | None = None
    bytes_per_step: float | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text


def parse_growth(text: str) -> GrowthLimit:
    """``"0.5MB/h"`` -> 138.9 bytes/s; ``"16B/step"`` -> 16 bytes/step."""
    raw = str(text).strip()
    size, sep, per = raw.rpartition("/")
    if not sep:
        raise UnitError(f"not a growth rate: {text!r}; accepted forms: {GROWTH_FORMS}")
    try:
        amount = parse_size(size)
    except UnitError:
        raise UnitError(f"not a growth rate: {text!r}; accepted forms: {GROWTH_FORMS}") from None
    per = per.strip().lower()
    if per in ("step", "call", "request", "req"):
        return GrowthLimit(bytes_per_step=float(amount), text=raw)
    if per in _PER_UNITS:
        return GrowthLimit(bytes_per_s=amount / _PER_UNITS[per], text=raw)
    raise UnitError(f"not a growth rate: {text!r}; accepted forms: {GROWTH_FORMS}")


# -- formatting: every number a text output shows goes through these ------------------------

NA = "n/a"


def finite(value: object) -> bool:
    """A real, finite number (not None, NaN or infinite)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def sig(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """``sig(8013.55) == '8,010'``, ``sig(0.01234) == '0.0123'``: significant figures, no
    exponent."""
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


def format_count(value: float | None, signed: bool = False) -> str:
    """A count with three significant figures: ``format_count(1234.5) == '1.23e+03'`` stays
    short, ``format_count(160.2, signed=True) == '+160'``; zero is never signed."""
    if not finite(value):
        return NA
    assert value is not None
    return ("+" if signed and value > 0 else "") + f"{value:,.3g}"


def format_size(n: float | None, signed: bool = False) -> str:
    """Decimal units, three significant figures: ``format_size(2_200) == '2.2 KB'``."""
    if not finite(n):
        return NA
    assert n is not None
    sign = "-" if n < 0 else ("+" if signed and n > 0 else "")
    value = abs(float(n))
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return f"{sign}{value:.0f} B"
            return f"{sign}{value:.3g} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_amount(value: float | None, unit: str, signed: bool = False) -> str:
    """A quantity of a signal's unit: a size for ``"bytes"``, a bare count for ``"blocks"``."""
    return format_count(value, signed) if unit == "blocks" else format_size(value, signed)


def format_growth(value: float | None, unit: str, per: str = "step", signed: bool = False) -> str:
    """Growth of a signal per ``per`` (``step``, ``s``, ``h``): ``1.2 KB/step``, ``+3 blocks/s``."""
    if not finite(value):
        return NA
    amount = format_amount(value, unit, signed)
    return f"{amount} blocks/{per}" if unit == "blocks" else f"{amount}/{per}"


def format_growth_per_hour(per_s: float | None, unit: str) -> str:
    """Growth per second shown per hour, significant figures without exponent:
    ``8,010 MB/h`` (bytes, in MB) or ``21,300,000 blocks/h``."""
    per_hour = per_s * 3600 if finite(per_s) else None  # type: ignore[operator]
    if unit == "blocks":
        return f"{sig(per_hour)} blocks/h"
    return f"{sig(per_hour / 1e6 if per_hour is not None else None)} MB/h"


def format_mb_per_hour(bytes_per_s: float | None) -> str:
    """Bytes per second as MB/h (three significant figures), as growth reads in a report;
    ``n/a`` alone when unknown."""
    return format_growth_per_hour(bytes_per_s, "bytes") if finite(bytes_per_s) else NA


def format_pct_per_hour(pct: float | None) -> str:
    """``+12.3%/h``."""
    return f"{sig(pct, signed=True)}%/h" if finite(pct) else NA


def format_interval(low: str, high: str) -> str:
    """The one way an interval reads: ``1.1 KB/step to 1.3 KB/step``."""
    return f"{low} to {high}"


def format_ci(interval: tuple[float, float], show: Callable[[float], str]) -> str:
    """An interval whose ends are both known, each end shown by ``show``; else ``n/a``."""
    low, high = interval
    if not (finite(low) and finite(high)):
        return NA
    return format_interval(show(low), show(high))


def format_duration(seconds: float | None) -> str:
    """``format_duration(5400) == '1h30m'``; below a minute, seconds with one decimal."""
    if seconds is None or math.isnan(seconds):
        return NA
    if math.isinf(seconds):
        return "never"
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{v}{u}" for v, u in parts if v]
    return "".join(shown[:2])


def format_percent(fraction: float | None, digits: int = 4) -> str:
    """``format_percent(0.9987) == '99.87%'``."""
    return f"{sig(fraction * 100, digits)}%" if finite(fraction) else NA  # type: ignore[operator]


def format_per_hour(value: float | None) -> str:
    """A count per hour: ``12.5/h``."""
    return f"{sig(value)}/h" if finite(value) else NA


def format_per_second(value: float | None, what: str = "req/s") -> str:
    """A rate with its unit spelled out: ``37 req/s``."""
    return f"{sig(value)} {what}" if finite(value) else NA
