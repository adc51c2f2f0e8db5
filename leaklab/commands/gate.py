"""``leaklab gate``: run the checks in ``[tool.leaklab.gate]`` and exit 0 (all pass), 1 or 2."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from leaklab import terminal
from leaklab.commands import common_options


def _write_outputs(
    document: dict[str, Any], junit: bytes, json_path: str | None, junit_path: str | None
) -> None:
    """The JSON document and the JUnit report, where asked for (folders created)."""
    for path, data in (
        (json_path, (json.dumps(document, indent=2) + "\n").encode()),
        (junit_path, junit),
    ):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(data)


@click.group("gate", invoke_without_command=True)
@common_options.file_path(
    "--config",
    "config_path",
    "Gate config: a pyproject.toml with [tool.leaklab.gate], or a TOML file with [[checks]]. "
    "Default: the nearest pyproject.toml.",
)
@click.option(
    "--check", "names", multiple=True, metavar="NAME", help="Run only this check (repeatable)."
)
@common_options.jobs("Checks run at once (default: config 'jobs', else half the CPUs).")
@common_options.file_path(
    "--baseline",
    "baseline_path",
    "Baseline file: fail checks whose growth regressed beyond their tolerance (default: "
    "config 'baseline').",
)
@click.option(
    "--update-baseline",
    is_flag=True,
    help="Record this run's figures in the baseline file instead of comparing.",
)
@common_options.out_folder(
    "Folder receiving the run directories (default: config 'out', else runs/gate)."
)
@common_options.json_flag("Print one JSON object on stdout instead of lines.")
@common_options.file_path("--junit-xml", "junit_path", "Also write a JUnit XML report here.")
@common_options.file_path(
    "--json-out",
    "json_path",
    "Also write the JSON document here (what `leaklab gate merge` reads).",
)
@click.option(
    "--shard",
    "shard_text",
    metavar="K/N",
    help="Run only the K-th of N stable shares of the checks (a CI matrix of N runners).",
)
@click.pass_context
def command(
    ctx: click.Context,
    config_path: str | None,
    names: tuple[str, ...],
    jobs: int | None,
    baseline_path: str | None,
    update_baseline: bool,
    out: str | None,
    as_json: bool,
    junit_path: str | None,
    json_path: str | None,
    shard_text: str | None,
) -> None:
    """Run the regression checks and fail when a fixed leak is back.

    Each check runs its scenario in a child process, analyses the run, and compares
    the growth's 95% confidence interval with its limits: a limit fails only when the
    whole interval is above it.

    \b
    Exit codes: 0 every check passed, 1 a check failed (a limit, a verdict, a baseline
    regression, or its run failed or hit the memory cap), 2 usage or configuration
    error (the offending key is named), 130 interrupted.

    \b
    In a CI matrix: `leaklab gate --shard K/N --json-out gate-K.json --junit-xml gate-K.xml`
    on each of N runners, then `leaklab gate merge gate-*.json gate-*.xml` (see docs/ci.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import replace

    from leaklab import gate
    from leaklab.gate import shard as shard_mod

    argv = ["leaklab", *sys.argv[1:]]
    shard_info = None
    try:
        config = gate.select(gate.load_config(config_path), names)
        if shard_text is not None:
            shard = shard_mod.parse_shard(shard_text)
            all_names = [c.name for c in config.checks]
            config = shard_mod.select_shard(config, shard)
            shard_info = shard.to_dict(shard_mod.shard_names(all_names, shard))
        if out is not None:
            config = replace(config, out=Path(out))
        baseline_file = Path(baseline_path) if baseline_path else config.baseline
        if update_baseline and baseline_file is None:
            raise gate.ConfigError(
                '--update-baseline needs a file: pass --baseline FILE or set baseline = "..." '
                f"in [{gate.TABLE}]"
            )
        previous = gate.read_baseline(baseline_file) if baseline_file else {}
        prepared = gate.validate_runs(config, argv)
        _check_writable(Path(config.out), "--out (or the config's 'out')")
        for option, path in (("--junit-xml", junit_path), ("--json-out", json_path)):
            if path:
                _check_writable(Path(path).parent, f"{option}'s folder")
                if Path(path).is_dir():
                    raise gate.ConfigError(f"{option} {path} is a folder; name a file")
    except gate.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    compare_with = None if (update_baseline or baseline_file is None) else previous
    workers = jobs or config.jobs or gate.default_jobs()
    if not as_json:
        share = f" (shard {shard_text})" if shard_info else ""
        click.echo(
            f"leaklab gate: {len(config.checks)} check(s) from {config.path}{share}, {workers} at "
            f"a time; runs in {config.out}",
            err=True,
        )

    def show(outcome: gate.Outcome) -> None:
        if as_json:
            return
        colour = "green" if outcome.passed else "red"
        head, _, rest = terminal.safe(outcome.line()).partition("  ")
        click.echo(click.style(head, fg=colour, bold=True) + "  " + rest)
        if not outcome.passed and outcome.run_dir:
            terminal.echo(f"      run: {outcome.run_dir}")

    # SIGTERM (a CI runner cancelling the job) stops the checks as Ctrl-C does: their runs end
    # "interrupted", not "running". SIGINT is set too, as `leaklab run` sets it: a job started in
    # the background of a shell inherits it ignored, and Python then installs no handler.
    handlers_before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers_before:
        signal.signal(sig, signal.default_int_handler)
    try:
        outcomes = gate.run_gate(
            config, config.checks, prepared, workers, compare_with, on_done=show
        )
    except KeyboardInterrupt:
        click.echo("leaklab gate: interrupted; stopped the running checks", err=True)
        sys.exit(gate.EXIT_INTERRUPTED)
    finally:
        for sig, handler in handlers_before.items():
            signal.signal(sig, handler)

    if update_baseline and baseline_file is not None:
        written = gate.write_baseline(baseline_file, outcomes, previous)
        if not as_json:
            click.echo(f"baseline: recorded {len(written)} check(s) in {baseline_file}", err=True)
    code = gate.exit_code(outcomes)
    document = gate.to_json(outcomes, config, shard_info)
    output_error: OSError | None = None
    try:
        _write_outputs(document, gate.junit_xml(outcomes, shard_info), json_path, junit_path)
    except OSError as exc:
        output_error = exc
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        passed = sum(o.passed for o in outcomes)
        click.echo(
            f"{passed} of {len(outcomes)} check(s) passed"
            + ("" if code == 0 else "; the gate fails")
        )
    if output_error is not None:  # the result above is printed; the missing file is a usage error
        raise terminal.OutputError("the JSON or JUnit XML report", output_error)
    sys.exit(code)


@command.command("merge")
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False))
@common_options.file_path("--junit-xml", "junit_path", "Write the merged JUnit XML report here.")
@common_options.file_path("--json-out", "json_path", "Write the merged JSON document here.")
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A shard's baseline file (repeatable); merged into --baseline-out.",
)
@common_options.file_path("--baseline-out", "baseline_out", "Write the merged baseline file here.")
@common_options.json_flag("Print the merged JSON document on stdout.")
def merge_command(
    inputs: tuple[str, ...],
    junit_path: str | None,
    json_path: str | None,
    baselines: tuple[str, ...],
    baseline_out: str | None,
    as_json: bool,
) -> None:
    """Combine sharded gate outputs (INPUTS: --json-out documents, --junit-xml reports) into one
    verdict.

    \b
    leaklab gate merge gate-1.json gate-2.json gate-3.json --junit-xml gate.xml
    leaklab gate merge gate-*.xml --baseline base-1.json --baseline base-2.json --baseline-out
    .leaklab-baseline.json

    \b
    Exit codes: 0 every check of every shard passed, 1 a check failed, 2 an input is
    missing or unreadable, a shard is missing or given twice, or a check ran in two shards.
    """
    from leaklab import gate, store
    from leaklab.gate import merge as merge_mod

    if not inputs and not baselines:
        raise click.UsageError(
            "give the shards' outputs: leaklab gate merge gate-1.json gate-2.json ..."
        )
    if baselines and not baseline_out:
        raise click.UsageError(
            "--baseline needs --baseline-out FILE (where the merged baseline goes)"
        )
    try:
        merged = merge_mod.merge(inputs) if inputs else None
        baseline_doc = merge_mod.merge_baselines(baselines) if baselines else None
    except gate.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if baseline_doc is not None and baseline_out:
        Path(baseline_out).parent.mkdir(parents=True, exist_ok=True)
        store.write_json_atomic(Path(baseline_out), baseline_doc)
        click.echo(f"baseline: {len(baseline_doc['checks'])} check(s) in {baseline_out}", err=True)
    if merged is None:
        sys.exit(0)
    document = merged.to_json()
    _write_outputs(document, merge_mod.junit_xml(merged), json_path, junit_path)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        for check in document["checks"]:
            status = check.get("status", "?")
            colour = "green" if status == "pass" else "red"
            head = "PASS" if status == "pass" else "FAIL"
            texts = (
                "; ".join(
                    ("FAILED " if j.get("outcome") == "fail" else "") + str(j.get("text", ""))
                    for j in check.get("judgements") or []
                )
                or check.get("message")
                or ""
            )
            click.echo(
                click.style(head, fg=colour, bold=True)
                + f"  {check['name']}"
                + (f": {texts}" if texts else "")
            )
        shards = document["shards"]
        across = f" across {len(shards)} shard(s)" if shards else ""
        s = document["summary"]
        click.echo(
            f"{s['passed']} of {s['checks']} check(s) passed{across}"
            + ("" if merged.exit_code == 0 else "; the gate fails")
        )
    sys.exit(merged.exit_code)


def _check_writable(folder: Path, what: str) -> None:
    """Fail before any check runs when ``folder`` cannot be created or written."""
    from leaklab import gate

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise gate.ConfigError(f"{what}: cannot create {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise gate.ConfigError(f"{what}: {folder} is not writable")
