"""Warnings leak: a warning text with data in it adds a registry entry per distinct text.

Warnings-registry leak: a warning whose text contains changing data adds one entry per
distinct text to the calling module's ``__warningregistry__``.

Modelled on python/cpython issue #97557, "Memory leak: warnings module": calling
``warnings.warn(str(random.random()), ...)`` in a loop grows memory without bound, because the
registry of the module that warns keys "already shown" entries by (text, category, line).
Libraries that put values into warning texts (aiomysql in the report) make a service leak.

Each step issues one UserWarning whose text contains the row id (the default action, "show
once per location and text"); shown warnings go to a no-op ``showwarning`` so the run's log
stays small, which does not change what the registry keeps.

Source: https://github.com/python/cpython/issues/97557
Affected: CPython 3.9 (reported) and 3.11 (measured); the issue is open.
"""

from __future__ import annotations

import warnings

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 300_000
SOURCE = "https://github.com/python/cpython/issues/97557"
AFFECTED = "CPython 3.9, 3.11 warnings (issue open)"
PER_STEP_BYTES = 196


def _drop(*args, **kwargs) -> None:
    pass


def setup():
    previous = warnings.showwarning
    warnings.showwarning = _drop
    return {"n": 0, "previous": previous}


def step(state):
    state["n"] += 1
    warnings.warn(
        f"Data truncated for column 'note' at row {state['n']}", UserWarning, stacklevel=1
    )


def teardown(state):
    warnings.showwarning = state["previous"]
    globals().get("__warningregistry__", {}).clear()
