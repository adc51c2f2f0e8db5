"""Logging leak: every client adds a new NullHandler to a shared logger (paddle-python-sdk).

Logging leak: every client instance adds a new NullHandler to a shared module logger.

Modelled on PaddleHQ/paddle-python-sdk issue #144, "Memory leak: Client.null_logger() adds a
new NullHandler on every instantiation": ``Client.__init__`` calls
``logging.getLogger("null_logger").addHandler(NullHandler())`` each time; the handlers pile up
in ``logger.handlers`` (each with its own RLock, and in ``logging._handlerList``), ~5 MB of RSS
per 10k clients in the report.

Each step creates one client (as a webhook handler or batch job would) and drops it.

Source: https://github.com/PaddleHQ/paddle-python-sdk/issues/144
Affected: paddle-python-sdk 1.10.0 (issue open, 2026-04).
"""

from __future__ import annotations

import logging

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 20_000
SOURCE = "https://github.com/PaddleHQ/paddle-python-sdk/issues/144"
AFFECTED = "paddle-python-sdk 1.10.0"
PER_STEP_BYTES = 393

_LOGGER_NAME = "corpus.paddle.null_logger"


class Client:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.log = self.null_logger()

    @staticmethod
    def null_logger() -> logging.Logger:
        null_logger = logging.getLogger(_LOGGER_NAME)
        null_logger.addHandler(logging.NullHandler())  # every instantiation (the bug)
        return null_logger


def setup():
    return {"n": 0}


def step(state):
    state["n"] += 1
    client = Client(f"fake_key_{state['n']}")
    client.log.debug("created client")


def teardown(state):
    logger = logging.getLogger(_LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
