"""The report's tables, in the shape of an incident write-up. Each cell is a number
the analysis (or the run's own record) holds, formatted; nothing is computed here
except by calling the analysis and projection functions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from leaklab import units
from leaklab.analysis.growth import Growth
from leaklab.analysis.verdict import NAMES
from leaklab.report import fmt
from leaklab.report.document import Table
from leaklab.report.limits import MemoryLimit, time_to_limit
from leaklab.report.subject import ReportRun


def _verdict_of(r: ReportRun, signal: str) -> str:
    v = r.analysis.signal_verdicts.get(signal)
    return v.label if v else ""


def growth_table(runs: Sequence[ReportRun]) -> Table:
    """Growth per run and signal: MB/h, %/h, per step with its interval, the signal's verdict."""
    many = len(runs) > 1
    headers = (["Run"] if many else []) + [
        "Signal",
        "Growth per hour",
        "%/h",
        "Per step",
        "95% CI",
        "Verdict",
    ]
    text = 2 if many else 1
    rows: list[list[str]] = []
    for r in runs:
        for signal, g in r.analysis.growth.items():
            row = [
                NAMES.get(signal, signal),
                fmt.mb_per_hour(g),
                fmt.pct_per_hour(g),
                fmt.per_step(g),
                fmt.ci_per_step(g),
                _verdict_of(r, signal),
            ]
            rows.append(([r.label] if many else []) + row)
    return Table(
        headers,
        rows,
        "Growth after the warm-up. %/h is relative to the fitted value at the end of "
        "the warm-up; the 95% CI comes from a block bootstrap.",
        key="growth",
        text_columns=text,
    )


def _limit_sources(runs: Sequence[ReportRun], limits: Sequence[MemoryLimit]) -> str:
    sources = {limit.source for limit in limits}
    if len(sources) == 1:
        return sources.pop()
    return "; ".join(f"{r.label}: {limit.source}" for r, limit in zip(runs, limits, strict=True))


def restart_behaviour_table(runs: Sequence[ReportRun], limits: Sequence[MemoryLimit]) -> Table:
    """Initial memory, growth, the limit, time to reach it and the restart time, per run."""
    rows: list[list[str]] = []
    for r, limit in zip(runs, limits, strict=True):
        g = r.analysis.growth.get("rss")
        initial = units.format_size(g.baseline) if g else units.NA
        rate = f"{fmt.mb_per_hour(g)} ({fmt.pct_per_hour(g)})" if g else units.NA
        restart = "not recycled"
        if r.recycling is not None and units.finite(r.recycling.restart_time_s):
            restart = units.format_duration(r.recycling.restart_time_s)
        elif r.prediction is not None:
            restart = f"{units.format_duration(r.prediction.restart_s)} (predicted)"
        rows.append(
            [
                r.label,
                initial,
                rate,
                units.format_size(limit.bytes),
                units.format_duration(time_to_limit(g, limit)),
                restart,
            ]
        )
    caption = (
        "Initial memory is the fitted RSS at the end of the warm-up; time to limit is how long a "
        "fresh process takes to grow from it to the limit at the fitted rate; restart time runs "
        "from the restart until the new process serves (measured in a recycled run, else "
        "predicted from the run's start-up). Limit: " + _limit_sources(runs, limits) + "."
    )
    return Table(
        ["Run", "Initial memory", "Growth rate", "Limit", "Time to limit", "Restart time"],
        rows,
        caption,
        key="restart_behaviour",
    )


def comparison_table(before: ReportRun, after: ReportRun, limits: Sequence[MemoryLimit]) -> Table:
    """Before and after side by side: the rows an incident write-up quotes."""
    rows: list[list[str]] = [["Verdict", before.analysis.label, after.analysis.label]]

    def signal_rows(signal: str) -> None:
        gb, ga = before.analysis.growth.get(signal), after.analysis.growth.get(signal)
        if gb is None and ga is None:
            return
        name = NAMES.get(signal, signal)

        def cell(g: Growth | None, f: Any) -> str:
            return f(g) if g is not None else "not measured"

        rows.append(
            [f"{name} growth per hour", cell(gb, fmt.mb_per_hour), cell(ga, fmt.mb_per_hour)]
        )
        if signal in ("rss", "uss", "traced"):
            rows.append([f"{name} %/h", cell(gb, fmt.pct_per_hour), cell(ga, fmt.pct_per_hour)])
        rows.append([f"{name} per step", cell(gb, fmt.per_step), cell(ga, fmt.per_step)])
        rows.append([f"{name} 95% CI", cell(gb, fmt.ci_per_step), cell(ga, fmt.ci_per_step)])

    for signal in ("rss", "traced", "blocks"):
        signal_rows(signal)
    gb, ga = before.analysis.growth.get("rss"), after.analysis.growth.get("rss")
    rows.append(
        [
            "RSS at the end of the warm-up",
            units.format_size(gb.baseline if gb else None),
            units.format_size(ga.baseline if ga else None),
        ]
    )
    same = limits[0] == limits[1] and limits[0].bytes is not None
    rows.append(
        [
            f"Time to {units.format_size(limits[0].bytes)}" if same else "Time to the limit",
            units.format_duration(time_to_limit(gb, limits[0])),
            units.format_duration(time_to_limit(ga, limits[1])),
        ]
    )
    if any(r.recycling is not None or r.prediction is not None for r in (before, after)):
        rows.append(
            [
                f"Restarts per hour at {units.format_size(limits[0].bytes)}",
                _restarts_cell(before),
                _restarts_cell(after),
            ]
        )
    rows.append(
        [
            "Steps per second",
            units.sig(before.analysis.steps_per_s),
            units.sig(after.analysis.steps_per_s),
        ]
    )
    rows.append(["Status", before.status, after.status])
    return Table(["", before.label, after.label], rows, key="comparison", text_columns=1)


def _restarts_cell(r: ReportRun) -> str:
    """Measured when the run was recycled, else predicted from its growth."""
    if r.recycling is not None:
        return f"{units.format_per_hour(r.recycling.restarts_per_hour)} (measured)"
    if r.prediction is not None:
        return f"{units.format_per_hour(r.prediction.restarts_per_hour)} (predicted)"
    return units.NA


def _params(meta: dict[str, Any]) -> str:
    params = meta.get("params") or {}
    return (
        ", ".join(
            f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in params.items()
        )
        or "none"
    )


def runs_table(runs: Sequence[ReportRun]) -> Table:
    """What ran, how and where: one column per run."""
    fields: list[tuple[str, Any]] = [
        ("Run directory", lambda r: r.path.name),
        ("Scenario", lambda r: r.scenario),
        ("Variant", lambda r: r.variant or "none"),
        ("Parameters", lambda r: _params(r.meta)),
        ("Status", lambda r: r.status),
        ("Started (UTC)", lambda r: str(r.meta.get("start") or units.NA)),
        ("Duration", lambda r: units.format_duration(r.meta.get("duration_s"))),
        (
            "Steps",
            lambda r: (
                f"{(r.meta.get('counters') or {}).get('steps', units.NA):,}"
                if isinstance((r.meta.get("counters") or {}).get("steps"), int)
                else units.NA
            ),
        ),
        ("Samples", lambda r: f"{r.run.n_samples:,}"),
        ("Profile", lambda r: str(r.run.config.profile or units.NA)),
        ("Command", lambda r: " ".join(str(a) for a in r.meta.get("argv") or []) or units.NA),
        ("Python", lambda r: str((r.meta.get("versions") or {}).get("python") or units.NA)),
        ("Host", lambda r: str((r.meta.get("host") or {}).get("platform") or units.NA)),
    ]
    headers = [""] + [r.label for r in runs]
    rows = [[name] + [get(r) for r in runs] for name, get in fields]
    return Table(headers, rows, key="runs", text_columns=len(headers))


def as_dict(table: Table) -> dict[str, Any]:
    return {"headers": list(table.headers), "rows": [list(row) for row in table.rows]}


def types_table(r: ReportRun) -> Table:
    """The growing types the attribution found, steadiest growth first."""
    rows = []
    for t in r.attribution.top_types:
        count = f"{units.sig(t.get('start'), 6)} → {units.sig(t.get('end'), 6)}"
        size = (
            units.format_size(t.get("bytes_per_step")) + "/step"
            if units.finite(t.get("bytes_per_step"))
            else units.NA
        )
        rows.append(
            [
                str(t.get("type")),
                f"{units.sig(t.get('per_step'))}/step",
                units.format_per_hour(t.get("per_hour")),
                count,
                size,
            ]
        )
    return Table(
        [
            "Type",
            "Objects per step",
            "Objects per hour",
            "Count (after warm-up → end)",
            "Bytes per step",
        ],
        rows,
        f"Growing types, {r.label}: live objects counted by type at each snapshot.",
        key=f"top_types_{r.role}",
    )


def sites_table(r: ReportRun) -> Table:
    """The growing allocation sites (the user's own frame that led to the allocation)."""
    rows = []
    for s in r.attribution.top_sites:
        rows.append(
            [
                str(s.get("site")),
                str(s.get("function") or ""),
                str(s.get("code") or ""),
                f"{units.format_size(s.get('bytes_per_step'))}/step",
                f"{units.format_size(s.get('bytes_per_hour'))}/h",
                f"{units.sig(s.get('count_per_step'))}/step",
            ]
        )
    return Table(
        ["Site", "Function", "Code", "Bytes per step", "Bytes per hour", "Blocks per step"],
        rows,
        (
            f"Growing allocation sites, {r.label}: memory allocated there and still held "
            "(tracemalloc)."
        ),
        key=f"top_sites_{r.role}",
        text_columns=3,
    )


#: Rows that count requests: shown only for runs that served HTTP (``--serve``), the rest have
#: steps.
_REQUEST_ROWS = {
    "Downtime per restart",
    "Failed requests per restart",
    "Success rate",
    "Throughput (successful)",
}


def _metric_rows() -> list[tuple[str, Any, Any]]:
    """(metric, from the measured recycling, from the prediction); None where one side has no
    such number."""
    return [
        (
            "Restarts per hour",
            lambda m: units.format_per_hour(m.restarts_per_hour),
            lambda p: units.format_per_hour(p.restarts_per_hour),
        ),
        (
            "Time between restarts",
            lambda m: units.format_duration(m.restart_interval_s),
            lambda p: units.format_duration(p.restart_interval_s),
        ),
        (
            "Restarts in the run",
            lambda m: f"{m.memory_restarts} at the limit, {m.crash_restarts} after crashes",
            None,
        ),
        (
            "Restart time (until serving again)",
            lambda m: units.format_duration(m.restart_time_s),
            lambda p: units.format_duration(p.restart_s),
        ),
        (
            "Downtime per restart",
            lambda m: units.format_duration(m.downtime_per_restart_s),
            lambda p: units.format_duration(p.downtime_s),
        ),
        (
            "Failed requests per restart",
            lambda m: units.sig(m.failed_per_restart),
            lambda p: units.sig(p.failed_per_restart),
        ),
        (
            "Success rate",
            lambda m: units.format_percent(m.success_rate),
            lambda p: units.format_percent(p.success_rate),
        ),
        ("Throughput (successful)", lambda m: units.format_per_second(m.throughput_rps), None),
        (
            "Overshoot above the limit (mean)",
            lambda m: units.format_size(m.overshoot_bytes),
            lambda p: units.format_size(p.overshoot_bytes),
        ),
        (
            "Overshoot above the limit (max)",
            lambda m: units.format_size(m.max_overshoot_bytes),
            lambda p: units.format_size(p.max_overshoot_bytes),
        ),
        (
            "Leak rate within a process",
            lambda m: units.format_mb_per_hour(m.leak_bytes_per_s),
            lambda p: units.format_mb_per_hour(p.bytes_per_s),
        ),
        (
            "Fresh process RSS",
            lambda m: units.format_size(m.baseline_rss),
            lambda p: units.format_size(p.baseline),
        ),
        ("Share of time restarting", None, lambda p: units.format_percent(p.downtime_fraction)),
    ]


def system_metrics_table(runs: Sequence[ReportRun], plan: dict[str, Any] | None) -> Table:
    """Recycling measured (recycled runs) next to recycling predicted from each run's growth."""
    columns: list[
        tuple[str, str, Any, bool, bool]
    ] = []  # header, colour, source, measured?, served HTTP?
    for r in runs:
        served = bool(r.run.requests)
        if r.recycling is not None:
            columns.append((f"{r.label}, measured", r.colour, r.recycling, True, served))
        if r.prediction is not None:
            columns.append((f"{r.label}, predicted", r.colour, r.prediction, False, served))
    rows: list[list[str]] = []
    for name, measured, predicted in _metric_rows():
        row = [name]
        for _, _, source, is_measured, served in columns:
            get = measured if is_measured else predicted
            row.append(
                get(source) if get is not None and (served or name not in _REQUEST_ROWS) else "—"
            )
        if any(cell != "—" for cell in row[1:]):
            rows.append(row)
    caption = (
        "Measured: the recycled run's own restarts, and its load's requests when it served HTTP."
    )
    if plan is not None:
        caption += (
            " Predicted: each run's growth and start-up, recycled at "
            f"{units.format_size(plan['limit'])} with a check every "
            f"{units.format_duration(plan['check_interval_s'])} ({plan['mode']}, "
            f"{plan['kill_signal']})."
        )
    if not all(c[4] for c in columns):
        caption += (
            " Request rows are for runs that served HTTP (--serve); the others counted steps."
        )
    return Table(
        ["Metric"] + [c[0] for c in columns],
        rows,
        caption,
        key="system_metrics",
        colours=[""] + [c[1] for c in columns],
    )
