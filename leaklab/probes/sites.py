"""Allocation sites from tracemalloc tracebacks: which frame to blame, and how to show it.

The frame that allocates is often deep in a library (``aiohttp/client.py`` builds
the session); the useful site is the last frame in the user's own code that led
there (the scenario line that created the session). :func:`group_sites` blames
that frame, and keeps the allocating frame and a short traceback next to it.
"""

from __future__ import annotations

import ast
import linecache
import os
import site
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import leaklab

_LEAKLAB_DIR = str(Path(leaklab.__file__).resolve().parent)
_BUILTIN_SCENARIOS = os.path.join(_LEAKLAB_DIR, "_builtin_scenarios")


def _roots(keys: tuple[str, ...], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(key) for key in keys} | set(extra)
    return tuple(sorted(str(Path(r).resolve()) + os.sep for r in roots if r))


def _site_packages() -> tuple[str, ...]:
    try:
        return (*site.getsitepackages(), site.getusersitepackages())
    except AttributeError:  # a stripped-down site module (virtualenv < 20)
        return ()


class Classifier:
    """Tells the user's code (the scenario, the user's own modules) from the standard library,
    installed packages and leaklab itself."""

    def __init__(self, scenario_path: str | None = None) -> None:
        self.scenario = str(Path(scenario_path).resolve()) if scenario_path else None
        self.stdlib = _roots(("stdlib", "platstdlib"))
        self.packages = _roots(("purelib", "platlib"), _site_packages())
        self._cache: dict[str, str] = {}

    def kind(self, filename: str) -> str:
        """``user``, ``stdlib``, ``package``, ``leaklab`` or ``other`` (``<frozen ...>``)."""
        known = self._cache.get(filename)
        if known is not None:
            return known
        if filename.startswith("<"):
            kind = "other"
        else:
            path = os.path.realpath(filename)
            if path == self.scenario or path.startswith(_BUILTIN_SCENARIOS):
                kind = "user"
            elif path.startswith(_LEAKLAB_DIR + os.sep):
                kind = "leaklab"
            elif path.startswith(self.packages):
                kind = "package"  # checked before stdlib: a venv's site-packages may sit inside it
            elif path.startswith(self.stdlib):
                kind = "stdlib"
            else:
                kind = "user"
        self._cache[filename] = kind
        return kind

    def is_user(self, filename: str) -> bool:
        return self.kind(filename) == "user"


def short_path(filename: str) -> str:
    """A path short enough to read: from the package root for installed packages and the
    standard library (``aiohttp/client.py``), else relative to the working directory."""
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        if marker in filename:
            return filename.split(marker, 1)[1]
    stdlib = f"python{sys.version_info.major}.{sys.version_info.minor}{os.sep}"
    if stdlib in filename:
        return filename.split(stdlib, 1)[1]
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive
        return filename
    return filename if relative.startswith("..") else relative


@lru_cache(maxsize=256)
def _functions(filename: str) -> tuple[tuple[int, int, str], ...]:
    """``(first line, last line, qualified name)`` of every function in a source file."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return ()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return tuple(found)


def function_at(filename: str, lineno: int) -> str | None:
    """The innermost function around a line (``Class.method``), None at module level."""
    best: tuple[int, int, str] | None = None
    for first, last, name in _functions(filename):
        if first <= lineno <= last and (best is None or first >= best[0]):
            best = (first, last, name)
    return best[2] if best else None


def frame_info(filename: str, lineno: int) -> dict[str, Any]:
    """A frame with its function and source line (reads and caches the source file)."""
    return {
        "file": filename,
        "line": lineno,
        "function": function_at(filename, lineno),
        "code": linecache.getline(filename, lineno).strip()[:160],
    }


def source_lines(frames: Iterable[tuple[str, int]]) -> dict[str, list[str | None]]:
    """``"file:line" -> [function, code]`` for each frame, for the ``source_lines`` event.

    Reading sources fills ``linecache`` (a str per line of every file read), which
    would show as growth of the measured process: the probes record bare
    ``file``/``line`` while steps run and call this once, after the last step.
    """
    out: dict[str, list[str | None]] = {}
    for filename, lineno in frames:
        info = frame_info(filename, lineno)
        out[f"{filename}:{lineno}"] = [info["function"], info["code"] or None]
    return out


def blame(frames: list[tuple[str, int]], classifier: Classifier) -> tuple[tuple[str, int], bool] | None:
    """The most recent frame in user code (oldest-first ``frames``), else the allocating frame.

    None for leaklab's own allocations (the child reporting, a probe at work): a
    leaklab frame reached before any user or package frame. A package frame first
    means leaklab only drove the code that allocated (the event loop ran a callback).
    """
    package_seen = False
    for frame in reversed(frames):
        kind = classifier.kind(frame[0])
        if kind == "user":
            return frame, True
        if kind == "leaklab" and not package_seen:
            return None
        package_seen = package_seen or kind == "package"
    return frames[-1], False


@dataclass
class _Site:
    key: tuple[str, int]
    user: bool
    size: int = 0
    count: int = 0
    size_total: int = 0
    count_total: int = 0
    best: tuple[int, Any] = (-1, None)  # (size, frames) of the largest contributor
    allocs: dict[tuple[str, int], int] = field(default_factory=dict)


def group_sites(stats: Iterable[tuple[Any, int, int, int, int]], classifier: Classifier, top: int,
                depth: int = 5, seen: set[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
    """Top ``top`` sites by growing size from ``(traceback, size, count, size_total, count_total)``.

    ``size``/``count`` are what grew (survivors of a window, or the difference to
    the baseline); only sites that grew in both size and count are kept. Frames are
    bare ``file``/``line`` (see :func:`source_lines`); each one is added to ``seen``.
    """
    sites: dict[tuple[str, int], _Site] = {}
    for tb, size, count, size_total, count_total in stats:
        frames = [(f.filename, f.lineno) for f in tb]
        if not frames:
            continue
        blamed = blame(frames, classifier)
        if blamed is None:
            continue
        key, user = blamed
        entry = sites.get(key)
        if entry is None:
            entry = sites[key] = _Site(key, user)
        entry.size += size
        entry.count += count
        entry.size_total += size_total
        entry.count_total += count_total
        alloc = frames[-1]
        entry.allocs[alloc] = entry.allocs.get(alloc, 0) + size
        if size > entry.best[0]:
            entry.best = (size, frames)
    ranked = sorted((s for s in sites.values() if s.size > 0 and s.count > 0), key=lambda s: s.size, reverse=True)
    out = []
    for entry in ranked[:top]:
        filename, lineno = entry.key
        alloc = max(entry.allocs.items(), key=lambda item: item[1])[0]
        frames = entry.best[1] or []
        shown = frames[-depth:]
        if seen is not None:
            seen.add(entry.key)
            seen.update(shown)
        out.append({
            "site": f"{short_path(filename)}:{lineno}",
            "file": filename,
            "line": lineno,
            "user": entry.user,
            "kind": classifier.kind(filename),
            "size": entry.size,
            "count": entry.count,
            "size_total": entry.size_total,
            "count_total": entry.count_total,
            "alloc": f"{short_path(alloc[0])}:{alloc[1]}",
            "traceback": [{"file": f, "line": n} for f, n in shown],
        })
    return out
