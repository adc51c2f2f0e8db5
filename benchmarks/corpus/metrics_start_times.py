"""Steady leak: request start times stored by id and never popped (jina gateway metrics).

Steady leak: a metrics helper stores each request's send time in a dict keyed by request id
and only reads it back, never removing it.

Modelled on jina-ai/serve pull request #4791, "fix: pop the init time instead of normal
access": the gateway's ``receiving_request_seconds`` metric stored the time of sending a
request in a dict but never released it; the fix pops the value instead of reading it.

Each step handles one request: stores its start time under its id, does the request's small
amount of work, and reads the start time to observe the duration.

Source: https://github.com/jina-ai/serve/pull/4791
Affected: jina 3.x before pull request #4791 (2022-05).
"""

from __future__ import annotations

import time
import uuid

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 150_000
SOURCE = "https://github.com/jina-ai/serve/pull/4791"
AFFECTED = "jina 3.x before PR #4791 (2022-05)"
PER_STEP_BYTES = 155


class GatewayMetrics:
    def __init__(self) -> None:
        self._request_init_time: dict[str, float] = {}
        self.observed = 0.0

    def on_send(self, request_id: str) -> None:
        self._request_init_time[request_id] = time.perf_counter()

    def on_receive(self, request_id: str) -> None:
        started = self._request_init_time[request_id]  # the fix: .pop(request_id)
        self.observed += time.perf_counter() - started


def setup():
    return {"metrics": GatewayMetrics()}


def step(state):
    request_id = uuid.uuid4().hex
    state["metrics"].on_send(request_id)
    payload = {"id": request_id, "docs": [{"text": "hello"}]}
    state["metrics"].on_receive(payload["id"])


def teardown(state):
    state["metrics"]._request_init_time.clear()
