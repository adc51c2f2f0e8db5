"""``leaklab gate``: run the checks in ``[tool.leaklab.gate]`` and exit 0 (all pass), 1 or 2."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from leaklab import terminal


@click.command("gate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Gate config: a pyproject.toml with [tool.leaklab.gate], or a TOML file with [[checks]]. "
                   "Default: the nearest pyproject.toml.")
@click.option("--check", "names", multiple=True, metavar="NAME", help="Run only this check (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Checks run at once (default: config 'jobs', else half the CPUs).")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False),
              help="Baseline file: fail checks whose growth regressed beyond their tolerance (default: config 'baseline').")
@click.option("--update-baseline", is_flag=True, help="Record this run's figures in the baseline file instead of comparing.")
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Folder receiving the run directories (default: config 'out', else runs/gate).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of lines.")
@click.option("--junit-xml", "junit_path", type=click.Path(dir_okay=False), help="Also write a JUnit XML report here.")
def command(config_path: str | None, names: tuple[str, ...], jobs: int | None, baseline_path: str | None,
            update_baseline: bool, out: str | None, as_json: bool, junit_path: str | None) -> None:
    """Run the regression checks and fail when a fixed leak is back.

    Each check runs its scenario in a child process, analyses the run, and compares
    the growth's 95% confidence interval with its limits: a limit fails only when the
    whole interval is above it.

    \b
    Exit codes: 0 every check passed, 1 a check failed (a limit, a verdict, a baseline
    regression, or its run failed or hit the memory cap), 2 usage or configuration
    error (the offending key is named), 130 interrupted.
    """
    from dataclasses import replace

    from leaklab import gate

    argv = ["leaklab", *sys.argv[1:]]
    try:
        config = gate.select(gate.load_config(config_path), names)
        if out is not None:
            config = replace(config, out=Path(out))
        baseline_file = Path(baseline_path) if baseline_path else config.baseline
        if update_baseline and baseline_file is None:
            raise gate.ConfigError("--update-baseline needs a file: pass --baseline FILE or set baseline = \"...\" "
                                   f"in [{gate.TABLE}]")
        previous = gate.read_baseline(baseline_file) if baseline_file else {}
        prepared = gate.validate_runs(config, argv)
        _check_writable(Path(config.out), "--out (or the config's 'out')")
        if junit_path:
            _check_writable(Path(junit_path).parent, "--junit-xml's folder")
            if Path(junit_path).is_dir():
                raise gate.ConfigError(f"--junit-xml {junit_path} is a folder; name a file")
    except gate.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    compare_with = None if (update_baseline or baseline_file is None) else previous
    workers = jobs or config.jobs or gate.default_jobs()
    if not as_json:
        click.echo(f"leaklab gate: {len(config.checks)} check(s) from {config.path}, {workers} at a time; "
                   f"runs in {config.out}", err=True)

    def show(outcome: gate.Outcome) -> None:
        if as_json:
            return
        colour = "green" if outcome.passed else "red"
        head, _, rest = terminal.safe(outcome.line()).partition("  ")
        click.echo(click.style(head, fg=colour, bold=True) + "  " + rest)
        if not outcome.passed and outcome.run_dir:
            terminal.echo(f"      run: {outcome.run_dir}")

    # SIGTERM (a CI runner cancelling the job) stops the checks as Ctrl-C does: their runs end
    # "interrupted", not "running".
    sigterm_before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        outcomes = gate.run_gate(config, config.checks, prepared, workers, compare_with, on_done=show)
    except KeyboardInterrupt:
        click.echo("leaklab gate: interrupted; stopped the running checks", err=True)
        sys.exit(gate.EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, sigterm_before)

    junit_error: OSError | None = None
    if junit_path:
        try:
            Path(junit_path).parent.mkdir(parents=True, exist_ok=True)
            Path(junit_path).write_bytes(gate.junit_xml(outcomes))
        except OSError as exc:
            junit_error = exc
    if update_baseline and baseline_file is not None:
        written = gate.write_baseline(baseline_file, outcomes, previous)
        if not as_json:
            click.echo(f"baseline: recorded {len(written)} check(s) in {baseline_file}", err=True)
    code = gate.exit_code(outcomes)
    if as_json:
        click.echo(json.dumps(gate.to_json(outcomes, config), indent=2))
    else:
        passed = sum(o.passed for o in outcomes)
        click.echo(f"{passed} of {len(outcomes)} check(s) passed" + ("" if code == 0 else "; the gate fails"))
    if junit_error is not None:  # the result above is printed; the missing file is a usage error
        raise terminal.OutputError("the JUnit XML report", junit_error)
    sys.exit(code)


def _check_writable(folder: Path, what: str) -> None:
    """Fail before any check runs when ``folder`` cannot be created or written."""
    from leaklab import gate

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise gate.ConfigError(f"{what}: cannot create {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise gate.ConfigError(f"{what}: {folder} is not writable")
