"""Look-alike (plateau): lru_cache(maxsize=200_000) fills, then evicts; memory stops growing.

Look-alike (plateau): ``functools.lru_cache(maxsize=...)`` fills up and then evicts; memory
rises while it fills and is flat afterwards.

Modelled on python/cpython issue #148459, "Memory leak when use lru_cache": memory grew while
an ``lru_cache(maxsize=100_000)`` filled; the maintainers showed the cache is bounded and a
plain dict cache uses the same memory (the report's growth came from ever larger int values).
Here the cached values have a constant size, so what a run shows is the fill and then a flat
level.

Each step calls the cached function with a new argument; the cache holds 200,000 entries
(each a ~200-byte result), full after 200,000 steps, a fifth of the natural run.

Source: https://github.com/python/cpython/issues/148459
Affected: CPython 3.14 (reported), same bound behaviour on 3.11 (measured).
"""

from __future__ import annotations

from functools import lru_cache

EXPECTED = "NOT_LEAK"
SHAPE = "plateau"
NATURAL_STEPS = 1_000_000
SOURCE = "https://github.com/python/cpython/issues/148459"
AFFECTED = "CPython 3.14 (reported), 3.11 (measured)"


@lru_cache(maxsize=200_000)
def price_quote(n: int) -> str:
    return f"quote {n}: " + "x" * 180


def setup():
    price_quote.cache_clear()
    return {"n": 0}


def step(state):
    state["n"] += 1
    return len(price_quote(state["n"]))


def teardown(state):
    price_quote.cache_clear()
