"""Look-alike (plateau): per-message histories in deque(maxlen=500) fill and stop growing.

Look-alike (plateau): a per-message history kept in ``collections.deque(maxlen=N)`` fills and
then drops its oldest entry for each new one.

Modelled on commaai/opendbc pull request #2601, "parser: optimize MessageState buffer
management": the CAN parser's per-message timestamp buffer was bounded by hand (pop while
longer than 500) and is now a ``deque(maxlen=MESSAGE_HISTORY_SIZE)``. Either way the history is
bounded: memory rises while it fills, then is flat.

Each step parses one message: appends its timestamp and decoded values to bounded histories
(500 entries), full after 500 steps.

Source: https://github.com/commaai/opendbc/pull/2601
Affected: opendbc CAN parser (2025-07, both before and after the change: bounded).
"""

from __future__ import annotations

from collections import deque

EXPECTED = "NOT_LEAK"
SHAPE = "plateau"
NATURAL_STEPS = 600_000
SOURCE = "https://github.com/commaai/opendbc/pull/2601"
AFFECTED = "opendbc CAN parser (2025-07)"

_MESSAGE_HISTORY_SIZE = 500


def setup():
    return {
        "timestamps": deque(maxlen=_MESSAGE_HISTORY_SIZE),
        "values": [deque(maxlen=_MESSAGE_HISTORY_SIZE) for _ in range(4)],
        "nanos": 0,
    }


def step(state):
    state["nanos"] += 10_000_000
    state["timestamps"].append(state["nanos"])
    for i, history in enumerate(state["values"]):
        history.append(float(state["nanos"] % (1_000 + i)) * 0.01)
    dt = (state["timestamps"][-1] - state["timestamps"][0]) * 1e-9
    return dt


def teardown(state):
    state["timestamps"].clear()
