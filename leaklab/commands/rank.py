"""``leaklab rank``: every run of a fleet folder, ranked by memory growth with its CI and
verdict."""

from __future__ import annotations

import json
import os
import sys

import click

from leaklab import clitypes, units
from leaklab.commands import common_options
from leaklab.kinds import Verdict as Label


def _printable(text: str) -> str:
    """A label as plain text: control characters (escape sequences) shown, not obeyed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _mb_h(value: float) -> str:
    return units.NA if value != value else f"{value:+,.2f}"


@click.command("rank")
@click.argument("runs_dir", type=click.Path(file_okay=False))
@common_options.top("Show only the first N rows (the JSON has every run).")
@common_options.jobs("Runs analysed at once (default: the CPU count).")
@common_options.warmup(clitypes.STEPS_OR_DURATION, "Override the runs' warm-up (10m).")
@common_options.json_flag("Print one JSON object with every row.")
def command(
    runs_dir: str,
    top: int | None,
    jobs: int | None,
    warmup: units.StepsOrDuration | None,
    as_json: bool,
) -> None:
    """Rank the runs under RUNS_DIR (a fleet, e.g. from `leaklab import --prometheus`).

    Runs judged LEAK come first, then the others, each by growth per hour (highest first),
    with the 95% confidence interval and the verdict of each.

    \b
    Exit codes: 0 ranked (whatever the verdicts), 2 RUNS_DIR holds no runs.
    """
    from leaklab import store
    from leaklab.analysis import fleet

    try:
        paths = fleet.fleet_runs(runs_dir)
    except store.RunFormatError as exc:
        raise click.UsageError(str(exc)) from None
    rows = fleet.rank(paths, jobs=jobs or os.cpu_count() or 1, warmup=warmup)
    leaks = sum(r.verdict == Label.LEAK for r in rows)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "runs_dir": runs_dir,
                    "runs": len(rows),
                    "leaks": leaks,
                    "rows": [dict(rank=i, **r.to_dict()) for i, r in enumerate(rows, 1)],
                },
                indent=2,
            )
        )
        sys.exit(0)
    shown = rows[:top] if top else rows
    click.echo(
        f"{'#':>4}  {'verdict':<12} {'MB/h':>10}  {'95% CI (MB/h)':>22}  {'%/h':>9}  "
        f"{'now MB':>8}  series"
    )
    for i, r in enumerate(shown, 1):
        lo, hi = r.ci95_mb_per_hour
        ci = units.format_interval(_mb_h(lo), _mb_h(hi))
        pct = units.NA if r.pct_per_hour != r.pct_per_hour else f"{r.pct_per_hour:+,.1f}"
        now = units.NA if r.last_mb != r.last_mb else f"{r.last_mb:,.1f}"
        click.echo(
            f"{i:>4}  {r.verdict:<12} {_mb_h(r.mb_per_hour):>10}  {ci:>22}  {pct:>9}  "
            f"{now:>8}  {_printable(r.name)}"
        )
    if top and len(rows) > top:
        click.echo(f"      ... {len(rows) - top} more (--json has every run)")
    click.echo(f"{len(rows)} run(s), {leaks} judged LEAK", err=True)
