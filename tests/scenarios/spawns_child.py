"""Starts a long-lived helper process in setup and grows memory per step."""

import subprocess
import sys

from leaklab import Param

PARAMS = {"size": Param(1_000_000, kind="size", help="bytes kept per step"), "pidfile": ""}

_KEPT: list[bytes] = []


def setup(size, pidfile):
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    if pidfile:
        with open(pidfile, "w") as fh:
            fh.write(str(helper.pid))
    return {"size": size, "helper": helper}


def step(state):
    _KEPT.append(b"x" * state["size"])


def teardown(state):
    state["helper"].kill()
    state["helper"].wait()
