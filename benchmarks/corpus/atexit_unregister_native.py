"""Slow native leak: atexit register/unregister per object grows CPython's callback array.

Slow native leak: per-connection exit hooks that are registered and unregistered (the fix
for the atexit leak) still grow CPython's C array of atexit callbacks by one slot per object.

Modelled on ARM-software/devlib issue #676, "atexit handler leaks connection instances", whose
proposed fix is a ``weakref.WeakMethod`` hook plus ``atexit.unregister()`` on close. That fix
stops keeping the connections alive (allocated blocks stay flat), but on CPython 3.13 and
earlier ``atexit.unregister`` only clears the slot of a C array that ``atexit.register``
appends to and never compacts (``ncallbacks`` keeps counting up; the array was replaced by a
Python list in 3.14 by python/cpython pull request #127935). Each connection therefore leaves
one 8-byte pointer slot in native memory, and unregister scans every slot ever used. Measured
on 3.11: 150,000 register/unregister pairs leave ``atexit._ncallbacks() == 150000``.

Each step opens one connection object (same state and reference cycle as
``atexit_per_connection.py``), registers its WeakMethod hook, uses it and closes it, which
unregisters the hook.

Source: https://github.com/ARM-software/devlib/issues/676 (the pattern) and
https://github.com/python/cpython/pull/127935 (the array that never shrinks, replaced in 3.14)
Affected: CPython before 3.14 (the array was replaced by PR #127935; measured on 3.11.7).
"""

from __future__ import annotations

import atexit
import functools
import weakref

EXPECTED = "LEAK"
SHAPE = "slow"
NATURAL_STEPS = 100_000
SOURCE = "https://github.com/ARM-software/devlib/issues/676"
AFFECTED = "CPython before 3.14 atexit (measured on 3.11.7)"
PER_STEP_BYTES = 15


def _close_if_alive(method_ref: weakref.WeakMethod) -> None:
    method = method_ref()
    if method is not None:
        method()


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
        # The hook holds the connection only weakly; it is its own object so that
        # atexit.unregister (which matches by equality) removes this connection's hook only.
        self._exit_hook = functools.partial(_close_if_alive, weakref.WeakMethod(self.close))
        atexit.register(self._exit_hook)

    def execute(self, command: str) -> str:
        return f"{self.host}:{self.port} {command}"

    def close(self) -> None:
        self.closed = True
        atexit.unregister(self._exit_hook)


def setup():
    return {"n": 0}


def step(state):
    state["n"] += 1
    connection = Connection("127.0.0.1", 22, state["n"])
    connection.execute("uname -a")
    connection.close()
