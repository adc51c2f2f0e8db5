"""The summary table shown by ``leaklab analyze`` and at the end of ``leaklab run``."""

from __future__ import annotations

import math

from leaklab import units
from leaklab.analysis.analyzer import RunAnalysis
from leaklab.analysis.attribution import summary_lines
from leaklab.analysis.growth import Growth
from leaklab.analysis.verdict import fmt_rate

HEADERS = ("signal", "per step", "95% CI per step", "per hour", "%/h", "baseline", "verdict")


def _rate(g: Growth, value: float, per: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if g.unit == "blocks":
        return f"{value:+,.3g}/{per}"
    return f"{units.format_size(value, signed=True)}/{per}"


def _ci(g: Growth, pair: tuple[float, float], per: str) -> str:
    lo, hi = pair
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    return f"{_rate(g, lo, per)} .. {_rate(g, hi, per)}"


def _row(a: RunAnalysis, g: Growth) -> tuple[str, ...]:
    per_step = math.isfinite(g.per_step)
    if per_step:
        rate, ci = _rate(g, g.per_step, "step"), _ci(g, g.ci95_per_step, "step")
    else:
        rate, ci = _rate(g, g.per_s, "s"), _ci(g, g.ci95, "s")
    hourly = _rate(g, g.per_s * 3600, "h") if math.isfinite(g.per_s) else "n/a"
    pct = f"{g.pct_per_hour:+,.1f}" if math.isfinite(g.pct_per_hour) else "n/a"
    if g.unit == "blocks":
        baseline = f"{g.baseline:,.0f} blocks" if math.isfinite(g.baseline) else "n/a"
    else:
        baseline = units.format_size(g.baseline) if math.isfinite(g.baseline) else "n/a"
    label = a.signal_verdicts[g.signal].label if g.signal in a.signal_verdicts else ""
    return (g.signal, rate, ci, hourly, pct, baseline, label)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip()
            for r in rows]


def format_summary(a: RunAnalysis) -> str:
    """A plain-text summary: what was analysed, growth per signal, the verdict and why."""
    lines: list[str] = []
    meta = a.meta
    name = str(meta.get("scenario") or "run") + (f" [{meta['variant']}]" if meta.get("variant") else "")
    lines.append(f"analysis  {name}  ({a.status})")
    g0 = a.primary
    if g0 is not None and g0.n_samples:
        span = f"t={g0.t_start:.1f}s..{g0.t_end:.1f}s ({units.format_duration(g0.window_s)}, {g0.n_samples} samples)"
        warm = a.window
        if warm.source == "none":
            after = "no warm-up skipped"
        else:
            after = f"after the warm-up (ended at {units.format_duration(warm.t_start)}"
            after += f", step {warm.steps_start:,.0f})" if math.isfinite(warm.steps_start) else ")"
        rate = f"; {a.steps_per_s:,.1f} steps/s" if math.isfinite(a.steps_per_s) else ""
        lines.append(f"window    {span} {after}{rate}")
    if a.growth:
        rows = [HEADERS] + [_row(a, g) for g in a.growth.values()]
        lines.append("")
        lines.extend(_table(rows))
        lines.append("")
    v = a.verdict
    head = f"verdict   {v.label}" + (f" (on {v.signal})" if v.signal else "")
    lines.append(head)
    for reason in v.reasons:
        lines.append(f"          {reason}")
    if v.label == "INCONCLUSIVE" and v.more_time_s is not None:
        lines.append(f"          Suggested: run for at least {units.format_duration(_total(a) + v.more_time_s)} in total.")
    lines.extend(summary_lines(a.top_types, a.top_sites, a.chains))
    for note in a.notes:
        lines.append(f"note      {note}")
    lines.append("baseline  %/h is relative to the fitted value at the first sample after the warm-up")
    return "\n".join(lines)


def _total(a: RunAnalysis) -> float:
    duration = a.meta.get("duration_s")
    if isinstance(duration, (int, float)) and math.isfinite(duration):
        return float(duration)
    g = a.primary
    return g.t_end if g is not None and math.isfinite(g.t_end) else 0.0


__all__ = ["format_summary", "fmt_rate"]
