"""The ``leaklab`` command: a thin click group; each subcommand lives in ``leaklab/commands/``.

Exit codes (all commands): 0 success; 1 the thing measured failed (scenario raised, a
gate check failed); 2 usage or configuration error; 3 the run was killed at the
memory cap; 130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import click

from leaklab import __version__, commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="leaklab")
def cli() -> None:
    """Reproduce, measure, explain and guard against memory leaks.

    \b
    leaklab list                          scenarios you can run
    leaklab run http-agent --variant leaky --duration 60s --rate 200/s
    leaklab run path/to/my_scenario.py --steps 20000 --json
    """
    _show_skipped_runs()


def _show_skipped_runs() -> None:
    """A malformed run skipped by a command that reads many runs: one line on stderr."""
    from leaklab import store, terminal

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, store.MalformedRunWarning):
            terminal.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="leaklab")


if __name__ == "__main__":
    main()
