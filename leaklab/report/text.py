"""The plain-text summary shown by ``leaklab analyze`` and at the end of ``leaklab run``:
what was analysed, growth per signal, the verdict and why."""

from __future__ import annotations

import math

from leaklab import units
from leaklab.analysis.analyzer import RunAnalysis
from leaklab.analysis.attribution import summary_lines
from leaklab.analysis.growth import Growth
from leaklab.kinds import Verdict as Label

HEADERS = ("signal", "per step", "95% CI per step", "per hour", "%/h", "baseline", "verdict")


def _row(a: RunAnalysis, g: Growth) -> tuple[str, ...]:
    """Per step where steps are known (per second otherwise), per hour, %/h and the baseline."""
    per, value, interval = (
        ("step", g.per_step, g.ci95_per_step)
        if math.isfinite(g.per_step)
        else ("s", g.per_s, g.ci95)
    )

    def rate(v: float, per: str = per) -> str:
        return units.format_growth(v, g.unit, per, signed=True)

    pct = f"{g.pct_per_hour:+,.1f}" if math.isfinite(g.pct_per_hour) else units.NA
    if g.unit == "blocks":
        baseline = f"{g.baseline:,.0f} blocks" if math.isfinite(g.baseline) else units.NA
    else:
        baseline = units.format_size(g.baseline)
    label = a.signal_verdicts[g.signal].label if g.signal in a.signal_verdicts else ""
    return (
        g.signal,
        rate(value),
        units.format_ci(interval, rate),
        rate(g.per_hour, "h"),
        pct,
        baseline,
        label,
    )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def _window_line(a: RunAnalysis) -> str | None:
    """``window    t=2.0s..60.0s (58.0s, 117 samples) after the warm-up ...``."""
    g0 = a.primary
    if g0 is None or not g0.n_samples:
        return None
    span = (
        f"t={g0.t_start:.1f}s..{g0.t_end:.1f}s ({units.format_duration(g0.window_s)}, "
        f"{g0.n_samples} samples)"
    )
    warm = a.window
    if warm.source == "none":
        after = "no warm-up skipped"
    else:
        after = f"after the warm-up (ended at {units.format_duration(warm.t_start)}"
        after += f", step {warm.steps_start:,.0f})" if math.isfinite(warm.steps_start) else ")"
    rate = f"; {a.steps_per_s:,.1f} steps/s" if math.isfinite(a.steps_per_s) else ""
    return f"window    {span} {after}{rate}"


def format_summary(a: RunAnalysis) -> str:
    """A plain-text summary: what was analysed, growth per signal, the verdict and why."""
    lines: list[str] = []
    meta = a.meta
    name = str(meta.get("scenario") or "run") + (
        f" [{meta['variant']}]" if meta.get("variant") else ""
    )
    lines.append(f"analysis  {name}  ({a.status})")
    window = _window_line(a)
    if window is not None:
        lines.append(window)
    if a.growth:
        rows = [HEADERS] + [_row(a, g) for g in a.growth.values()]
        lines.append("")
        lines.extend(_table(rows))
        lines.append("")
    v = a.verdict
    lines.append(f"verdict   {v.label}" + (f" (on {v.signal})" if v.signal else ""))
    for reason in v.reasons:
        lines.append(f"          {reason}")
    if v.label == Label.INCONCLUSIVE and v.more_time_s is not None:
        lines.append(
            "          Suggested: run for at least "
            f"{units.format_duration(_total(a) + v.more_time_s)} in total."
        )
    lines.extend(summary_lines(a.top_types, a.top_sites, a.chains))
    for note in a.notes:
        lines.append(f"note      {note}")
    lines.append(
        "baseline  %/h is relative to the fitted value at the first sample after the warm-up"
    )
    return "\n".join(lines)


def _total(a: RunAnalysis) -> float:
    duration = a.meta.get("duration_s")
    if isinstance(duration, (int, float)) and math.isfinite(duration):
        return float(duration)
    g = a.primary
    return g.t_end if g is not None and math.isfinite(g.t_end) else 0.0
