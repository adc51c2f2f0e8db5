"""``leaklab run``: run a scenario in a child process and record a run directory."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from leaklab import clitypes, terminal, units
from leaklab.commands import command_options, common_options, probe_options, service_options
from leaklab.kinds import Status
from leaklab.scenario import ScenarioError, parse_param_overrides

if TYPE_CHECKING:
    from leaklab.runner.parent import RunResult


@click.command("run", cls=command_options.RunCommand)
@click.argument("scenario", required=False)
@click.option("--variant", "-v", help="Scenario variant (default: the scenario's first).")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a scenario parameter (repeatable).",
)
@common_options.duration(
    "Run for this long (90s, 15m, 2h). Without it and --steps: until the verdict is confident."
)
@click.option(
    "--grace",
    type=clitypes.DURATION,
    help="How long past --duration the run may go (setup, the last step, teardown) before "
    "whatever is left is killed and the run ends timed_out. Default 30s.",
)
@click.option(
    "--steps",
    "-n",
    type=click.IntRange(min=1),
    help="Run this many steps (with --duration: whichever comes first).",
)
@click.option(
    "--max-duration",
    type=clitypes.DURATION,
    help=(
        "With neither --steps nor --duration: stop here if the verdict is not confident yet "
        "(default 5m)."
    ),
)
@click.option(
    "--rate",
    "-r",
    type=clitypes.RATE,
    help="Steps per second (200/s); default: as fast as possible, or the variant's own rate.",
)
@common_options.sampling_interval()
@common_options.warmup(
    clitypes.STEPS_OR_DURATION,
    "Warm-up to skip in analysis: steps (1000) or time (10s). Default: 10% of the run.",
)
@click.option(
    "--max-rss",
    type=clitypes.SIZE,
    help="Kill the child when its RSS crosses this (default: 1/4 of RAM, at most 4GiB).",
)
@probe_options.options
@click.option(
    "--include-children", is_flag=True, help="Sum the memory of the child's own child processes."
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Step exceptions tolerated before the run fails.",
)
@click.option(
    "--scenarios",
    "scenario_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra folder to find named scenarios in (repeatable).",
)
@common_options.out_folder("Folder that receives the run directory.", default="runs")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress bar (default: when stderr is a terminal).",
)
@common_options.json_flag("Print the summary as one JSON object on stdout.")
@service_options.options
@command_options.options
def command(
    scenario: str | None,
    variant: str | None,
    params: tuple[str, ...],
    duration: float | None,
    grace: float | None,
    steps: int | None,
    max_duration: float | None,
    rate: float | None,
    interval: float,
    warmup: units.StepsOrDuration | None,
    max_rss: int | None,
    profile: str,
    probe_names: tuple[str, ...],
    snapshot_every: units.StepsOrDuration | None,
    include_children: bool,
    max_errors: int,
    scenario_dirs: tuple[str, ...],
    out: str,
    progress: bool | None,
    as_json: bool,
    load: str | None,
    health: str | None,
    ready_timeout: float,
    bootstrap: bool,
    **service: Any,
) -> None:
    """Run SCENARIO (a name from `leaklab list`, or a path to a .py file) and record it;
    or, after --, any program: leaklab run [OPTIONS] -- CMD ARGS...

    \b
    Exit codes: 0 completed, 1 the scenario raised, 2 usage error (or an --out that cannot
    be written), 3 killed at the memory cap, 4 timed out (still running --duration plus
    --grace after the start), 130 interrupted (Ctrl-C).
    """
    from leaklab import runner
    from leaklab.runner import command as command_mod

    if interval <= 0:
        raise click.BadParameter("must be positive", param_hint="--interval")
    if max_duration is not None and (duration is not None or steps is not None):
        raise click.UsageError(
            "--max-duration bounds a run of no set length: drop it, or drop --duration/--steps"
        )
    if max_duration is not None and max_duration <= 0:
        raise click.BadParameter("must be positive", param_hint="--max-duration")
    argv = command_options.command_argv()
    command_options.check(scenario, argv)
    try:
        common = dict(
            duration_s=duration,
            steps=steps,
            rate=rate,
            interval_s=interval,
            warmup=warmup,
            max_rss=max_rss,
            out=out,
            **probe_options.config_fields(profile, probe_names, snapshot_every),
            progress=progress,
            argv=["leaklab", *sys.argv[1:]],
            max_duration_s=max_duration,
            stop_rule=_stop_rule(duration, steps, max_duration),
            **({"grace_s": grace} if grace is not None else {}),
        )
        if argv is not None:
            fields = service_options.config_fields({**service, "serve": load is not None})
            config: runner.RunConfig = command_mod.CommandConfig(
                scenario="",
                command=argv,
                load_url=load,
                health_path=health,
                ready_timeout_s=ready_timeout,
                bootstrap=bootstrap,
                serve=load is not None,
                request_timeout_s=fields["request_timeout_s"],
                recycle=fields["recycle"],
                **common,
            )
            prepared = command_mod.prepare(config)  # type: ignore[arg-type]
        else:
            config = runner.RunConfig(
                scenario=scenario or "",
                variant=variant,
                params=parse_param_overrides(params),
                scenario_dirs=list(scenario_dirs),
                include_children=include_children,
                max_errors=max_errors,
                **common,
                **service_options.config_fields(service),
            )
            prepared = runner.prepare(config)
    except ScenarioError as exc:
        raise click.UsageError(str(exc)) from None
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0] if exc.args else exc)) from None
    from leaklab import store

    run_it = runner.run if argv is None else command_mod.run
    try:
        result = run_it(config, prepared)  # type: ignore[operator]
    except store.RunDirError as exc:
        raise click.UsageError(f"{exc}; choose another --out") from None
    summary = result.to_dict()
    if result.exit_code == 2:  # the program never got ready: bad input, nothing to analyse
        click.echo(json.dumps(summary, indent=2) if as_json else f"run       {result.run_dir}")
        click.echo(f"Error: {result.message}", err=True)
        sys.exit(2)
    analysis = analyze_run(result.run_dir)
    split = _heap_split(result.run_dir) if argv is not None else None
    if as_json:
        if analysis is not None:
            data = analysis.to_dict()
            summary.update(
                verdict=data["verdict"],
                reasons=data["reasons"],
                growth=data["growth"],
                top_types=data["top_types"],
                top_sites=data["top_sites"],
                chains=data["chains"],
            )
        if split is not None:
            summary["heap"] = {**split.to_dict(), "sentence": split.sentence()}
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(result)
        if analysis is not None:
            from leaklab.report.text import format_summary

            terminal.echo(format_summary(analysis))
        if split is not None:
            terminal.echo(f"js heap   {split.sentence()}")
    sys.exit(result.exit_code)


def _stop_rule(duration: float | None, steps: int | None, max_duration: float | None) -> Any:
    """A run of no set length stops when the sequential verdict is confident."""
    if duration is not None or steps is not None:
        return None
    from leaklab.analysis.sequential import SequentialStop
    from leaklab.runner.parent import DEFAULT_MAX_DURATION_S

    return SequentialStop(max_duration or DEFAULT_MAX_DURATION_S)


def analyze_run(run_dir: Any) -> Any:
    """The run's analysis; a failure here must not hide the run's own exit code."""
    from leaklab.analysis import analyze

    try:
        return analyze(run_dir)
    except Exception as exc:  # the run is recorded; `leaklab analyze` can retry and show the error
        terminal.echo(
            f"analysis failed: {type(exc).__name__}: {exc}; retry with `leaklab analyze {run_dir}`",
            err=True,
        )
        return None


def _heap_split(run_dir: Any) -> Any:
    """JS heap vs native for a Node.js program's run (None for other programs)."""
    from leaklab.analysis.heap import heap_split

    try:
        return heap_split(run_dir)
    except Exception as exc:  # like the analysis: never hide the run's own exit code
        click.echo(f"heap split failed: {type(exc).__name__}: {exc}", err=True)
        return None


def _print_summary(result: RunResult) -> None:
    status = result.status
    colour = {Status.COMPLETED: "green", Status.INTERRUPTED: "yellow"}.get(status, "red")
    message = f"  ({terminal.safe(result.message)})" if result.message else ""
    click.echo(f"status    {click.style(status, fg=colour)}" + message)
    click.echo(
        f"steps     {result.steps:,} in {units.format_duration(round(result.duration_s, 3))}"
        + (f", {result.errors} errors" if result.errors else "")
    )
    start, end = result.rss_start, result.rss_end
    if start is not None and end is not None:
        click.echo(
            f"rss       {units.format_size(start)} -> {units.format_size(end)} "
            f"({units.format_size(end - start, signed=True)}; peak "
            f"{units.format_size(result.rss_peak)})"
        )
    if result.requests:
        req = result.requests
        click.echo(
            f"requests  {req['sent']:,} sent, {req['ok']:,} ok, {req['failed']:,} failed"
            + (f" {req['errors']}" if req["errors"] else "")
        )
    if result.restarts is not None:
        click.echo(
            f"restarts  {result.restarts['memory']} at the memory limit, "
            f"{result.restarts['crash']} after crashes"
        )
    click.echo(f"run       {result.run_dir}")
