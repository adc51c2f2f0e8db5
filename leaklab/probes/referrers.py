"""Reference chains from a root to an object, and how to write one down.

Two searches, cheapest first:

1. **forward from the user's roots** (:func:`forward_chain`): breadth first from the
   scenario's state, the user's modules and their classes, following what each
   object refers to (``gc.get_referents``, one object at a time, cheap) until an
   instance of the growing type turns up. Library modules, classes and functions'
   globals are not entered, so the search stays within what the program itself
   holds. It answers "which of my globals keeps these alive".
2. **backward from a sampled instance** (:func:`backward_chain`):
   ``objgraph.find_backref_chain`` to any root (any module, a class attribute, a
   running frame) when the first search found nothing. Each step scans the whole
   heap (``gc.get_referrers``), so it runs under a deadline.

:func:`describe` turns a chain into plain data (labels, the attribute, key or
index of each hop) that holds no reference to the objects.
"""

from __future__ import annotations

import gc
import sys
import time
import types
from collections import deque
from typing import Any

from leaklab.naming import Classifier, type_name
from leaklab.probes import support


class OutOfTime(Exception):
    """The search's deadline passed."""


def _own_dict(obj: Any) -> Any:
    """``obj.__dict__`` without running a ``__getattr__`` or a property."""
    try:
        return object.__getattribute__(obj, "__dict__")
    except Exception:
        return None


def root_kind(obj: Any, state: Any) -> str | None:
    """``module``, ``class``, ``state`` or ``frame`` when ``obj`` is a root a chain may end at."""
    if state is not None and obj is state:
        return "state"
    if isinstance(obj, types.ModuleType):
        name = (_own_dict(obj) or {}).get("__name__")
        return "module" if isinstance(name, str) and sys.modules.get(name) is obj else None
    if isinstance(obj, type):
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        # The module's namespace, not getattr(): a module __getattr__ may import or compute.
        namespace = _own_dict(module) if module is not None else None
        return (
            "class" if isinstance(namespace, dict) and namespace.get(obj.__name__) is obj else None
        )
    if isinstance(obj, types.FrameType):
        return "frame"
    return None


def source_file(obj: Any, kind: str) -> str:
    """The file a root comes from (its module's, or its frame's)."""
    if kind == "module":
        filename = (_own_dict(obj) or {}).get("__file__")
    elif kind == "class":
        filename = (_own_dict(sys.modules.get(obj.__module__)) or {}).get("__file__")
    elif kind == "frame":
        filename = obj.f_code.co_filename
    else:
        filename = None
    return filename if isinstance(filename, str) else "<unknown>"


def user_roots(state: Any, classifier: Classifier) -> list[Any]:
    """The scenario's state, the user's modules, and the classes those modules define."""
    roots: list[Any] = [] if state is None else [state]
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType) or not classifier.is_user(
            source_file(module, "module")
        ):
            continue
        roots.append(module)
        namespace = _own_dict(module) or {}
        name = namespace.get("__name__")
        roots.extend(
            v for v in list(namespace.values()) if isinstance(v, type) and v.__module__ == name
        )
    return roots


def sample_instances(name: str, k: int, among: int = 1000) -> list[Any]:
    """``k`` instances of the type named ``name``, spread over its ``among`` newest.

    After a full collection the survivors sit in the oldest generation, newest last,
    so the end of ``gc.get_objects()`` holds the most recent allocations: what a
    leak adds rather than what the warm-up left. The very newest may still be in
    flight (a callback the event loop is about to run), hence the spread.
    """
    gc.collect()
    objects = gc.get_objects()
    found: list[Any] = []
    try:
        wanted = {cls for cls in set(map(type, objects)) if type_name(cls) == name}
        for obj in reversed(objects):
            if type(obj) in wanted:
                found.append(obj)
                if len(found) >= among:
                    break
    finally:
        del objects
    if len(found) <= k:
        return found
    picks = (
        [found[round(i * (len(found) - 1) / (k - 1))] for i in range(k)]
        if k > 1
        else [found[len(found) // 2]]
    )
    found.clear()
    return picks


def _children(obj: Any, is_root: bool) -> list[Any]:
    """What a forward search follows from ``obj``: not into other modules, classes or code."""
    if isinstance(obj, types.ModuleType):
        return gc.get_referents(obj) if is_root else []
    if isinstance(obj, type):
        # A class root: its namespace only (not its bases, not its metaclass).
        return [r for r in gc.get_referents(obj) if type(r) is dict] if is_root else []
    if isinstance(obj, (types.CodeType, types.FrameType, types.BuiltinFunctionType)):
        return []
    if isinstance(obj, types.FunctionType):
        # Closures and defaults hold state; __globals__ is a module, entered from its own root or
        # not at all.
        return [
            x for x in (obj.__closure__, obj.__defaults__, obj.__kwdefaults__, _own_dict(obj)) if x
        ]
    return gc.get_referents(obj)


def forward_chain(
    roots: list[Any], targets: list[Any], deadline: float, max_depth: int, max_nodes: int = 500_000
) -> list[Any] | None:
    """The shortest chain ``[root, ..., target]`` from one of ``roots`` to one of ``targets``."""
    wanted = {id(t) for t in targets}
    if not wanted:
        return None
    parent: dict[int, Any] = {}
    seen: set[int] = {id(r) for r in roots}
    frontier = list(roots)
    root_ids = set(seen)
    visited = 0
    try:
        for _depth in range(max_depth):
            following: list[Any] = []
            for node in frontier:
                visited += 1
                if visited % 2048 == 0 and (time.monotonic() > deadline or visited > max_nodes):
                    raise OutOfTime
                for child in _children(node, id(node) in root_ids):
                    if id(child) in seen:
                        continue
                    seen.add(id(child))
                    parent[id(child)] = node
                    if id(child) in wanted:
                        chain = [child]
                        while id(chain[-1]) in parent:
                            chain.append(parent[id(chain[-1])])
                        chain.reverse()
                        return chain
                    if gc.is_tracked(child):
                        following.append(child)
            frontier = following
            if not frontier:
                break
        return None
    finally:
        parent.clear()
        del frontier


def backward_chain(
    obj: Any, state: Any, deadline: float, max_depth: int, ignore: tuple[int, ...]
) -> list[Any] | None:
    """``objgraph.find_backref_chain`` from ``obj`` to any root; raises :class:`OutOfTime`."""
    import objgraph

    def is_root(candidate: Any) -> bool:
        if time.monotonic() > deadline:
            raise OutOfTime
        return root_kind(candidate, state) is not None

    chain = objgraph.find_backref_chain(
        obj, is_root, max_depth=max_depth, extra_ignore=(*ignore, id(sys._getframe()))
    )
    if len(chain) == 1 and root_kind(chain[0], state) is None:
        return None
    return chain


# -- writing a chain down ----------------------------------------------------------------


def _member(descriptor: types.MemberDescriptorType, obj: Any) -> Any:
    try:
        return descriptor.__get__(obj, type(obj))
    except AttributeError:  # an empty slot
        return None


def key_of(container: Any, value: Any) -> str | None:
    """How ``container`` refers to ``value``: ``['key']``, ``[3]``, ``.attr``, or None."""
    try:
        if isinstance(container, dict):
            for key, item in container.items():
                if item is value:
                    return f"[{support.safe_text(key, 60)}]"
            return None
        if isinstance(container, (list, tuple, deque)):
            for index, item in enumerate(container):
                if item is value:
                    return f"[{index}]"
            return None
        attrs = _own_dict(container)
        if isinstance(attrs, dict):
            for key, item in attrs.items():
                if item is value:
                    return f".{key}"
        for cls in type(container).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                descriptor = cls.__dict__.get(slot) if isinstance(slot, str) else None
                if (
                    isinstance(descriptor, types.MemberDescriptorType)
                    and _member(descriptor, container) is value
                ):
                    return f".{slot}"
    except Exception:  # a container that changes size or raises while we look
        return None
    return None


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1] if not name.startswith("<") else name


def _root_base(root: Any, kind: str) -> str:
    if kind == "module":
        return str((_own_dict(root) or {}).get("__name__"))
    if kind == "class":
        return type_name(root)
    if kind == "state":
        return "state"
    if kind == "frame":
        code = root.f_code
        return f"frame {code.co_name} ({code.co_filename}:{root.f_lineno})"
    return type_name(type(root))


def describe(chain: list[Any], state: Any, classifier: Classifier | None = None) -> dict[str, Any]:
    """Readable hops of a chain ``[root, ..., instance]``; holds no reference to its objects.

    The root's label names the slot it holds the chain by (``http_agent._SESSIONS``,
    ``state['cache']``); each later hop is the type of the object, with ``via``
    saying how the previous one refers to it (an instance's attribute dict is folded
    into its ``.attr``).
    """
    root = chain[0]
    kind = root_kind(root, state) or "unknown"
    user_root = kind == "state" or (
        kind != "unknown" and classifier is not None and classifier.is_user(source_file(root, kind))
    )
    rest = chain[1:]
    base = _root_base(root, kind)
    # A module's or class's namespace dict is part of the root: name the global it holds.
    if kind in ("module", "class") and len(rest) > 1 and isinstance(rest[0], dict):
        label = base + (f".{k}" if (k := _name_in(rest[0], rest[1])) else "")
        rest = rest[1:]
    else:
        label = base + ((key_of(root, rest[0]) or "") if rest else "")
    hops: list[dict[str, Any]] = [{"label": label, "type": type_name(type(root)), "via": None}]
    previous = root
    pending_via: str | None = None
    for position, obj in enumerate(rest):
        following = rest[position + 1] if position + 1 < len(rest) else None
        if (
            position > 0
            and isinstance(obj, dict)
            and following is not None
            and _own_dict(previous) is obj
        ):
            pending_via = key_of(obj, following)
            continue
        via = (
            pending_via
            if pending_via is not None
            else (None if position == 0 else key_of(previous, obj))
        )
        pending_via = None
        name = type_name(type(obj))
        hops.append({"label": _short(name), "type": name, "via": via})
        previous = obj
    del root, rest, previous, chain
    return {
        "root": hops[0]["label"],
        "root_kind": kind,
        "hops": hops,
        "user_root": user_root,
        "text": " -> ".join(h["label"] for h in hops),
        "depth": len(hops) - 1,
    }


def _name_in(namespace: dict[str, Any], value: Any) -> str | None:
    for key, item in namespace.items():
        if item is value:
            return str(key)
    return None
