"""Logging leak: a MemoryHandler without a target never clears its buffer.

Logging leak: a MemoryHandler without a target never clears its buffer, so every record it
handles stays in memory.

Modelled on python/cpython issue #107028, "Ambiguity in documentation of
logging.handlers.MemoryHandler method flush()": ``MemoryHandler.flush()`` only sends and
clears the buffer when a target is set; without one the buffer is kept (now documented as
"The record buffer is only cleared if a target has been set"). A handler configured with a
capacity but whose target is never set (e.g. left to be set "later") keeps every LogRecord
with its message and arguments.

Each step logs one INFO record with a small formatted context through a logger whose only
handler is such a MemoryHandler.

Source: https://github.com/python/cpython/issues/107028
Affected: CPython 3.11 (reported on 3.11.4, measured on 3.11.7); the behaviour is kept and
documented from 3.12 on.
"""

from __future__ import annotations

import logging
import logging.handlers

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 80_000
SOURCE = "https://github.com/python/cpython/issues/107028"
AFFECTED = "CPython 3.11+ logging.handlers.MemoryHandler"
PER_STEP_BYTES = 710

_LOGGER_NAME = "corpus.memoryhandler.no_target"


def setup():
    handler = logging.handlers.MemoryHandler(capacity=2_000, flushLevel=logging.ERROR, target=None)
    logger = logging.getLogger(_LOGGER_NAME)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return {"logger": logger, "handler": handler, "n": 0}


def step(state):
    state["n"] += 1
    state["logger"].info("request %d served in %.1f ms", state["n"], 1.5)


def teardown(state):
    state["logger"].removeHandler(state["handler"])
    state["handler"].buffer.clear()
    state["handler"].close()
