"""Fast leak: lru_cache on a method keeps every instance and its 64 KB of data (ipfx).

Fast, big leak: ``functools.lru_cache`` on a method keeps every instance (``self`` is part of
the key), and with it each instance's loaded data.

Modelled on AllenInstitute/ipfx issue #495, "Memory leak due to LRU cache in method of
EphysNWBData": a ``@lru_cache``-decorated method of the data-set class keeps every data set
alive through the cache key, so the sweeps (numpy arrays) of every file opened stay in memory.
The same cause is fixed in PyCQA/flake8 pull request #1573.

Each step opens one data set holding a 64 KB sweep (a float64 numpy array) and reads one sweep
through the cached method; the data set is then dropped by the caller but stays in the cache
(maxsize=None, as in the report).

Source: https://github.com/AllenInstitute/ipfx/issues/495
Affected: ipfx as released when reported (2021-02), fixed afterwards by removing the cache.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EXPECTED = "LEAK"
SHAPE = "fast"
NATURAL_STEPS = 3_000
SOURCE = "https://github.com/AllenInstitute/ipfx/issues/495"
AFFECTED = "ipfx as of 2021-02"
PER_STEP_BYTES = 66_000

_SWEEP_SAMPLES = 8_192  # 64 KB of float64


class EphysNWBData:
    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.sweeps = {0: rng.standard_normal(_SWEEP_SAMPLES)}

    @lru_cache(maxsize=None)  # noqa: B019, UP033 - the bug being reproduced, as written there
    def get_sweep_data(self, sweep_number: int) -> dict:
        response = self.sweeps[sweep_number]
        return {"response": response, "sampling_rate": 50_000.0}


def setup():
    return {"n": 0}


def step(state):
    state["n"] += 1
    data_set = EphysNWBData(state["n"])
    sweep = data_set.get_sweep_data(0)
    return float(sweep["response"][:16].sum())


def teardown(state):
    EphysNWBData.get_sweep_data.cache_clear()
