"""``meta.json`` as a run starts: who ran what, where, with which options.

:func:`build_meta` lays out the fields every run shares (the scenario run, a command run,
a watch); each kind of run adds its own ``config`` (:func:`scenario_config` and
:func:`length_config` here, ``command_config`` in :mod:`leaklab.runner.command`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from importlib import metadata
from typing import TYPE_CHECKING, Any

import psutil

from leaklab import records, store
from leaklab.kinds import Status

if TYPE_CHECKING:
    from leaklab.runner.parent import Prepared, RunConfig

#: Packages whose versions a run records (besides Python and leaklab).
VERSIONED = (
    "psutil",
    "click",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "aiohttp",
    "requests",
    "urllib3",
    "httpx",
    "objgraph",
    "pympler",
    "memray",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("leaklab", *VERSIONED):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "memory_total": psutil.virtual_memory().total,
    }


def build_meta(
    about: dict[str, Any],
    argv: list[str],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``meta.json`` of a run that starts now: ``about`` (scenario, variant ...) first, then
    the command line, versions, host and times, ``extra`` (a watch's source), its ``config``.

    ``config`` is checked against :class:`leaklab.records.RunSettings` here, as it is written
    (a wrong type fails the run's start, not a later read); the file keeps exactly its fields."""
    records.RunSettings.from_dict(config, "meta.json config")
    return {
        **about,
        "argv": argv,
        "versions": versions(),
        "host": host(),
        "start": store.iso(store.utc_now()),
        "end": None,
        "status": Status.RUNNING.value,
        **(extra or {}),
        "config": config,
        "counters": {},
    }


def length_config(config: RunConfig, prepared: Prepared) -> dict[str, Any]:
    """The ``config`` fields of how long a run goes and how it is sampled (scenario and command
    runs)."""
    return {
        "duration_s": prepared.duration_s,
        "steps": prepared.steps,
        "rate": prepared.rate,
        "interval_s": config.interval_s,
        "sample_interval_s": prepared.sample_interval_s,
        "until_confident": prepared.until_confident,
        "stop_rule": config.stop_rule.describe()
        if prepared.until_confident and config.stop_rule
        else None,
        "warmup": prepared.warmup,
        "max_rss": prepared.max_rss,
    }


def scenario_config(
    config: RunConfig, prepared: Prepared, load: dict[str, Any] | None
) -> dict[str, Any]:
    """``meta.json`` ``config`` of a scenario run."""
    return {
        **length_config(config, prepared),
        "grace_s": config.grace_s if prepared.duration_s is not None else None,
        "include_children": config.include_children,
        "profile": config.profile,
        "probes": config.probes,
        "max_errors": config.max_errors,
        "serve": config.serve,
        "recycle": config.recycle.to_dict() if config.recycle else None,
        "load": load,
    }


def scenario_meta(
    config: RunConfig, prepared: Prepared, load: dict[str, Any] | None
) -> dict[str, Any]:
    """``meta.json`` of a scenario run as it starts."""
    scenario = prepared.scenario
    about = {
        "scenario": scenario.name,
        "scenario_path": str(scenario.path),
        "description": scenario.description,
        "variant": prepared.variant,
        "params": prepared.params,
    }
    return build_meta(about, config.argv, scenario_config(config, prepared, load))
