"""An async scenario: every step awaits the event loop once and retains nothing."""

import asyncio

PARAMS = {"delay": 0.0}


async def setup(delay):
    return {"delay": delay, "loop": id(asyncio.get_running_loop()), "loops": set()}


async def step(state):
    state["loops"].add(id(asyncio.get_running_loop()))
    await asyncio.sleep(state["delay"])


async def teardown(state):
    # The runner promises one event loop for the whole run.
    assert state["loops"] == {state["loop"]}, state["loops"]
