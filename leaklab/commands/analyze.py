"""``leaklab analyze``: growth per signal, a confidence interval and a verdict for a recorded
run."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import click

from leaklab import terminal, units
from leaklab.commands import common_options


@click.command("analyze")
@click.argument("run", required=False)
@common_options.runs_folder(
    "runs_dir", "Folder whose latest run is analysed when RUN is not given."
)
@click.option(
    "--warmup", help="Override the run's warm-up: steps (1000), time (10s), or 0 for none."
)
@click.option(
    "--min-growth",
    "min_growth",
    multiple=True,
    metavar="RATE",
    help="Growth that counts as a leak, per step and/or per time (16B/step, 1MB/h); repeatable. "
    "Defaults: 16B/step and 1MB/h.",
)
@common_options.json_flag("Print one JSON object on stdout.")
def command(
    run: str | None, runs_dir: str, warmup: str | None, min_growth: tuple[str, ...], as_json: bool
) -> None:
    """Analyse RUN (a run directory; default: the latest under --runs).

    \b
    Exit codes: 0 analysed (whatever the verdict), 2 usage error (not a run, bad option).
    """
    from leaklab import store
    from leaklab.analysis import Thresholds, WarmupError, analyze
    from leaklab.report.text import format_summary

    thresholds = Thresholds()
    for text in min_growth:
        try:
            limit = units.parse_growth(text)
        except units.UnitError as exc:
            raise click.BadParameter(str(exc), param_hint="--min-growth") from None
        if limit.bytes_per_step is not None:
            thresholds = replace(thresholds, min_bytes_per_step=limit.bytes_per_step)
        else:
            thresholds = replace(
                thresholds, min_mb_per_hour=(limit.bytes_per_s or 0.0) * 3600 / 1e6
            )
    try:
        path = run if run is not None else store.latest_run(runs_dir)
        data = store.read_run(path, warn=False)
        analysis = analyze(data, warmup=warmup, thresholds=thresholds)
    except store.RunFormatError as exc:
        raise click.UsageError(store.usage_hint(run, exc)) from None
    except WarmupError as exc:
        raise click.BadParameter(str(exc), param_hint="--warmup") from None
    if as_json:
        click.echo(json.dumps(analysis.to_dict(), indent=2, default=str))
    else:
        terminal.echo(f"run       {data.path}")
        terminal.echo(format_summary(analysis))
    sys.exit(0)
