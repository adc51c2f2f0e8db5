"""``leaklab run`` options for service mode and recycling (``--serve``, ``--recycle`` ...).

Kept apart from ``run.py`` so the run command stays readable: :func:`options`
adds them, :func:`config_fields` turns their values into ``RunConfig`` fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from leaklab import clitypes
from leaklab.commands import common_options
from leaklab.runner import load, supervisor

_RECYCLE_ONLY = ("check_interval", "kill_signal", "kill_timeout", "max_restarts", "restart_mode")


def options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the run command with the service and recycling options."""
    return common_options.stack(
        [
            click.option(
                "--serve",
                is_flag=True,
                help="Run the scenario as an HTTP service on 127.0.0.1 (each request is one step) "
                "and send it --rate requests/s for --duration (or --steps requests) from the "
                "parent.",
            ),
            common_options.request_timeout(
                f"{load.DEFAULT_TIMEOUT_S:g}s",
                "With --serve: how long a request may take before it counts as failed.",
            ),
            click.option(
                "--recycle",
                type=clitypes.SIZE,
                metavar="LIMIT",
                help="Restart the child when a check finds its RSS above LIMIT (150MB, 150M), like "
                "PM2's max_memory_restart; crashes are restarted too, with exponential backoff.",
            ),
            common_options.check_interval(
                "With --recycle: how often RSS is checked (30s is PM2's default; shorter catches "
                "the limit sooner)."
            ),
            common_options.kill_signal(
                "With --recycle: the signal that asks the child to stop (PM2's default SIGINT; "
                "SIGKILL for no grace)."
            ),
            common_options.kill_timeout(
                "With --recycle: how long the child may take to stop before SIGKILL (PM2's "
                "default 1.6s)."
            ),
            click.option(
                "--max-restarts",
                type=click.IntRange(min=0),
                default=supervisor.PM2_MAX_RESTARTS,
                show_default=True,
                help=(
                    "With --recycle: consecutive crash restarts before the run fails (PM2's "
                    "default 16)."
                ),
            ),
            common_options.restart_mode(
                "--restart-mode",
                "With --recycle: restart = stop, then start (PM2 fork mode: down until the "
                "new child is healthy); reload = start the new child, move the load to it, then "
                "stop the old one (PM2 cluster mode).",
            ),
        ]
    )(fn)


def config_fields(values: dict[str, Any]) -> dict[str, Any]:
    """``RunConfig`` keyword arguments from the options' values (raises click.UsageError on
    misuse)."""
    ctx = click.get_current_context()
    limit = values.get("recycle")
    if limit is None:
        given = [
            name
            for name in _RECYCLE_ONLY
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"--{given[0].replace('_', '-')} only applies with --recycle LIMIT"
            )
        policy = None
    else:
        try:
            policy = supervisor.RecyclePolicy(
                limit=limit,
                check_interval_s=values["check_interval"],
                kill_signal=values["kill_signal"],
                kill_timeout_s=values["kill_timeout"],
                max_restarts=values["max_restarts"],
                mode=values["restart_mode"],
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    if (
        not values["serve"]
        and ctx.get_parameter_source("request_timeout") is click.core.ParameterSource.COMMANDLINE
    ):
        raise click.UsageError("--request-timeout only applies with --serve")
    return {
        "serve": bool(values["serve"]),
        "request_timeout_s": values["request_timeout"],
        "recycle": policy,
    }
