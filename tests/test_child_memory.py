"""The parent's RSS reading of a child and of what it started (``ChildMemory``), on real
processes: the same figures psutil reads, descendants counted once the tree is walked again,
and a gone process read as gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from leaklab.runner.generation import DESCENDANTS_REFRESH_S, ChildMemory

# Holds 64 MiB; once told, starts a holder of 64 MiB of its own; then waits to be killed.
_HOLD = """
import sys, time
block = bytearray(64 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("held", flush=True)
"""
_HOLDER = (
    _HOLD
    + """
import subprocess
sys.stdin.readline()
child = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE)
child.stdout.readline()
print("started", flush=True)
time.sleep(60)
"""
).replace("HOLD", repr(_HOLD + "time.sleep(60)\n"))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_rss_matches_psutil_counts_descendants_and_reads_a_gone_process_as_gone():
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    fds_before = _open_fds()
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "held"
        alone = ChildMemory(proc.pid, include_children=False)
        tree = ChildMemory(proc.pid, include_children=True)
        own = alone.rss()
        expected = psutil.Process(proc.pid).memory_info().rss
        assert own is not None and abs(own - expected) < 4 << 20  # the same counter, read apart
        assert own > 64 << 20

        first = tree.rss()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "started"
        time.sleep(DESCENDANTS_REFRESH_S * 1.5)
        both = tree.rss()
        assert first is not None and both is not None
        # the grandchild's 64 MiB counts once the tree is walked again; the process alone does not
        assert both - first > 60 << 20
        assert (alone.rss() or 0) < first + (16 << 20)
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
    # a zombie (killed, not yet reaped) and a reaped process both read as gone
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.Process(proc.pid).status() != "zombie":
        time.sleep(0.02)
    assert alone.rss() is None and tree.rss() is None
    proc.wait()
    assert alone.rss() is None
    alone.close()
    tree.close()
    assert _open_fds() <= fds_before  # the statm files kept open are closed again
