"""``leaklab run`` options that choose the probes: ``--profile``, ``--probe``, ``--snapshot-every``.

Kept apart from ``run.py`` as the service and command options are: :func:`options` adds
them, :func:`config_fields` turns their values into ``RunConfig`` fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from leaklab import clitypes, probes, units
from leaklab.commands import common_options


def options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate the run command with the probe options."""
    return common_options.stack(
        [
            click.option(
                "--profile",
                type=click.Choice(list(probes.PROFILES)),
                default=probes.DEFAULT_PROFILE,
                show_default=True,
                help="Probe level: rss (outside sampling only), default (names the culprit "
                "cheaply), deep.",
            ),
            click.option(
                "--probe",
                "probe_names",
                multiple=True,
                metavar="NAME[,NAME]",
                help="Add probes by name (repeatable or comma-separated).",
            ),
            click.option(
                "--snapshot-every",
                type=clitypes.STEPS_OR_DURATION,
                help="Snapshot cadence for snapshotting probes: steps (5000) or time (10s).",
            ),
        ]
    )(fn)


def config_fields(
    profile: str, probe_names: tuple[str, ...], snapshot_every: units.StepsOrDuration | None
) -> dict[str, Any]:
    """``RunConfig`` keyword arguments from the options' values (raises KeyError for an unknown
    probe)."""
    explicit = [name.strip() for item in probe_names for name in item.split(",") if name.strip()]
    probe_options: dict[str, Any] = {}
    if snapshot_every is not None:
        probe_options["snapshot_every"] = {
            "steps": snapshot_every.steps,
            "seconds": snapshot_every.seconds,
        }
    return {
        "probes": probes.resolve(profile, explicit),
        "probe_options": probe_options,
        "profile": profile,
    }
