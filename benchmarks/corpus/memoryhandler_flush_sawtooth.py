"""Look-alike (sawtooth): a MemoryHandler fills 2,000 records, flushes to its target, repeats.

Look-alike (sawtooth): a MemoryHandler with a capacity and a target buffers records and
flushes them to the target when full; the buffer fills and empties again and again.

Modelled on python/cpython issue #82962 (bpo-38781), "Clear buffer in MemoryHandler flush":
with a target, ``flush()`` hands the buffered records to the target and clears the buffer
(the issue is about clearing it without rebinding the list, merged for 3.9). Memory rises
while 2,000 records are buffered, drops at each flush: a sawtooth around a flat level, not a
leak.

Each step logs one INFO record; the handler (capacity 2,000) flushes to a StreamHandler that
writes the formatted records to /dev/null (standing for a log file).

Source: https://github.com/python/cpython/issues/82962
Affected: CPython 3.9+ logging.handlers.MemoryHandler (measured on 3.11).
"""

from __future__ import annotations

import logging
import logging.handlers
import os

EXPECTED = "NOT_LEAK"
SHAPE = "sawtooth"
NATURAL_STEPS = 250_000
SOURCE = "https://github.com/python/cpython/issues/82962"
AFFECTED = "CPython 3.9+ logging.handlers.MemoryHandler"

_LOGGER_NAME = "corpus.memoryhandler.sawtooth"


def setup():
    target = logging.StreamHandler(open(os.devnull, "w", encoding="utf-8"))
    handler = logging.handlers.MemoryHandler(
        capacity=2_000, flushLevel=logging.ERROR, target=target
    )
    logger = logging.getLogger(_LOGGER_NAME)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return {"logger": logger, "handler": handler, "target": target, "n": 0}


def step(state):
    state["n"] += 1
    state["logger"].info("request %d served in %.1f ms", state["n"], 1.5)


def teardown(state):
    state["logger"].removeHandler(state["handler"])
    state["handler"].close()
    state["target"].close()
    state["target"].stream.close()
