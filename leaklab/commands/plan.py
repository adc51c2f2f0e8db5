"""``leaklab plan``: what recycling on a memory limit would cost, predicted from a recorded run."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from leaklab import clitypes, terminal, units
from leaklab.commands import common_options


@click.command("plan")
@click.argument("run", required=False)
@common_options.runs_folder("runs_dir", "Folder whose latest run is used when RUN is not given.")
@click.option(
    "--limit",
    "limits",
    multiple=True,
    required=True,
    type=clitypes.SIZE,
    metavar="SIZE",
    help="A memory limit to plan for (150MB, 150M); repeatable.",
)
@common_options.check_interval("How often memory is checked (30s is PM2's default).")
@click.option(
    "--restart-time",
    type=clitypes.DURATION,
    help="From the trigger until the new process serves (default: measured in the run).",
)
@common_options.restart_mode(
    "--mode",
    "restart: stop, then start (down meanwhile; PM2 fork mode); reload: start the new one "
    "first (PM2 cluster mode).",
)
@common_options.kill_signal(
    "SIGINT/SIGTERM: graceful (requests in progress finish); SIGKILL: they are lost."
)
@common_options.kill_timeout("Longest graceful stop before SIGKILL (PM2's default 1.6s).")
@common_options.json_flag("Print one JSON object on stdout.")
def command(
    run: str | None,
    runs_dir: str,
    limits: tuple[int, ...],
    check_interval: float,
    restart_time: float | None,
    mode: str,
    kill_signal: str,
    kill_timeout: float,
    as_json: bool,
) -> None:
    """Predict restarts per hour, time between restarts, overshoot and success rate for
    recycling at each --limit, from RUN (best: a run without recycling). Nothing is run.

    \b
    leaklab plan runs/...-http-agent-seed --limit 150MB --limit 300MB
    leaklab plan --limit 150M --check-interval 5s --mode reload --json

    \b
    Exit codes: 0 planned, 2 usage error (not a run, no measurable growth, bad option).
    """
    from leaklab import store
    from leaklab.analysis import analyze, recycling

    if check_interval <= 0:
        raise click.BadParameter("must be positive", param_hint="--check-interval")
    try:
        path = run if run is not None else store.latest_run(runs_dir)
        data = store.read_run(path, warn=False)
        analysis = analyze(data)
        predictions = [
            recycling.predict_from_run(
                data,
                limit,
                check_interval,
                restart_time,
                mode,
                kill_signal,
                kill_timeout,
                analysis=analysis,
            )
            for limit in limits
        ]
    except store.RunFormatError as exc:
        raise click.UsageError(store.usage_hint(run, exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for prediction in predictions:
        if math.isfinite(prediction.baseline) and prediction.limit <= prediction.baseline:
            raise click.BadParameter(
                f"{units.format_size(prediction.limit)} is not above a fresh process's memory "
                f"({units.format_size(prediction.baseline)}): it would restart without end; give "
                "a limit above it",
                param_hint="--limit",
            )
    if as_json:
        click.echo(
            json.dumps(
                {"run": str(data.path), "predictions": [p.to_dict() for p in predictions]}, indent=2
            )
        )
    else:
        terminal.echo(format_plan(str(data.path), predictions))
    sys.exit(0)


def _pct(value: float) -> str:
    return units.NA if not math.isfinite(value) else f"{100 * value:.2f}%"


def _num(value: float, digits: int = 1) -> str:
    return units.NA if not math.isfinite(value) else f"{value:,.{digits}f}"


def format_plan(run: str, predictions: list[Any]) -> str:
    """The what-if table (one row per limit) with the assumptions above it."""
    first = predictions[0]
    lo, hi = first.bytes_per_s_ci95
    lines = [
        f"run        {run}",
        f"leak       {units.format_growth(first.bytes_per_s, 'bytes', 's')} "
        f"(95% CI {units.format_ci((lo, hi), lambda v: units.format_growth(v, 'bytes', 's'))}), "
        f"fresh process {units.format_size(first.baseline)}"
        + (f", {first.rate:g} req/s" if math.isfinite(first.rate) else ""),
        f"policy     check every {units.format_duration(first.check_interval_s)}, {first.mode} "
        f"with {first.kill_signal}, restart takes {units.format_duration(first.restart_s)} (down "
        f"{units.format_duration(first.downtime_s)})",
    ]
    lines += [
        f"note       {note}" for note in dict.fromkeys(n for p in predictions for n in p.notes)
    ]
    header = (
        "limit",
        "time to limit",
        "restart every",
        "restarts/h",
        "95% CI",
        "overshoot",
        "max overshoot",
        "peak",
        "failed/restart",
        "success",
    )
    rows = [header]
    for p in predictions:
        ci_lo, ci_hi = p.restarts_per_hour_ci95
        rows.append(
            (
                units.format_size(p.limit),
                units.format_duration(p.time_to_limit_s),
                units.format_duration(p.restart_interval_s),
                _num(p.restarts_per_hour, 2),
                units.format_interval(*(_num(v, 2) for v in sorted((ci_lo, ci_hi)))),
                units.format_size(p.overshoot_bytes),
                units.format_size(p.max_overshoot_bytes),
                units.format_size(p.expected_peak),
                _num(p.failed_per_restart),
                _pct(p.success_rate),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    lines += [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]
    return "\n".join(lines)
