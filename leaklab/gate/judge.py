"""Evaluation: each limit, verdict or baseline comparison judged on the growth's 95%
confidence interval (pure functions, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leaklab import units
from leaklab.gate.config import Check, Limit
from leaklab.kinds import Verdict as Label


@dataclass
class Judgement:
    """One limit, verdict or baseline comparison, measured and decided."""

    key: str  # max_growth, max_per_step, max_blocks_per_step, verdict, baseline
    outcome: str  # "pass", "fail" or "undecided"
    text: str  # "rss +0.12 MB/h (95% CI -0.3 to 0.5) <= 0.5MB/h"
    measured: float | None = None
    ci95: tuple[float, float] | None = None
    limit: float | None = None
    signal: str | None = None
    per: str | None = None


def decide(lo: float, hi: float, limit: float) -> str:
    """``fail`` when the whole interval is above ``limit``, ``pass`` when it is at or
    below it, ``undecided`` when it straddles the limit or is missing."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undecided"
    if lo > limit:
        return "fail"
    if hi <= limit:
        return "pass"
    return "undecided"


def _fmt(value: float, unit: str, per: str, suffix: bool = True) -> str:
    """``+1.2 MB/h`` for a per-second figure (shown per hour), ``+16 B/step``,
    ``+0.05 blocks/step``; without ``suffix`` the amount alone (``+1.2 MB``, ``+0.05``)."""
    if not math.isfinite(value):
        return units.NA
    shown = "h" if per == "s" and unit != "blocks" else per
    value = value * 3600 if shown != per else value
    if abs(value) < (0.5 if unit != "blocks" else 5e-4):
        value = 0.0  # no "-0 B"
    if suffix:
        return units.format_growth(value, unit, shown, signed=True)
    return units.format_amount(value, unit, signed=True)


def _interval(lo: float, hi: float, unit: str, per: str) -> str:
    return f"95% CI {units.format_interval(_fmt(lo, unit, per, suffix=False), _fmt(hi, unit, per))}"


def _figures(growth: Any, per: str) -> tuple[float, tuple[float, float]]:
    if per == "s":
        return float(growth.per_s), (float(growth.ci95[0]), float(growth.ci95[1]))
    return float(growth.per_step), (float(growth.ci95_per_step[0]), float(growth.ci95_per_step[1]))


def judge_limit(limit: Limit, growth: Any | None) -> Judgement:
    """Compare one limit with a signal's growth (a :class:`leaklab.analysis.Growth`)."""
    if growth is None:
        hint = (
            ' (add the tracemalloc probe: probes = ["tracemalloc"])'
            if limit.signal == "traced"
            else ""
        )
        return Judgement(
            limit.key,
            "undecided",
            f"{limit.signal}: not recorded by this run{hint}",
            signal=limit.signal,
            per=limit.per,
        )
    value, (lo, hi) = _figures(growth, limit.per)
    unit = growth.unit
    outcome = decide(lo, hi, limit.value)
    sign = {"pass": "<=", "fail": ">", "undecided": "~"}[outcome]
    text = (
        f"{limit.signal} {_fmt(value, unit, limit.per)} ({_interval(lo, hi, unit, limit.per)}) "
        f"{sign} {limit.key} {limit.text}"
    )
    if outcome == "undecided":
        text += (
            " (interval straddles the limit)"
            if math.isfinite(lo)
            else " (too few samples for an interval)"
        )
    return Judgement(
        limit.key,
        outcome,
        text,
        finite_or_none(value),
        (lo, hi),
        limit.value,
        limit.signal,
        limit.per,
    )


def judge_verdict(allowed: tuple[str, ...], verdict: Any) -> Judgement:
    label = str(verdict.label)
    reason = " ".join(verdict.reasons[:1]) if getattr(verdict, "reasons", None) else ""
    if label in allowed:
        outcome = "pass"
    elif label == Label.INCONCLUSIVE:
        outcome = "undecided"
    else:
        outcome = "fail"
    text = f"verdict {label} {'in' if outcome == 'pass' else 'not in'} {{{', '.join(allowed)}}}"
    if outcome != "pass" and reason:
        text += f": {reason}"
    return Judgement("verdict", outcome, text, signal=getattr(verdict, "signal", None))


def judge_baseline(
    check: Check, growth_by_signal: Mapping[str, Any], entry: Mapping[str, Any] | None
) -> Judgement | None:
    """Regressed when the new interval's lower bound is above the baseline's upper
    bound plus the tolerance (per step when both runs know their steps)."""
    if entry is None:
        return Judgement(
            "baseline",
            "pass",
            "no baseline entry for this check (record one with --update-baseline)",
        )
    signal = entry.get("signal", check.signal)
    growth = growth_by_signal.get(signal)
    if growth is None:
        return Judgement("baseline", "undecided", f"baseline: {signal} not recorded by this run")
    tol = check.tolerance
    per = (
        "step"
        if tol.per_s == 0 and finite_or_none(entry.get("bytes_per_step")) is not None
        else "s"
    )
    if per == "step" and not math.isfinite(float(growth.per_step)):
        per = "s"
    value, (lo, _hi) = _figures(growth, per)
    base_value = finite_or_none(entry.get("bytes_per_step" if per == "step" else "bytes_per_s"))
    base_ci = entry.get("ci95_per_step" if per == "step" else "ci95") or [None, None]
    base_hi = finite_or_none(base_ci[1])
    if base_value is None or base_hi is None:
        return Judgement(
            "baseline", "undecided", f"baseline entry for {signal} has no {per} figures"
        )
    slack = max(tol.relative * abs(base_value), tol.per_step if per == "step" else tol.per_s)
    bound = base_hi + slack
    unit = growth.unit
    outcome = "undecided" if not math.isfinite(lo) else "fail" if lo > bound else "pass"
    sign = ">" if outcome == "fail" else "<="
    text = (
        f"baseline {signal} {_fmt(value, unit, per)} (CI low {_fmt(lo, unit, per)}) {sign} "
        f"baseline CI high {_fmt(base_hi, unit, per)} + tolerance {tol.text}"
    )
    return Judgement("baseline", outcome, text, finite_or_none(value), None, bound, signal, per)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (JSON has no NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
