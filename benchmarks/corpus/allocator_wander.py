"""Look-alike (allocator wander): short-lived threads and glibc arenas move RSS without a trend.

Look-alike (allocator wander): worker threads come and go, each allocating and freeing
megabytes of buffers; glibc's per-thread arenas make RSS drift up and down without a trend
while Python's allocated blocks stay flat.

Modelled on dask/dask issue #3530, "Memory leak with Numpy arrays and the threaded
scheduler": numpy temporaries made on pool threads left RSS hundreds of MB higher after the
work finished; the discussion traced it to glibc malloc arenas (``MALLOC_ARENA_MAX=1`` changes
the picture), not to retained objects. Each step here runs one "task graph" on a short-lived
pool (``with ThreadPoolExecutor``: threads start and exit every step), so arenas are created,
grown, trimmed and reused as threads come and go.

Each step: a 4-thread pool computes four chunks, each thread allocating ~1-3 MB of numpy
temporaries (sizes vary with the step), reduces them to a number and exits.

Source: https://github.com/dask/dask/issues/3530
Affected: dask threaded scheduler with numpy on glibc as of 2018-05 (reported); any threaded
glibc program.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

EXPECTED = "NOT_LEAK"
SHAPE = "wander"
NATURAL_STEPS = 600
SOURCE = "https://github.com/dask/dask/issues/3530"
AFFECTED = "dask threaded scheduler on glibc (2018-05)"


def _chunk(seed: int) -> float:
    rng = np.random.default_rng(seed)
    n = 131_072 + (seed * 7919) % 262_144  # 1-3 MB of float64
    a = rng.standard_normal(n)
    b = a * 2.0 + 1.0
    return float((a * b).sum())


def setup():
    return {"n": 0}


def step(state):
    state["n"] += 1
    seeds = [state["n"] * 4 + i for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return sum(pool.map(_chunk, seeds))
