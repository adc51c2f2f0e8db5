"""``leaklab watch``: record a running process (``PID``) or a PM2 app (``--pm2 NAME``) from
outside."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from leaklab import clitypes, units
from leaklab.commands import common_options
from leaklab.commands.run import analyze_run


@click.command("watch")
@click.argument("pid", type=int, required=False)
@click.option(
    "--pm2",
    "pm2_name",
    metavar="NAME",
    help="Follow the PM2 app NAME across its restarts (one generation per pid).",
)
@common_options.duration("Stop after this long (default: until Ctrl-C or the process exits).")
@common_options.sampling_interval()
@common_options.warmup(
    clitypes.DURATION, "Time to skip in analysis (default: 10% of --duration, else none)."
)
@click.option(
    "--health",
    "health_url",
    metavar="URL",
    help="Probe GET URL (http://127.0.0.1:PORT/path) so downtime and success are measured.",
)
@click.option(
    "--health-rate",
    type=clitypes.RATE,
    default="2/s",
    show_default=True,
    help="Health probes per second (at most 50/s).",
)
@common_options.request_timeout("2s", "How long a health probe may take.")
@click.option(
    "--pm2-bin",
    metavar="PATH",
    help="The pm2 program (default: the project's .venv/node one, else pm2 on PATH).",
)
@common_options.out_folder("Folder that receives the run directory.", default="runs")
@common_options.json_flag("Print the summary as one JSON object on stdout.")
def command(
    pid: int | None,
    pm2_name: str | None,
    duration: float | None,
    interval: float,
    warmup: float | None,
    health_url: str | None,
    health_rate: float,
    request_timeout: float,
    pm2_bin: str | None,
    out: str,
    as_json: bool,
) -> None:
    """Record a running process PID and its children until Ctrl-C, --duration or its exit;
    or, with --pm2 NAME, a PM2 app across its restarts.

    \b
    Exit codes: 0 recorded, 2 usage error (no such process, bad option).
    """
    from leaklab.runner import watch

    if (pid is None) == (pm2_name is None):
        raise click.UsageError("give a PID or --pm2 NAME (one of them)")
    if pm2_bin and pm2_name is None:
        raise click.UsageError("--pm2-bin only applies with --pm2 NAME")
    config = watch.WatchConfig(
        duration_s=duration,
        interval_s=interval,
        health_url=health_url,
        health_rate=health_rate,
        request_timeout_s=request_timeout,
        warmup_s=warmup,
        out=out,
        argv=["leaklab", *sys.argv[1:]],
    )
    try:
        if pm2_name is not None:
            from leaklab.runner import pm2

            result = pm2.watch_app(pm2_name, config, pm2_bin)
        else:
            assert pid is not None
            result = watch.watch_pid(pid, config)
    except watch.WatchError as exc:
        raise click.UsageError(str(exc)) from None
    summary: dict[str, Any] = result.to_dict()
    summary["run_dir"] = str(result.run_dir)
    analysis = analyze_run(result.run_dir) if result.samples else None
    generations = None
    if result.generations > 1 or pm2_name is not None:
        from leaklab.analysis.generations import generations_report

        generations = generations_report(result.run_dir)
    if as_json:
        if analysis is not None:
            data = analysis.to_dict()
            summary.update(verdict=data["verdict"], reasons=data["reasons"], growth=data["growth"])
        extra = getattr(result, "pm2", None)
        if extra is not None:
            summary["pm2"] = extra
        if generations is not None:
            summary["generations_report"] = generations.to_dict()
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        click.echo(watch.format_result(result))
        if generations is not None:
            from leaklab.analysis.generations import format_report

            click.echo(format_report(generations))
        if analysis is not None:
            from leaklab.report.text import format_summary

            click.echo(format_summary(analysis))
        elif not result.samples:
            click.echo(
                f"nothing was sampled in {units.format_duration(result.duration_s)}", err=True
            )
    sys.exit(result.exit_code)
