"""Look-alike (plateau): re's compile cache fills to its 512-pattern bound and evicts.

Look-alike (plateau): the ``re`` module's compile cache fills to its bound (512 patterns on
3.11) and then evicts the oldest entry.

Modelled on python/cpython pull request #3768 (bpo-28293), "The regex cache no longer
completely dump when full": the module-level cache of compiled patterns is bounded by
``re._MAXCACHE`` and, since 3.7, drops the oldest entry instead of clearing itself. Code that
builds a new pattern per call (here: a per-tenant route pattern) makes the cache fill quickly
and then stay at its bound: memory rises for the first few hundred steps and then is flat.

Each step matches a path against a pattern built from the step's tenant id (never the same
twice), through ``re.match`` so the pattern goes through the cache.

Source: https://github.com/python/cpython/pull/3768
Affected: CPython 3.7 and later re module cache (measured on 3.11).
"""

from __future__ import annotations

import re

EXPECTED = "NOT_LEAK"
SHAPE = "plateau"
NATURAL_STEPS = 20_000
SOURCE = "https://github.com/python/cpython/pull/3768"
AFFECTED = "CPython 3.7+ re (measured on 3.11)"


def setup():
    re.purge()
    return {"n": 0}


def step(state):
    state["n"] += 1
    tenant = state["n"]
    pattern = rf"^/tenants/{tenant}/orders/(?P<order>\d+)/items/(?P<item>[a-z0-9-]+)$"
    match = re.match(pattern, f"/tenants/{tenant}/orders/42/items/abc-1")
    return match is not None


def teardown(state):
    re.purge()
