"""Look-alike: background tasks held in a set discard themselves when done.

Look-alike (flat): background tasks are kept in a set while they run and discard themselves
when done, as the asyncio documentation recommends; the set stays small.

Modelled on bakdata/streams-explorer pull request #290, "Fix asyncio tasks reference to
prevent GC": the fix keeps each created task in ``self.tasks`` and adds
``task.add_done_callback(self.tasks.discard)``, so finished tasks leave the set. The
counterpart without the discard is ``asyncio_task_set.py``.

Each step spawns one background task (building a small update) that finishes within the step.

Source: https://github.com/bakdata/streams-explorer/pull/290
Affected: none (the fixed pattern; measured on CPython 3.11).
"""

from __future__ import annotations

import asyncio

EXPECTED = "NOT_LEAK"
SHAPE = "steady"
NATURAL_STEPS = 150_000
SOURCE = "https://github.com/bakdata/streams-explorer/pull/290"
AFFECTED = "streams-explorer after PR #290 (fixed pattern)"

_BACKGROUND_TASKS: set[asyncio.Task] = set()


async def _update_dashboard(n: int) -> dict:
    await asyncio.sleep(0)
    return {"student": n, "words": n % 500, "summary": f"student {n} edited paragraph {n % 7}"}


async def setup():
    return {"n": 0}


async def step(state):
    state["n"] += 1
    task = asyncio.create_task(_update_dashboard(state["n"]))
    _BACKGROUND_TASKS.add(task)
    task.add_done_callback(_BACKGROUND_TASKS.discard)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def teardown(state):
    await asyncio.gather(*_BACKGROUND_TASKS)
    _BACKGROUND_TASKS.clear()
