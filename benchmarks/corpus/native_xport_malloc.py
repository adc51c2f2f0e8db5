"""Native-only leak: a C binding mallocs each call's result and never frees it (rrdtool.xport).

Modelled on oetiker/rrdtool-1.x issue #1381, "Memory leak in Python bindings (rrdtool.xport)":
the binding builds the Python result from a C structure and never frees that structure, about
6.5 KB per call for ~60 rows, growing linearly. The Python result itself is freed, so
allocated blocks stay flat while RSS grows: only an RSS (native) signal shows the leak.

Here libc's malloc (through ctypes) stands in for the C library's allocation: each step
mallocs 6.5 KB, fills it (so the pages are resident, as a filled result is), builds and
drops the Python rows an xport returns, and never frees the C block.

Source: https://github.com/oetiker/rrdtool-1.x/issues/1381
Affected: rrdtool Python bindings of rrdtool-1.x (issue open since 2026-08-30, no fixed release).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

EXPECTED = "LEAK"
SHAPE = "native"
NATURAL_STEPS = 40_000
SOURCE = "https://github.com/oetiker/rrdtool-1.x/issues/1381"
AFFECTED = "rrdtool-1.x Python bindings (open issue, 2026-08)"
PER_STEP_BYTES = 6_690

_RESULT_BYTES = 6_656  # ~6.5 KB per call in the report
_ROWS = 60


def setup():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # Teardown gives the memory back (the binding never does): each block's first 8 bytes
    # point to the previous one, so only the newest address is held in Python and the
    # count of Python objects stays flat, as in the report.
    # The round-robin archive an xport reads: a day of 5-minute samples.
    archive = struct.pack(f"<{288 * 4}d", *(float(i % 97) for i in range(288 * 4)))
    return {"libc": libc, "head": None, "t": 1_700_000_000, "archive": archive}


def step(state):
    libc = state["libc"]
    block = libc.malloc(_RESULT_BYTES)
    ctypes.memset(block, 0x5A, _RESULT_BYTES)
    ctypes.c_void_p.from_address(block).value = state["head"]
    state["t"] += 300
    # What the call does besides leaking: read the archive and consolidate it into 60 rows.
    samples = struct.unpack(f"<{288 * 4}d", state["archive"])
    per_row = len(samples) // _ROWS
    rows = [
        (state["t"] + 300 * i, sum(samples[i * per_row : (i + 1) * per_row]) / per_row)
        for i in range(_ROWS)
    ]
    result = {
        "meta": {"start": rows[0][0], "end": rows[-1][0], "step": 300, "legend": ["value"]},
        "data": rows,
    }
    state["head"] = block
    return len(result["data"])


def teardown(state):
    block = state["head"]
    while block:
        previous = ctypes.c_void_p.from_address(block).value
        state["libc"].free(block)
        block = previous
    state["head"] = None
