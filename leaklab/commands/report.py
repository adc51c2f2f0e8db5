"""``leaklab report``: charts and an incident-style report for a run or a before/after pair."""

from __future__ import annotations

import json

import click

from leaklab import clitypes, terminal, units
from leaklab.commands import common_options
from leaklab.kinds import Status


@click.command("report")
@click.argument("run", required=False, type=click.Path(file_okay=False))
@click.option(
    "--before",
    type=click.Path(file_okay=False),
    help="Run directory before the fix (with --after).",
)
@click.option(
    "--after", type=click.Path(file_okay=False), help="Run directory after the fix (with --before)."
)
@common_options.out_folder("Folder for the report (default: reports/<name>/).")
@common_options.runs_folder("runs_root", "Where to look for the latest run(s) when none is named.")
@click.option(
    "--limit",
    type=clitypes.SIZE,
    help=(
        "Memory limit for 'time to limit' and recycling predictions (150MB, 150M). Default: a "
        "recycled run's limit, else each run's --max-rss cap."
    ),
)
@common_options.warmup(
    clitypes.STEPS_OR_DURATION, "Override the runs' warm-up: steps (1000) or time (10s)."
)
@click.option(
    "--fleet",
    "fleet_dir",
    type=click.Path(file_okay=False),
    help=(
        "A fleet folder (one run per series, e.g. from `leaklab import`): ranking, top leakers' "
        "curves, rate distribution."
    ),
)
@common_options.top("With --fleet: rows in the ranking table.", default=20)
@common_options.json_flag("Print summary.json on stdout instead of the file list.")
def command(
    run: str | None,
    before: str | None,
    after: str | None,
    out: str | None,
    runs_root: str,
    limit: int | None,
    warmup: units.StepsOrDuration | None,
    fleet_dir: str | None,
    top: int,
    as_json: bool,
) -> None:
    """Write report.md, a self-contained report.html, PNG charts and summary.json.

    \b
    leaklab report RUN                          one run
    leaklab report --before A --after B --out reports/http-agent-fix
    leaklab report                              the latest run, or the latest before/after pair
    leaklab report --fleet runs/fleet           a fleet: every series ranked, the top leakers drawn

    \b
    With no run named: take the latest run under --runs; if its scenario has runs of a
    "fixed" variant (named fixed or fixed-*) and runs of any other variant, report the
    latest other-variant run (before) against the latest fixed run (after); otherwise
    report the latest run alone.

    Exit codes: 0 written (whatever the runs' status), 2 usage error (not a run, bad option).
    """
    from leaklab import store
    from leaklab.report import build, selection

    if fleet_dir:
        if run or before or after:
            raise click.UsageError(
                "--fleet DIR reports a fleet on its own: give no RUN, --before or --after"
            )
        _fleet(fleet_dir, out, warmup, top, as_json)
        return
    if run and (before or after):
        raise click.UsageError("give either RUN or --before/--after, not both")
    if bool(before) != bool(after):
        raise click.UsageError(
            "--before and --after go together: leaklab report --before RUN_A --after RUN_B"
        )
    try:
        if before and after:
            chosen = selection.pair(before, after)
        elif run:
            chosen = selection.single(run)
        else:
            chosen = selection.latest(runs_root)
        result = build.build(chosen, out, limit=limit, warmup=warmup)
    except store.RunFormatError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise terminal.OutputError("the report", exc) from None
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
        return
    for r in result.summary["runs"]:
        terminal.echo(
            f"{r['label']:<24} {r['analysis']['verdict']:<13} {r['path']}"
            + ("" if r["status"] == Status.COMPLETED else f"  ({r['status']})")
        )
    click.echo(f"report    {result.html}")
    click.echo(f"markdown  {result.markdown}")


def _fleet(
    fleet_dir: str, out: str | None, warmup: units.StepsOrDuration | None, top: int, as_json: bool
) -> None:
    import os
    from pathlib import Path

    from leaklab import store
    from leaklab.analysis import fleet
    from leaklab.report import fleet as fleet_report

    try:
        paths = fleet.fleet_runs(fleet_dir)
    except store.RunFormatError as exc:
        raise click.UsageError(str(exc)) from None
    rows = fleet.rank(paths, jobs=os.cpu_count() or 1, warmup=warmup)
    root = Path(fleet_dir)
    out_dir = Path(out) if out else Path("reports") / store.slug(f"fleet-{root.resolve().name}")
    summary = fleet_report.build(rows, root, out_dir, top=top)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"fleet     {summary['runs']} series: "
        + ", ".join(f"{n} {v}" for v, n in summary["verdicts"].items())
    )
    click.echo(f"report    {out_dir / 'report.html'}")
    click.echo(f"markdown  {out_dir / 'report.md'}")
