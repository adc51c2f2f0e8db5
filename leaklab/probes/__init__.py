"""In-child probes: one module per probe behind the small :class:`Probe` interface.

The child's step loop calls every active probe at fixed points:

* ``start(ctx)`` once, after ``setup`` and before the first step;
* ``warmup_end(ctx)`` once, when the warm-up is over (the baseline moment);
* ``sample(ctx)`` at every sample: cheap, returns extra sample columns (``columns``);
* ``tick(ctx)`` right after each sample: may take a snapshot when one is due;
* ``finish(ctx)`` once, after the last step and before ``teardown`` (deep work goes here).

A probe must never keep references to the scenario's objects after it returns:
it would change the memory behaviour it measures. A probe that raises is
recorded as a ``probe_error`` event and switched off; the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class ProbeContext:
    """What a probe may use: where to write, how to emit events, and the run's progress."""

    artifacts: Path
    emit: Callable[..., None]  # emit(kind, **fields) -> an event in events.jsonl
    options: dict[str, Any] = field(default_factory=dict)
    state: Any = None  # the scenario's state (read-only use; do not keep it)
    steps: int = 0
    t: float = 0.0
    warmup_done: bool = False


class Probe:
    name: str = ""
    columns: tuple[str, ...] = ()

    def start(self, ctx: ProbeContext) -> None:
        pass

    def warmup_end(self, ctx: ProbeContext) -> None:
        pass

    def sample(self, ctx: ProbeContext) -> dict[str, float]:
        return {}

    def tick(self, ctx: ProbeContext) -> None:
        pass

    def finish(self, ctx: ProbeContext) -> None:
        pass


#: name -> "module:Class", imported only when the probe is asked for.
REGISTRY: dict[str, str] = {}

#: profile level -> probe names.
PROFILES: dict[str, tuple[str, ...]] = {"rss": (), "default": (), "deep": ()}
DEFAULT_PROFILE = "default"


def resolve(profile: str | None, explicit: list[str] | None) -> list[str]:
    """Probe names for ``--profile`` plus ``--probe`` (explicit probes are added, in order)."""
    names = list(PROFILES[profile or DEFAULT_PROFILE])
    for name in explicit or []:
        probe_class(name)
        if name not in names:
            names.append(name)
    return names


def probe_class(name: str) -> type[Probe]:
    import importlib

    if name not in REGISTRY:
        raise KeyError(f"unknown probe {name!r}; known probes: {', '.join(sorted(REGISTRY)) or '(none)'}")
    module_name, _, class_name = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(name: str) -> Probe:
    return probe_class(name)()


def columns_of(names: list[str]) -> list[str]:
    """The extra sample columns the named probes add, in order."""
    return [column for name in names for column in probe_class(name).columns]
