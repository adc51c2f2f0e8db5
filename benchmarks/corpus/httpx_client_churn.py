"""Look-alike (GC noise): an httpx.Client and its SSLContext per request, closed each time.

Look-alike (GC noise): an httpx.Client, with its own SSLContext, is created for one request and
closed, every time; the clients form reference cycles that the cyclic collector frees.

Modelled on encode/httpx issue #978, "Memory leak when creating lots of AsyncClient contexts":
creating a client per request (each building its own SSLContext) looked like a leak, but the
maintainers found the memory is freed once the clients go out of scope; it is high only while
many clients are alive at once. home-assistant/core pull request #90191 shows the same
per-client SSLContext with verification disabled (``verify=False``), which is what this case
does so that a step costs ~1 ms instead of the ~40 ms of loading the CA bundle (a 2,000-step
run then takes seconds, not minutes). Closed clients are not kept; what a step leaves is cyclic
garbage that waits for a collection: allocated blocks rise and fall as the collector runs, RSS
is flat.

Each step creates ``httpx.Client(verify=False)`` (trust_env=False so no proxy setting redirects
it), makes one plain-HTTP GET to the loopback upstream (127.0.0.1, started in setup), and
closes the client.

Source: https://github.com/encode/httpx/issues/978 (and
https://github.com/home-assistant/core/pull/90191 for the context made even with verify=False)
Affected: httpx as of 2020-05 (reported) to 0.28.1 (measured): an SSLContext per client.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

# The runner imports a case by path; its helper module sits next to it.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
from _loopback import Upstream  # noqa: E402

EXPECTED = "NOT_LEAK"
SHAPE = "gc-noise"
NATURAL_STEPS = 2_000
SOURCE = "https://github.com/encode/httpx/issues/978"
AFFECTED = "httpx 2020-05 (reported) to 0.28.1 (measured)"


def setup():
    upstream = Upstream(response_size=512).start()
    return {"upstream": upstream, "url": upstream.url("/data")}


def step(state):
    with httpx.Client(trust_env=False, verify=False, timeout=10.0) as client:
        response = client.get(state["url"])
        response.raise_for_status()


def teardown(state):
    state["upstream"].stop()
