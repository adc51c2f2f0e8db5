"""Asyncio leak: finished background tasks are never removed from the set that holds them.

Asyncio leak: background tasks are kept in a set so they are not collected mid-run, and are
never removed from it when they finish.

Modelled on ETS-Next-Gen/writing_observer pull request #192, "Addressed weak reference for
created tasks in asyncio": it keeps every fire-and-forget task in a set, as the asyncio docs
advise, without ``task.add_done_callback(set.discard)``; the review notes that the set then
keeps growing forever. Each finished task keeps its coroutine's result and the task object.

Each step handles one websocket message by spawning a background task that builds a small
dashboard update; the task finishes within the step but stays in the module-level set.

Source: https://github.com/ETS-Next-Gen/writing_observer/pull/192
Affected: writing_observer with PR #192 as proposed (2024-10); the pattern of any asyncio
program that adds tasks to a set without discarding them.
"""

from __future__ import annotations

import asyncio

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 40_000
SOURCE = "https://github.com/ETS-Next-Gen/writing_observer/pull/192"
AFFECTED = "writing_observer PR #192 as proposed (2024-10)"
PER_STEP_BYTES = 990

_BACKGROUND_TASKS: set[asyncio.Task] = set()


async def _update_dashboard(n: int) -> dict:
    await asyncio.sleep(0)
    return {"student": n, "words": n % 500, "summary": f"student {n} edited paragraph {n % 7}"}


async def setup():
    return {"n": 0}


async def step(state):
    state["n"] += 1
    task = asyncio.create_task(_update_dashboard(state["n"]))
    _BACKGROUND_TASKS.add(task)  # no add_done_callback(_BACKGROUND_TASKS.discard)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def teardown(state):
    await asyncio.gather(*_BACKGROUND_TASKS)
    _BACKGROUND_TASKS.clear()
