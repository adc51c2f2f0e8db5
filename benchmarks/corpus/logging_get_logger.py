"""Logging leak: a logger with a unique name per connection, kept forever (vertica-python).

Logging leak: every connection creates a logger with a unique name, and the logging manager
keeps every logger it ever created.

Modelled on vertica/vertica-python issue #476, "Connection Loggers Leaking Memory": each
``Connection`` calls ``logging.getLogger('vertica_{id}_{uuid4}')``; loggers live in
``logging.Logger.manager.loggerDict`` forever, so memory grows with every connection made.

Each step opens one connection object (which builds its logger) and closes it.

Source: https://github.com/vertica/vertica-python/issues/476
Affected: vertica-python as released when reported (2022-12; the issue is open).
"""

from __future__ import annotations

import logging
import uuid

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 15_000
SOURCE = "https://github.com/vertica/vertica-python/issues/476"
AFFECTED = "vertica-python as of 2022-12 (issue open)"
PER_STEP_BYTES = 570

_PREFIX = "corpus_vertica_"


class Connection:
    def __init__(self) -> None:
        logger_name = f"{_PREFIX}{id(self)}_{uuid.uuid4()}"  # must be a unique value
        self._logger = logging.getLogger(logger_name)
        self._logger.setLevel(logging.WARNING)

    def close(self) -> None:
        self._logger.info("Connection closed")


def setup():
    return {}


def step(state):
    connection = Connection()
    connection.close()


def teardown(state):
    manager = logging.Logger.manager
    with_prefix = [name for name in manager.loggerDict if name.startswith(_PREFIX)]
    for name in with_prefix:
        del manager.loggerDict[name]
    manager._clear_cache()
