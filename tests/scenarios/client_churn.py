"""Builds and drops an HTTP client with a TLS context per step (reference cycles the collector
frees)."""

import ssl

import requests


def step(state):
    session = requests.Session()
    session.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    session.ssl_context.owner = (
        session  # a cycle through the context, as clients that keep their own build
    )
    session.close()
