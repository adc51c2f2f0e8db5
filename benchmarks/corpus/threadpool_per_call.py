"""Thread leak: a ThreadPoolExecutor per call, never shut down: a live thread per step.

Thread-heavy leak: a ThreadPoolExecutor is created per call and never shut down, and its idle
worker stays alive, so every call leaves a live thread (2,000+ by the end of a run).

Modelled on mem0ai/mem0 issue #4586, "Thread leak: ThreadPoolExecutor created per call in
search/add/get_all, never properly cleaned up": each call creates its own executor, and under
sustained traffic their threads accumulated (800+ idle threads after 8 hours, OOM kills): the
threads were not cleaned up, the report suspecting an integration (Sentry's threading
integration) that held references to them.

Each step makes one call that creates an executor, runs its two sub-tasks on it and returns;
the executor is then held by a module-level list (standing for the integration that kept
them), so its idle worker thread never exits. Thread stacks are set to 256 KiB in setup so
2,000+ threads fit the runner's address-space backstop (the default 8 MiB stacks would
reserve 16 GiB); the threads' resident stacks and bookkeeping are the leak.

Source: https://github.com/mem0ai/mem0/issues/4586
Affected: mem0 before the shared-executor change that closed #4586 (2026).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

EXPECTED = "LEAK"
SHAPE = "threads"
NATURAL_STEPS = 2_500
SOURCE = "https://github.com/mem0ai/mem0/issues/4586"
AFFECTED = "mem0 before the fix of #4586 (2026-03)"
PER_STEP_BYTES = 19_600

_STACK_SIZE = 256 * 1024
# A run without a step count could otherwise start threads until the user's process limit,
# which the machine's other users share; past this the case stops with a clear error.
_MAX_LIVE_THREADS = 20_000
_KEPT_EXECUTORS: list[ThreadPoolExecutor] = []


def _search_vector_store(query: str) -> list[str]:
    return [f"{query}-{i}" for i in range(8)]


def _search_graph(query: str) -> list[str]:
    return [query.upper()]


def setup():
    previous = threading.stack_size(_STACK_SIZE)
    return {"n": 0, "previous_stack_size": previous}


def step(state):
    if len(_KEPT_EXECUTORS) >= _MAX_LIVE_THREADS:
        raise RuntimeError(
            f"threadpool_per_call keeps at most {_MAX_LIVE_THREADS} live threads; "
            "run it with --steps or a shorter --duration"
        )
    state["n"] += 1
    query = f"user-{state['n']}"
    executor = ThreadPoolExecutor(max_workers=1)  # per call, never shut down
    memories = executor.submit(_search_vector_store, query)
    graph = executor.submit(_search_graph, query)
    result = memories.result() + graph.result()
    _KEPT_EXECUTORS.append(executor)
    return len(result)


def teardown(state):
    for executor in _KEPT_EXECUTORS:
        executor.shutdown(wait=False)
    for executor in _KEPT_EXECUTORS:
        for thread in list(executor._threads):
            thread.join(timeout=10)
    _KEPT_EXECUTORS.clear()
    threading.stack_size(state["previous_stack_size"])
