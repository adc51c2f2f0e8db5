"""Leak through a global: atexit.register(self.close) per connection keeps every connection.

Cycle kept alive by a global: every connection registers ``atexit.register(self.close)``, so
the interpreter's atexit list keeps each connection (and its reference cycles) forever.

Modelled on ARM-software/devlib issue #676, "atexit handler leaks connection instances":
``SshConnection.__init__`` calls ``atexit.register(self.close)``; the bound method holds the
connection, so no connection is ever freed even after it is closed and dropped. The suggested
fix is a WeakMethod plus ``atexit.unregister`` (``atexit_unregister_native.py``: that
stops keeping connections alive, but see there what it still costs on CPython 3.13 and earlier).

Each step opens one connection object (with the small per-connection state a client keeps and
a reference cycle between the connection and its channel), uses it and closes it.

Source: https://github.com/ARM-software/devlib/issues/676
Affected: devlib up to the fix of issue #676 (2024-03); same pattern in tenable/nessrest #81.
"""

from __future__ import annotations

import atexit

EXPECTED = "LEAK"
SHAPE = "steady"
NATURAL_STEPS = 100_000
SOURCE = "https://github.com/ARM-software/devlib/issues/676"
AFFECTED = "devlib before the fix of #676 (2024)"
PER_STEP_BYTES = 940


class Channel:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection  # cycle: connection -> channel -> connection
        self.buffer = bytearray(256)


class Connection:
    def __init__(self, host: str, port: int, n: int) -> None:
        self.host = host
        self.port = port
        self.options = {"user": "root", "timeout": 10, "keepalive": 30, "id": n}
        self.channel = Channel(self)
        self.closed = False
        atexit.register(self.close)  # the leak: the atexit list holds the bound method

    def execute(self, command: str) -> str:
        return f"{self.host}:{self.port} {command}"

    def close(self) -> None:
        self.closed = True


def setup():
    return {"n": 0}


def step(state):
    state["n"] += 1
    connection = Connection("127.0.0.1", 22, state["n"])
    connection.execute("uname -a")
    connection.close()


# No teardown: nothing outside the atexit list refers to the connections, which is the bug.
# At exit the interpreter calls each close() once; it only sets a flag.
