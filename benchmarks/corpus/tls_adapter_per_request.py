"""Fast native-heavy leak: a new TLS adapter and SSLContext per request, old ones kept.

Fast, big, mostly native leak: a new TLS adapter (a urllib3 PoolManager with its own
ssl.SSLContext) is mounted on a requests Session for every request and the old one is not
closed.

Modelled on VeNoMouS/cloudscraper issue #328, "Memory leak: rotate_tls_ciphers creates new
CipherSuiteAdapter on every request without closing the old one": with
``rotate_tls_ciphers=True`` (the default) every request builds a ``CipherSuiteAdapter``
(PoolManager + SSLContext loaded with the CA bundle) and mounts it; ``Session.mount`` does not
close the previous adapter, and the orphaned PoolManagers were not collected in the report
(~56 MB/min RSS at ~150 requests/min, OOM within minutes). The orphaned adapters are kept
reachable here by the scraper's list of rotated adapters, which stands for whatever kept them
reachable in the report. Most of each adapter is OpenSSL memory (the CA store), invisible to
Python's allocated-block count.

No request is sent: building and mounting the adapter is the whole per-request cost the report
measures.

Source: https://github.com/VeNoMouS/cloudscraper/issues/328
Affected: cloudscraper with rotate_tls_ciphers=True, as released when reported (2026-03; open).
"""

from __future__ import annotations

import ssl

import requests
from requests.adapters import HTTPAdapter

EXPECTED = "LEAK"
SHAPE = "fast"
NATURAL_STEPS = 200
SOURCE = "https://github.com/VeNoMouS/cloudscraper/issues/328"
AFFECTED = "cloudscraper with rotate_tls_ciphers=True (2026-03)"
PER_STEP_BYTES = 854_000

_CIPHER_ROTATION = ["ECDHE+AESGCM", "ECDHE+CHACHA20", "DHE+AESGCM", "ECDHE+AES"]


class CipherSuiteAdapter(HTTPAdapter):
    def __init__(self, ciphers: str) -> None:
        self.ssl_context = ssl.create_default_context()
        self.ssl_context.set_ciphers(ciphers)
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self.ssl_context
        return super().init_poolmanager(*args, **kwargs)


def setup():
    session = requests.Session()
    session.trust_env = False
    return {"session": session, "rotated": [], "n": 0}


def step(state):
    state["n"] += 1
    ciphers = _CIPHER_ROTATION[state["n"] % len(_CIPHER_ROTATION)]
    adapter = CipherSuiteAdapter(ciphers)
    state["session"].mount("https://", adapter)  # the previous adapter is not closed
    state["rotated"].append(adapter)


def teardown(state):
    for adapter in state["rotated"]:
        adapter.close()
    state["rotated"].clear()
    state["session"].close()
