"""Look-alike: one shared logger plus a LoggerAdapter per connection; nothing accumulates.

Look-alike (flat): connections share one module logger and add their identity through a
LoggerAdapter, the fix suggested for the per-connection logger leak; no logger accumulates.

Modelled on vertica/vertica-python issue #476, "Connection Loggers Leaking Memory": the
report suggests that the Connection class "should always use the same Logger instance" and
add instance-specific behaviour otherwise. Here each connection wraps the shared logger in a
``logging.LoggerAdapter`` carrying its id; the adapter dies with the connection. The
counterpart that leaks is ``logging_get_logger.py``.

Each step opens one connection object (building its adapter), logs through it and closes it.

Source: https://github.com/vertica/vertica-python/issues/476
Affected: none (the fix suggested in vertica-python #476).
"""

from __future__ import annotations

import logging
import uuid

EXPECTED = "NOT_LEAK"
SHAPE = "steady"
NATURAL_STEPS = 300_000
SOURCE = "https://github.com/vertica/vertica-python/issues/476"
AFFECTED = "vertica-python with the fix suggested in #476"

_LOGGER = logging.getLogger("corpus_vertica_shared")
_LOGGER.setLevel(logging.WARNING)


class Connection:
    def __init__(self) -> None:
        self._logger = logging.LoggerAdapter(_LOGGER, {"connection": f"{id(self)}_{uuid.uuid4()}"})

    def close(self) -> None:
        self._logger.info("Connection closed")


def setup():
    return {}


def step(state):
    connection = Connection()
    connection.close()
