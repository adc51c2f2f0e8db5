"""``leaklab run -- CMD ARGS...`` options (``--load``, ``--health`` ...) and their checks.

Kept apart from ``run.py`` as the service options are: :class:`RunCommand` splits the
program's own arguments off at ``--`` (click never parses them), :func:`options` adds
the options, :func:`check` rejects the scenario-only ones when a command is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from leaklab.commands import common_options

#: Where RunCommand leaves the program's argv in ``ctx.meta``.
ARGV_KEY = "leaklab.command"
_SCENARIO_ONLY = ("variant", "params", "scenario_dirs", "max_errors", "serve", "include_children")
_COMMAND_ONLY = ("load", "health", "ready_timeout", "bootstrap")


class RunCommand(click.Command):
    """``leaklab run [OPTIONS] -- CMD ARGS...``: everything after ``--`` is the program's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta[ARGV_KEY] = args[split + 1 :]
            args = args[:split]
        return super().parse_args(ctx, args)


def options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return common_options.stack(
        [
            click.option(
                "--load",
                metavar="URL",
                help="With -- CMD: send --rate HTTP GET requests/s to URL on 127.0.0.1 "
                "(http://127.0.0.1:{port}/path); {port} here and in CMD is a free port chosen "
                "for each start of the program.",
            ),
            click.option(
                "--health",
                metavar="PATH",
                help="With -- CMD: the program is ready when PATH answers 200 (default: /health "
                "when it answers 200, else the first 2xx/3xx answer to the load's path).",
            ),
            common_options.duration_with_default(
                "--ready-timeout",
                "30s",
                "With -- CMD: how long the program may take to listen and answer its health check.",
            ),
            click.option(
                "--bootstrap/--no-bootstrap",
                default=True,
                show_default=True,
                help="With -- CMD: start the in-process probes in the program's Python processes.",
            ),
        ]
    )(fn)


def command_argv() -> list[str] | None:
    """The program's argv when the command line has ``-- CMD ...``, else None."""
    return click.get_current_context().meta.get(ARGV_KEY)


def check(scenario: str | None, argv: list[str] | None) -> None:
    """Reject options that belong to the other mode (raises click.UsageError)."""
    ctx = click.get_current_context()
    given = {
        name
        for name in (*_SCENARIO_ONLY, *_COMMAND_ONLY)
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }
    if argv is None:
        if scenario is None:
            raise click.UsageError(
                "give a SCENARIO, or a program after --: leaklab run [OPTIONS] -- CMD ARGS..."
            )
        wrong = [n for n in _COMMAND_ONLY if n in given]
        if wrong:
            raise click.UsageError(
                f"--{wrong[0].replace('_', '-')} only applies to a program: leaklab run "
                "[OPTIONS] -- CMD ARGS..."
            )
        return
    if scenario is not None:
        raise click.UsageError(
            f"give either a SCENARIO ({scenario!r}) or a program after --, not both"
        )
    if not argv:
        raise click.UsageError("nothing after --: leaklab run [OPTIONS] -- CMD ARGS...")
    wrong = [n for n in _SCENARIO_ONLY if n in given]
    if wrong:
        name = {"params": "param", "scenario_dirs": "scenarios"}.get(wrong[0], wrong[0]).replace(
            "_", "-"
        )
        raise click.UsageError(
            f"--{name} applies to scenarios, not to a program run with -- CMD"
            + (" (--load URL serves the program)" if wrong[0] == "serve" else "")
        )
