"""Look-alike (GC noise): an httpx.Client, with its own SSLContext, is created for one request and
closed, every time; the clients form reference cycles that the cyclic collector frees.

Modelled on encode/httpx issue #978, "Memory leak when creating lots of AsyncClient contexts":
creating a client per request (each building an SSLContext with the CA bundle) looked like a
leak, but the maintainers found the memory is freed once the clients go out of scope (Linux
RSS stays higher only while many live at once, see bpo-40727). Closed clients are not kept;
what a step leaves is cyclic garbage that waits for a collection: allocated blocks rise and
fall as the collector runs, RSS is flat.

Each step creates ``httpx.Client()`` (trust_env=False so no proxy setting redirects it), makes
one GET to the loopback upstream (127.0.0.1, started in setup), and closes the client.

Source: https://github.com/encode/httpx/issues/978
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
NATURAL_STEPS = 400
SOURCE = "https://github.com/encode/httpx/issues/978"
AFFECTED = "httpx 2020-05 (reported) to 0.28.1 (measured)"


def setup():
    upstream = Upstream(response_size=512).start()
    return {"upstream": upstream, "url": upstream.url("/data")}


def step(state):
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        response = client.get(state["url"])
        response.raise_for_status()


def teardown(state):
    state["upstream"].stop()
