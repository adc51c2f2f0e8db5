"""``leaklab run``: run a scenario in a child process and record a run directory."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from leaklab import clitypes, probes, terminal, units
from leaklab.commands import _service_options
from leaklab.scenario import ScenarioError, parse_param_overrides


@click.command("run")
@click.argument("scenario")
@click.option("--variant", "-v", help="Scenario variant (default: the scenario's first).")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="Override a scenario parameter (repeatable).")
@click.option("--duration", "-d", type=clitypes.DURATION, help="Run for this long (90s, 15m, 2h). Default 30s unless --steps is given.")
@click.option("--grace", type=clitypes.DURATION,
              help="How long past --duration the run may go (setup, the last step, teardown) before "
                   "whatever is left is killed and the run ends timed_out. Default 30s.")
@click.option("--steps", "-n", type=click.IntRange(min=1), help="Run this many steps (with --duration: whichever comes first).")
@click.option("--rate", "-r", type=clitypes.RATE, help="Steps per second (200/s); default: as fast as possible, or the variant's own rate.")
@click.option("--interval", type=clitypes.DURATION, default=0.5, show_default=True, help="Sampling interval.")
@click.option("--warmup", type=clitypes.STEPS_OR_DURATION, help="Warm-up to skip in analysis: steps (1000) or time (10s). Default: 10% of the run.")
@click.option("--max-rss", type=clitypes.SIZE, help="Kill the child when its RSS crosses this (default: 1/4 of RAM, at most 4GiB).")
@click.option("--profile", type=click.Choice(list(probes.PROFILES)), default=probes.DEFAULT_PROFILE, show_default=True,
              help="Probe level: rss (outside sampling only), default (names the culprit cheaply), deep.")
@click.option("--probe", "probe_names", multiple=True, metavar="NAME[,NAME]", help="Add probes by name (repeatable or comma-separated).")
@click.option("--snapshot-every", type=clitypes.STEPS_OR_DURATION, help="Snapshot cadence for snapshotting probes: steps (5000) or time (10s).")
@click.option("--include-children", is_flag=True, help="Sum the memory of the child's own child processes.")
@click.option("--max-errors", type=click.IntRange(min=0), default=0, show_default=True, help="Step exceptions tolerated before the run fails.")
@click.option("--scenarios", "scenario_dirs", multiple=True, type=click.Path(file_okay=False), help="Extra folder to find named scenarios in (repeatable).")
@click.option("--out", "-o", default="runs", show_default=True, type=click.Path(file_okay=False), help="Folder that receives the run directory.")
@click.option("--progress/--no-progress", default=None, help="Live progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@_service_options.options
def command(scenario: str, variant: str | None, params: tuple[str, ...], duration: float | None, grace: float | None,
            steps: int | None,
            rate: float | None, interval: float, warmup: units.StepsOrDuration | None, max_rss: int | None,
            profile: str, probe_names: tuple[str, ...], snapshot_every: units.StepsOrDuration | None,
            include_children: bool, max_errors: int, scenario_dirs: tuple[str, ...], out: str,
            progress: bool | None, as_json: bool, **service: Any) -> None:
    """Run SCENARIO (a name from `leaklab list`, or a path to a .py file) and record it.

    \b
    Exit codes: 0 completed, 1 the scenario raised, 2 usage error (or an --out that cannot
    be written), 3 killed at the memory cap, 4 timed out (still running --duration plus
    --grace after the start), 130 interrupted (Ctrl-C).
    """
    from leaklab import runner

    if interval <= 0:
        raise click.BadParameter("must be positive", param_hint="--interval")
    try:
        explicit = [name.strip() for item in probe_names for name in item.split(",") if name.strip()]
        probe_options: dict[str, Any] = {}
        if snapshot_every is not None:
            probe_options["snapshot_every"] = {"steps": snapshot_every.steps, "seconds": snapshot_every.seconds}
        config = runner.RunConfig(
            scenario=scenario, variant=variant, params=parse_param_overrides(params),
            scenario_dirs=list(scenario_dirs), duration_s=duration, steps=steps, rate=rate,
            interval_s=interval, warmup=warmup, max_rss=max_rss, include_children=include_children,
            out=out, probes=probes.resolve(profile, explicit), probe_options=probe_options, profile=profile,
            max_errors=max_errors, progress=progress, argv=["leaklab", *sys.argv[1:]],
            **_service_options.config_fields(service), **({"grace_s": grace} if grace is not None else {}),
        )
        prepared = runner.prepare(config)
    except ScenarioError as exc:
        raise click.UsageError(str(exc)) from None
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0] if exc.args else exc)) from None
    from leaklab import store

    try:
        result = runner.run(config, prepared)
    except store.RunDirError as exc:
        raise click.UsageError(f"{exc}; choose another --out") from None
    summary = result.to_dict()
    analysis = _analyze(result.run_dir)
    if as_json:
        if analysis is not None:
            data = analysis.to_dict()
            summary.update(verdict=data["verdict"], reasons=data["reasons"], growth=data["growth"],
                           top_types=data["top_types"], top_sites=data["top_sites"], chains=data["chains"])
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
        if analysis is not None:
            from leaklab.analysis.render import format_summary

            terminal.echo(format_summary(analysis))
    sys.exit(result.exit_code)


def _analyze(run_dir: Any) -> Any:
    """The run's analysis; a failure here must not hide the run's own exit code."""
    from leaklab.analysis import analyze

    try:
        return analyze(run_dir)
    except Exception as exc:  # the run is recorded; `leaklab analyze` can retry and show the error
        terminal.echo(f"analysis failed: {type(exc).__name__}: {exc}; retry with `leaklab analyze {run_dir}`", err=True)
        return None


def _print_summary(summary: dict[str, Any]) -> None:
    status = summary["status"]
    colour = {"completed": "green", "interrupted": "yellow"}.get(status, "red")
    message = f"  ({terminal.safe(summary['message'])})" if summary["message"] else ""
    click.echo(f"status    {click.style(status, fg=colour)}" + message)
    click.echo(f"steps     {summary['steps']:,} in {units.format_duration(summary['duration_s'])}" + (f", {summary['errors']} errors" if summary["errors"] else ""))
    start, end = summary["rss_start"], summary["rss_end"]
    if start is not None and end is not None:
        click.echo(f"rss       {units.format_size(start)} -> {units.format_size(end)} ({units.format_size(end - start, signed=True)}; peak {units.format_size(summary['rss_peak'])})")
    if summary.get("requests"):
        req = summary["requests"]
        click.echo(f"requests  {req['sent']:,} sent, {req['ok']:,} ok, {req['failed']:,} failed" + (f" {req['errors']}" if req["errors"] else ""))
    if summary.get("restarts") is not None:
        click.echo(f"restarts  {summary['restarts']['memory']} at the memory limit, {summary['restarts']['crash']} after crashes")
    click.echo(f"run       {summary['run_dir']}")
