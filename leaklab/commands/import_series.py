"""``leaklab import``: memory series recorded elsewhere (CSV, mprof, Prometheus) as run
directories."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from leaklab import units
from leaklab.commands import common_options

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".dat": "mprof", ".json": "prometheus"}


def _when(text: str | None, end: float | None) -> float:
    """Epoch seconds from ``now``, epoch seconds, ISO-8601, or (for --start) a duration before
    --end."""
    import pandas as pd

    if text is None or text == "now":
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    if end is not None:
        try:
            return end - units.parse_duration(text)
        except units.UnitError:
            pass
    try:
        stamp = pd.Timestamp(text)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: use now, epoch seconds, ISO-8601 "
            "(2026-12-01T10:00:00Z), or for --start a duration before --end (24h)"
        ) from None


def _restart_drop(text: str) -> float | None:
    if text.lower() in ("off", "none", "no"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise click.BadParameter(
            f"{text!r}: a share between 0 and 1 (0.8), or off", param_hint="--restart-drop"
        )
    return value


@click.command("import")
@click.argument("source", required=False, type=click.Path(dir_okay=False))
@common_options.out_folder("Folder receiving the run directories (one per series).", default="runs")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "mprof", "prometheus"]),
    help=(
        "What SOURCE is (default: by extension: .csv/.tsv csv, .dat mprof, .json a saved "
        "Prometheus answer)."
    ),
)
@click.option("--name", help="The runs' scenario name (default: from the source).")
@click.option(
    "--time",
    "time_col",
    metavar="COLUMN",
    help="CSV: time column, name or position from 1 (default: the first).",
)
@click.option(
    "--memory",
    "memory_col",
    metavar="COLUMN",
    help="CSV: memory column (default: the first other numeric one).",
)
@click.option(
    "--unit",
    default="B",
    show_default=True,
    help="CSV: what a bare number in the memory column is (B, KB, MiB, MB ...).",
)
@click.option(
    "--count",
    "count_col",
    metavar="COLUMN",
    help=(
        "CSV: cumulative work done (requests served): the run's steps; a count that falls "
        "(a process' counters start over) is a restart."
    ),
)
@click.option(
    "--pid", "pid_col", metavar="COLUMN", help="CSV: process id; a new one starts a new generation."
)
@click.option(
    "--start-time",
    "started_col",
    metavar="COLUMN",
    help=(
        "CSV: the process' start time (epoch seconds or ISO-8601, as Prometheus' "
        "process_start_time_seconds); a new one starts a new generation."
    ),
)
@click.option(
    "--series",
    "series_col",
    metavar="COLUMN",
    help="CSV: one run per value of this column (a fleet).",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    metavar="URL",
    help="Query this Prometheus server (http://127.0.0.1:9090).",
)
@click.option(
    "--query",
    help=(
        'Prometheus: the PromQL query (process_resident_memory_bytes{job="api"}); select '
        "process_start_time_seconds too and a new start time is a restart "
        '({__name__=~"process_resident_memory_bytes|process_start_time_seconds",job="api"}).'
    ),
)
@click.option(
    "--start", help="Prometheus: start (ISO-8601, epoch seconds, or a duration before --end: 24h)."
)
@click.option("--end", help="Prometheus: end (ISO-8601, epoch seconds or now)  [default: now]")
@common_options.duration_with_default("--step", "15s", "Prometheus: resolution.")
@click.option(
    "--restart-label",
    "restart_labels",
    multiple=True,
    metavar="LABEL",
    help=(
        "Prometheus: a label whose new value is a restart, not a new member (repeatable; default: "
        "pid)."
    ),
)
@click.option(
    "--restart-drop",
    default="0.8",
    show_default=True,
    help=(
        "Where a series says nothing of its processes (no pid, start time or count): a fall "
        "giving back this share of a generation's rise at once is a restart; off to disable."
    ),
)
@common_options.duration_with_default(
    "--warmup", "0", "Start of each process generation left out of the analysis (10m)."
)
@common_options.json_flag("Print the runs written as JSON.")
def command(
    source: str | None,
    out: str,
    fmt: str | None,
    name: str | None,
    time_col: str | None,
    memory_col: str | None,
    unit: str,
    count_col: str | None,
    pid_col: str | None,
    started_col: str | None,
    series_col: str | None,
    prometheus_url: str | None,
    query: str | None,
    start: str | None,
    end: str | None,
    step: float,
    restart_labels: tuple[str, ...],
    restart_drop: str,
    warmup: float,
    as_json: bool,
) -> None:
    """Import a memory series (or a fleet of them) as run directories under --out.

    \b
    leaklab import memory.csv --time timestamp --memory rss_mb --unit MB --out runs/prod
    leaklab import mprofile_20261201.dat --out runs/laptop
    leaklab import answer.json --out runs/fleet              # a saved /api/v1/query_range answer
    leaklab import --prometheus http://127.0.0.1:9090 --query process_resident_memory_bytes \\
                   --start 24h --step 15s --out runs/fleet

    Then `leaklab analyze RUN`, `leaklab report RUN`, `leaklab plan RUN`, or for a fleet
    `leaklab rank runs/fleet` and `leaklab report --fleet runs/fleet`.

    \b
    Exit codes: 0 imported, 2 the source cannot be imported as asked (nothing is left behind).
    """
    from leaklab.importers import ImportFailed, RestartRule, RunSink, csv_source, mprof, prometheus

    if prometheus_url and source:
        raise click.UsageError("give either SOURCE or --prometheus URL, not both")
    if not prometheus_url and not source:
        raise click.UsageError(
            "give a SOURCE file (CSV, mprof .dat, saved Prometheus JSON) or --prometheus URL "
            "--query Q"
        )
    if prometheus_url and not query:
        raise click.UsageError(
            '--prometheus needs --query (process_resident_memory_bytes{job="api"})'
        )
    kind = (
        "prometheus" if prometheus_url else (fmt or FORMATS.get(Path(str(source)).suffix.lower()))
    )
    if kind is None:
        raise click.UsageError(
            f"cannot tell the format of {source} from its extension: pass --format "
            "csv|mprof|prometheus"
        )
    rule = RestartRule(drop=_restart_drop(restart_drop))
    labels = tuple(restart_labels) or prometheus.DEFAULT_RESTART_LABELS
    end_s = _when(end, None) if prometheus_url else 0.0
    start_s = _when(start or "1h", end_s) if prometheus_url else 0.0
    where = prometheus_url if prometheus_url else str(Path(str(source)).resolve())
    info: dict[str, object] = {"kind": kind, "from": where, "imported": None}
    if prometheus_url:
        info.update(query=query, start=start_s, end=end_s, step=step, restart_labels=list(labels))
    default_name = {"csv": Path(str(source)).stem, "mprof": "mprof", "prometheus": "prometheus"}[
        kind
    ]
    if kind == "prometheus" and query:
        default_name = query.split("{")[0].split("(")[-1].strip() or "prometheus"
    from leaklab import store

    info["imported"] = store.iso(store.utc_now())
    try:
        with RunSink(
            out,
            info,
            name=name or default_name,
            warmup_s=warmup,
            rule=rule,
            counts_steps=bool(count_col),
            argv=["leaklab", *sys.argv[1:]],
        ) as sink:
            if kind == "csv":
                csv_source.import_csv(
                    str(source),
                    sink,
                    csv_source.CsvColumns(
                        time=time_col,
                        memory=memory_col,
                        count=count_col,
                        pid=pid_col,
                        started=started_col,
                        series=series_col,
                        unit=unit,
                    ),
                )
            elif kind == "mprof":
                mprof.import_mprof(str(source), sink)
            elif prometheus_url:
                prometheus.import_live(
                    prometheus_url, str(query), start_s, end_s, step, sink, labels
                )
            else:
                prometheus.import_saved(str(source), sink, labels)
            runs = sink.finish()
    except ImportFailed as exc:
        click.echo(f"leaklab import: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({"out": out, "runs": [str(p) for p in runs]}, indent=2))
        return
    for path in runs:
        click.echo(str(path))
    click.echo(f"imported {len(runs)} series from {kind} into {out}", err=True)
