"""Look-alike (GC noise): a requests.Session is created per request and closed; nothing is kept.

Modelled on psf/requests issue #4601, "Requests memory leak": a session per request looked
like a leak in the thread; a commenter's measurements show that calling ``Session.close()``
and ``Response.close()`` keeps memory stable. A closed session and its adapters, pool manager
and response form reference cycles that wait for the cyclic collector, so allocated blocks go
up and down while RSS stays flat.

Each step opens a session (trust_env=False), makes one GET to the loopback upstream
(127.0.0.1, started in setup), and closes both response and session.

Source: https://github.com/psf/requests/issues/4601
Affected: requests as of 2020-03 (reported) and 2.34.2 with urllib3 2.8.0 (measured).
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

# The runner imports a case by path; its helper module sits next to it.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
from _loopback import Upstream  # noqa: E402

EXPECTED = "NOT_LEAK"
SHAPE = "gc-noise"
NATURAL_STEPS = 3_000
SOURCE = "https://github.com/psf/requests/issues/4601"
AFFECTED = "requests 2020-03 (reported) to 2.34.2 (measured)"


def setup():
    upstream = Upstream(response_size=512).start()
    return {"upstream": upstream, "url": upstream.url("/data")}


def step(state):
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.get(state["url"], timeout=10.0)
        response.raise_for_status()
        response.close()
    finally:
        session.close()


def teardown(state):
    state["upstream"].stop()
