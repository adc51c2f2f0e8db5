"""Look-alike (threads): a fixed pool of 2,048 threads started in setup does steady work.

Look-alike (threads): a fixed pool of 2,048 worker threads started in setup does steady work;
thread count and memory are constant after setup.

Modelled on Tinche/aiofiles issue #40, "memory leak?": memory (VMS) grew as the thread pool
grew to its size and then stayed flat; measuring RSS instead showed no leak: a pool's threads
cost memory once, not per call. Here the pool is large (2,048 threads, as a thread-per-
connection server's), started in setup, and every step hands one job to it.

Thread stacks are set to 256 KiB in setup so 2,048 threads fit the runner's address-space
backstop (the default 8 MiB stacks would reserve 16 GiB of address space).

Each step submits one small job (parse a record) to the pool's queue and waits for its result.

Measured (CPython 3.11.7, glibc): at the natural N, RSS stays at 74-75 MB with flat allocated
blocks. Much longer runs show a slow native creep with blocks still flat: 74 to 84 MB over
1,060,000 steps (40 s), flat for the last ~100,000 of them; the glibc arenas that the 2,048
threads share are the likely cause (with ``mallopt(M_ARENA_MAX, 2)`` RSS was flat at 75 MB
after 40,000 steps). Nothing Python-level is retained.

Source: https://github.com/Tinche/aiofiles/issues/40
Affected: aiofiles as of 2018-05 on CPython 3.6.5 (reported); any fixed-size thread pool.
"""

from __future__ import annotations

import queue
import threading

EXPECTED = "NOT_LEAK"
SHAPE = "threads"
NATURAL_STEPS = 30_000
SOURCE = "https://github.com/Tinche/aiofiles/issues/40"
AFFECTED = "aiofiles as of 2018-05 (CPython 3.6.5)"

_THREADS = 2_048
_STACK_SIZE = 256 * 1024


def _parse(line: str) -> dict:
    fields = line.split(",")
    return {"id": int(fields[0]), "name": fields[1], "score": float(fields[2])}


def _worker(jobs: queue.SimpleQueue, warm: queue.SimpleQueue) -> None:
    # Each worker parses a record once at start, as a pool that validates its set-up would:
    # a thread's first job touches its stack and per-thread state, which would otherwise
    # trickle in over the first ~15,000 steps as jobs reach every one of the 2,048 threads.
    warm.put(_parse("0,warmup,0.5"))
    while True:
        job = jobs.get()
        if job is None:
            return
        line, results = job
        results.put(_parse(line))


def setup():
    previous = threading.stack_size(_STACK_SIZE)
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    warm: queue.SimpleQueue = queue.SimpleQueue()
    threads = [
        threading.Thread(target=_worker, args=(jobs, warm), daemon=True) for _ in range(_THREADS)
    ]
    for thread in threads:
        thread.start()
    for _ in threads:
        warm.get(timeout=60)
    return {
        "jobs": jobs,
        "threads": threads,
        "results": queue.SimpleQueue(),
        "n": 0,
        "previous_stack_size": previous,
    }


def step(state):
    state["n"] += 1
    state["jobs"].put((f"{state['n']},user{state['n'] % 97},{state['n'] % 13}.5", state["results"]))
    return state["results"].get(timeout=10)["id"]


def teardown(state):
    for _ in state["threads"]:
        state["jobs"].put(None)
    for thread in state["threads"]:
        thread.join(timeout=10)
    threading.stack_size(state["previous_stack_size"])
