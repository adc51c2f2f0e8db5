"""click options that several commands share, defined once: the same flag has the same name,
type and default in every command; the help text says what it means for that command.

Each function returns a decorator (``@common_options.json_flag("Print ...")``);
:func:`stack` applies a list of them in the order they are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from leaklab import clitypes, pm2_defaults
from leaklab.runner import supervisor

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def stack(decorators: Sequence[Decorator]) -> Decorator:
    """One decorator applying ``decorators`` as if written above the function in this order."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for one in reversed(decorators):
            fn = one(fn)
        return fn

    return decorate


def json_flag(help: str) -> Decorator:
    """``--json``: machine-readable output on stdout (the value arrives as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def _shown(default: Any) -> dict[str, Any]:
    """The keyword arguments of an option with this default (None: no default, none shown)."""
    return {} if default is None else {"default": default, "show_default": True}


def out_folder(help: str, default: str | None = None) -> Decorator:
    """``--out``/``-o``: the folder a command writes into."""
    return click.option(
        "--out", "-o", type=click.Path(file_okay=False), help=help, **_shown(default)
    )


def top(help: str, default: int | None = None) -> Decorator:
    """``--top``: how many rows of a ranking to show."""
    return click.option("--top", type=click.IntRange(min=1), help=help, **_shown(default))


def runs_folder(dest: str, help: str) -> Decorator:
    """``--runs``: the folder whose latest run is taken when none is named."""
    return click.option(
        "--runs",
        dest,
        default="runs",
        show_default=True,
        type=click.Path(file_okay=False),
        help=help,
    )


def file_path(flag: str, dest: str, help: str) -> Decorator:
    """An option naming one file, not a folder (``--config``, ``--junit-xml``)."""
    return click.option(flag, dest, type=click.Path(dir_okay=False), help=help)


def jobs(help: str) -> Decorator:
    """``-j``/``--jobs``: how many things run at once."""
    return click.option("-j", "--jobs", type=click.IntRange(min=1), help=help)


def duration(help: str) -> Decorator:
    """``--duration``/``-d``: how long to record."""
    return click.option("--duration", "-d", type=clitypes.DURATION, help=help)


def duration_with_default(flag: str, default: str | float, help: str) -> Decorator:
    """An option taking a duration (90s, 15m), with a default shown in the help."""
    return click.option(flag, type=clitypes.DURATION, default=default, show_default=True, help=help)


def warmup(kind: click.ParamType, help: str) -> Decorator:
    """``--warmup``: the start of a recording left out of the analysis."""
    return click.option("--warmup", type=kind, help=help)


def sampling_interval() -> Decorator:
    """``--interval``: the sampling interval of a recording."""
    return duration_with_default("--interval", 0.5, "Sampling interval.")


def signal_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """click callback: a signal option's value as its canonical name (SIGINT), or a usage error."""
    try:
        return supervisor.parse_signal(value).name
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def check_interval(help: str) -> Decorator:
    """``--check-interval``: how often recycling checks memory (PM2's default)."""
    return duration_with_default(
        "--check-interval", f"{pm2_defaults.PM2_CHECK_INTERVAL_S:g}s", help
    )


def kill_signal(help: str) -> Decorator:
    """``--kill-signal``: the signal that asks a recycled process to stop (PM2's default)."""
    return click.option(
        "--kill-signal",
        default=pm2_defaults.PM2_KILL_SIGNAL,
        show_default=True,
        metavar="SIGNAL",
        callback=signal_name,
        help=help,
    )


def restart_mode(flag: str, help: str) -> Decorator:
    """How a recycled process is replaced: PM2's restart (fork mode) or reload (cluster mode)."""
    return click.option(
        flag,
        type=click.Choice(pm2_defaults.MODES),
        default=pm2_defaults.DEFAULT_MODE,
        show_default=True,
        help=help,
    )


def kill_timeout(help: str) -> Decorator:
    """``--kill-timeout``: the longest graceful stop before SIGKILL (PM2's default)."""
    return duration_with_default("--kill-timeout", f"{pm2_defaults.PM2_KILL_TIMEOUT_S:g}s", help)


def request_timeout(default: str, help: str) -> Decorator:
    """``--request-timeout``: how long one HTTP request may take."""
    return duration_with_default("--request-timeout", default, help)
