"""Asyncio leak: an executor keeps every future it made (graphql-core AsyncioExecutor).

Asyncio leak: an executor keeps every future it created in a list that is only cleared by a
method the async path never calls (graphql-core AsyncioExecutor).

Modelled on graphql-python/graphql-core-legacy issue #104, "AsyncioExecutor stores every
future after executing with no automatic clearing": ``execute`` appends each resolver's future
to ``self.futures``, cleared only in ``wait_until_finished()``, which is not called with
``return_promise=True`` (the only way to use it inside a running loop). One executor reused
for every query keeps every future and its result.

Each step runs one "query" with three resolvers through one long-lived executor; each resolver
returns a small result dict that stays reachable from its done future.

Source: https://github.com/graphql-python/graphql-core-legacy/issues/104
Affected: graphql-core 1.x (reported 2017-02); fixed by a 2018 commit linked in the issue.
"""

from __future__ import annotations

import asyncio

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 40_000
SOURCE = "https://github.com/graphql-python/graphql-core-legacy/issues/104"
AFFECTED = "graphql-core 1.x (2017-02; fixed 2018)"
PER_STEP_BYTES = 2_950


class AsyncioExecutor:
    """The executor's bookkeeping as in the report."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future] = []

    def execute(self, fn, *args):
        future = asyncio.ensure_future(fn(*args))
        self.futures.append(future)  # never cleared with return_promise=True
        return future


async def _resolve(field: str, n: int) -> dict:
    await asyncio.sleep(0)
    return {"field": field, "id": n, "value": f"{field}-{n}" * 4}


async def setup():
    return {"executor": AsyncioExecutor(), "n": 0}


async def step(state):
    state["n"] += 1
    executor = state["executor"]
    fields = [executor.execute(_resolve, name, state["n"]) for name in ("user", "posts", "friends")]
    await asyncio.gather(*fields)


async def teardown(state):
    state["executor"].futures.clear()
