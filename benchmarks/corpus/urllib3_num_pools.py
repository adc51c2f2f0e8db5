"""Look-alike (plateau): urllib3 PoolManager keeps at most num_pools pools (LRU).

Look-alike (plateau): urllib3's PoolManager keeps at most ``num_pools`` connection pools and
evicts the least recently used one; many distinct hosts fill it and then it stays at its bound.

Modelled on urllib3/urllib3 issue #1252, "PoolManager is not thread-safe": the discussion
shows the PoolManager's pools live in an LRU container of ``num_pools`` entries, and a pool for
a further host evicts (and closes) the oldest. A crawler talking to ever new hosts therefore
has a bounded number of pools.

Each step asks a PoolManager (num_pools=500) for the pool of a new origin (a new port on
127.0.0.1; no connection is opened: the pool is created on demand and connects only on a
request). The manager fills after 500 steps and then evicts one pool per step.

Source: https://github.com/urllib3/urllib3/issues/1252
Affected: urllib3 1.x PoolManager (discussed 2017-2021) and 2.8.0 (measured).
"""

from __future__ import annotations

import urllib3

EXPECTED = "NOT_LEAK"
SHAPE = "plateau"
NATURAL_STEPS = 20_000
SOURCE = "https://github.com/urllib3/urllib3/issues/1252"
AFFECTED = "urllib3 1.x (discussed) to 2.8.0 (measured)"


def setup():
    return {"manager": urllib3.PoolManager(num_pools=500, maxsize=1), "n": 0}


def step(state):
    state["n"] += 1
    port = 1024 + state["n"] % 60_000
    pool = state["manager"].connection_from_host("127.0.0.1", port=port, scheme="http")
    return pool.port


def teardown(state):
    state["manager"].clear()
