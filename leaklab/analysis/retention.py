"""Retention chains as recorded by the ``retention`` probe: who holds the growing objects.

A chain runs from a root (a module global, a class attribute, the scenario's
state, a running frame) to a sampled instance of a growing type::

    aiohttp_registry._REGISTRY -> dict -> RequestRecord

:func:`chains_of` reads them from a run; :mod:`leaklab.chain_graph` draws one again,
for a run recorded where Graphviz was missing.
"""

from __future__ import annotations

from typing import Any

from leaklab import store
from leaklab.kinds import EventKind


def chains_of(run: store.RunData) -> list[dict[str, Any]]:
    """The last search per type (a later on-demand or final search replaces an earlier one)."""
    latest: dict[str, dict[str, Any]] = {}
    for event in run.events_of(EventKind.RETENTION_CHAIN):
        name = event.get("object_type")
        if isinstance(name, str):
            latest[name] = event
    return list(latest.values())
