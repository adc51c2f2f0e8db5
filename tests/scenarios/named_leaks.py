"""Leaks instances of named classes into module-level containers; hostile ones too (__repr__ and
__sizeof__ raise, an HTML name)."""

from __future__ import annotations

PARAMS = {"payload": 256}
VARIANTS = {
    "leaky": "keep a Widget, an Unprintable and a <script> object per step (and one Unsizable)",
    "fixed": "build the same objects and drop them",
}


class Widget:
    def __init__(self, number: int, payload: int) -> None:
        self.number = number
        self.payload = bytearray(payload)
        self.tags = [number]


class Unprintable:
    """Any attempt to show it fails."""

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    __str__ = __repr__


class Unsizable:
    """sys.getsizeof() fails on it, so a size summary (pympler) that meets one fails."""

    def __sizeof__(self) -> int:
        raise RuntimeError("size refused")


#: A class whose name is markup: every report must escape it.
Scripted = type(
    "<script>alert(1)</script>",
    (),
    {"__init__": lambda self, number: setattr(self, "number", number)},
)


class Registry:
    members: list[Unprintable] = []


_CACHE: dict[int, Widget] = {}
_BY_KEY: dict[Unprintable, object] = {}
_UNSIZABLE: list[Unsizable] = []


def setup(variant, payload):
    if variant == "leaky":
        _UNSIZABLE.append(Unsizable())
    return {"keep": variant == "leaky", "payload": payload, "n": 0}


def step(state):
    state["n"] += 1
    widget = Widget(state["n"], state["payload"])
    unprintable = Unprintable()
    scripted = Scripted(state["n"])
    if state["keep"]:
        _CACHE[state["n"]] = widget
        Registry.members.append(unprintable)
        _BY_KEY[unprintable] = scripted


def teardown(state):
    _CACHE.clear()
    _BY_KEY.clear()
    Registry.members.clear()
    _UNSIZABLE.clear()
