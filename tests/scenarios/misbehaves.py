"""Misbehaves on purpose: blocks, escapes into new sessions, floods its output, starts threads."""

import os
import subprocess
import sys
import threading
import time

VARIANTS = {
    "escape": "starts a sleeper in a new session and a double-forked daemon, records their pids",
    "hang-setup": "blocks forever in setup",
    "hang-step": "blocks forever in the 20th step",
    "flood": "prints `print_bytes` bytes to stdout and stderr per step",
    "threads": "keeps `threads` threads alive (parked on an event), then steps",
    "allocate": "makes one allocation of `alloc_bytes` (every byte written) in the 10th step",
    "leak": "keeps `leak_bytes` (every byte written) per step",
    "terminal": (
        "keeps instances of a class named with terminal escapes; raises one at step `fail_at`"
    ),
}
#: OSC (set the title), BEL, CSI (clear the screen, red): what a hostile name would send a terminal.
HOSTILE = "\x1b]0;pwned\x07Evil\x1b[2J\x1b[31m"
Hostile = type(HOSTILE, (), {})
_KEPT: list = []
PARAMS = {
    "pidfile": "",
    "print_bytes": 100_000,
    "threads": 3000,
    "alloc_bytes": 8_000_000_000,
    "leak_bytes": 1_000_000,
    "fail_at": 0,
}


def _daemon_pid() -> int:
    """A double-forked daemon in its own session, as a service manager would start one."""
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_fd, f"{os.getpid()}\n".encode())
            time.sleep(300)
            os._exit(0)
        os._exit(0)
    os.wait()
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        return int(fh.readline())


def setup(variant, pidfile, threads, print_bytes, alloc_bytes, leak_bytes, fail_at):
    state = {
        "variant": variant,
        "n": 0,
        "print_bytes": print_bytes,
        "alloc_bytes": alloc_bytes,
        "leak_bytes": leak_bytes,
        "kept": [],
        "fail_at": fail_at,
    }
    if variant == "hang-setup":
        time.sleep(10**6)
    if variant == "escape":
        sleeper = subprocess.Popen(["sleep", "117"], start_new_session=True)
        pids = [sleeper.pid, _daemon_pid()]
        with open(pidfile, "w") as fh:
            fh.write(" ".join(map(str, pids)))
    if variant == "threads":
        stop = threading.Event()
        started = [threading.Thread(target=stop.wait, daemon=True) for _ in range(threads)]
        for thread in started:
            thread.start()
        state.update(stop=stop, threads=started)
    return state


def step(state):
    state["n"] += 1
    if state["variant"] == "hang-step" and state["n"] == 20:
        time.sleep(10**6)
    if state["variant"] == "flood":
        sys.stdout.write("o" * state["print_bytes"] + "\n")
        sys.stderr.write("e" * state["print_bytes"] + "\n")
    if state["variant"] == "allocate" and state["n"] == 10:
        state["big"] = b"\x01" * state["alloc_bytes"]
    if state["variant"] == "leak":
        state["kept"].append(b"\x01" * state["leak_bytes"])
    if state["variant"] == "terminal":
        _KEPT.append(Hostile())
        if state["n"] == state["fail_at"]:
            raise ValueError(f"exploded {HOSTILE}")
    if state["variant"] == "threads":
        state["alive"] = sum(t.is_alive() for t in state["threads"])


def teardown(state):
    if state["variant"] == "threads":
        state["stop"].set()
        for thread in state["threads"]:
            thread.join()


if __name__ == "__main__":
    # As a program (``leaklab run -- python misbehaves.py VARIANT SECONDS [PIDFILE]``): the
    # same misbehaviour in a plain process, stepping for SECONDS, then exiting 0.
    variant, seconds = sys.argv[1], float(sys.argv[2])
    pidfile = sys.argv[3] if len(sys.argv) > 3 else ""
    state = setup(variant, pidfile, 0, PARAMS["print_bytes"], 0, 0, 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        step(state)
        time.sleep(0.01)
    teardown(state)
