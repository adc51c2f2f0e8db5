"""How leaklab names what grows: types, allocation sites and the frame to blame for a site.

One module for every engine that names a leak: the in-process probes (child side), the
pytest plugin's repeated-call check (:mod:`leaklab.callleak`) and the analysis, so that
the same leak reads the same in ``leaklab analyze`` and in a failed test. It imports
nothing of leaklab: any layer may import it.

The frame that allocates is often deep in a library (``aiohttp/client.py`` builds
the session); the useful site is the last frame in the user's own code that led
there (the scenario line that created the session). :func:`rank_sites` blames
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

# -- types ----------------------------------------------------------------------------------


def type_name(cls: type) -> str:
    """``module.QualName`` (builtins bare), the name every engine and the analysis use for a
    type."""
    try:
        qualname = cls.__qualname__
        module = cls.__module__
    except Exception:  # a metaclass with a hostile __getattribute__
        return f"<type at {id(cls):#x}>"
    if not isinstance(qualname, str):
        qualname = type.__dict__["__name__"].__get__(cls)
    if not isinstance(module, str) or module == "builtins":
        return qualname
    return f"{module}.{qualname}"


_STDLIB = frozenset(sys.stdlib_module_names)


def type_tier(name: str) -> int:
    """How telling a growing type is: 0 for a class of the program or a library
    (``aiohttp.client.ClientSession``), 1 for the standard library's (``asyncio.Future``,
    ``collections.deque``), 2 for builtins (``dict``, ``function``). A leak grows all
    three; the most specific class names it."""
    if "." not in name or name.startswith("<"):
        return 2
    return 1 if name.split(".", 1)[0] in _STDLIB else 0


# -- whose code a frame is ------------------------------------------------------------------

_LEAKLAB_DIR = str(Path(__file__).resolve().parent)
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
        if known is None:
            known = self._cache[filename] = self._classify(filename)
        return known

    def _classify(self, filename: str) -> str:
        if filename.startswith("<"):
            return "other"
        path = os.path.realpath(filename)
        if path == self.scenario or path.startswith(_BUILTIN_SCENARIOS):
            return "user"
        if path.startswith(_LEAKLAB_DIR + os.sep):
            return "leaklab"
        if path.startswith(self.packages):
            return "package"  # checked before stdlib: a venv's site-packages may sit inside it
        if path.startswith(self.stdlib):
            return "stdlib"
        return "user"

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


def blame(
    frames: list[tuple[str, int]], classifier: Classifier
) -> tuple[tuple[str, int], bool] | None:
    """The most recent frame in user code (oldest-first ``frames``), else the allocating frame.

    None for leaklab's own allocations (the child reporting, a probe at work, the
    repeated-call check's bookkeeping): a leaklab frame reached before any user or
    package frame. A package frame first means leaklab only drove the code that
    allocated (the event loop ran a callback).
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


# -- source lines ---------------------------------------------------------------------------


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


# -- growing sites --------------------------------------------------------------------------


@dataclass
class SiteGrowth:
    """The growth blamed on one frame, summed over every traceback that leads to it."""

    frame: tuple[str, int]  # the blamed frame (see :func:`blame`)
    user: bool  # the blamed frame is the user's code
    size: int = 0  # what grew: bytes and blocks
    count: int = 0
    size_total: int = 0  # what is alive
    count_total: int = 0
    #: (size, oldest-first frames) of the largest contributing traceback
    best: tuple[int, list[tuple[str, int]]] = (-1, [])
    #: allocating frame -> the size it contributed
    allocs: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def alloc(self) -> tuple[str, int]:
        """The frame that allocated most of the growth."""
        return max(self.allocs.items(), key=lambda item: item[1])[0]

    def add(
        self,
        frames: list[tuple[str, int]],
        size: int,
        count: int,
        size_total: int,
        count_total: int,
    ) -> None:
        self.size += size
        self.count += count
        self.size_total += size_total
        self.count_total += count_total
        self.allocs[frames[-1]] = self.allocs.get(frames[-1], 0) + size
        if size > self.best[0]:
            self.best = (size, frames)


def rank_sites(
    stats: Iterable[tuple[Any, int, int, int, int]], classifier: Classifier, top: int
) -> list[SiteGrowth]:
    """Top ``top`` blamed frames by growing size from ``(traceback, size, count, size_total,
    count_total)`` (a traceback: oldest-first frames with ``filename`` and ``lineno``).

    ``size``/``count`` are what grew (survivors of a window, the difference to a
    baseline, what a round of calls retained); only sites that grew in both size and
    count are kept: a container that grew in place (a list's resized array) is not a site.
    """
    sites: dict[tuple[str, int], SiteGrowth] = {}
    for tb, size, count, size_total, count_total in stats:
        frames = [(f.filename, f.lineno) for f in tb]
        blamed = blame(frames, classifier) if frames else None
        if blamed is None:
            continue
        key, user = blamed
        entry = sites.get(key)
        if entry is None:
            entry = sites[key] = SiteGrowth(key, user)
        entry.add(frames, size, count, size_total, count_total)
    growing = [s for s in sites.values() if s.size > 0 and s.count > 0]
    return sorted(growing, key=lambda s: s.size, reverse=True)[:top]


def group_sites(
    stats: Iterable[tuple[Any, int, int, int, int]],
    classifier: Classifier,
    top: int,
    depth: int = 5,
    seen: set[tuple[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """:func:`rank_sites` as the ``sites`` of a ``tracemalloc_snapshot`` event.

    Frames are bare ``file``/``line`` (see :func:`source_lines`); each one shown is
    added to ``seen``.
    """
    out = []
    for entry in rank_sites(stats, classifier, top):
        filename, lineno = entry.frame
        alloc = entry.alloc
        shown = entry.best[1][-depth:]
        if seen is not None:
            seen.add(entry.frame)
            seen.update(shown)
        out.append(
            {
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
            }
        )
    return out
