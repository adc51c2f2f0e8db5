"""Retains a known number of bytes per step in a module-level list (a deliberate leak)."""

PARAMS = {"size": 1024}
VARIANTS = {"leaky": "keep every buffer", "fixed": "drop every buffer"}

_RETAINED: list[bytearray] = []


def setup(variant, size):
    return {"size": size, "keep": variant == "leaky"}


def step(state):
    buffer = bytearray(state["size"])
    if state["keep"]:
        _RETAINED.append(buffer)


def teardown(state):
    _RETAINED.clear()
