"""The scenario protocol: discovery, loading, variants and typed parameters.

A scenario is a plain Python file::

    \"\"\"One line that `leaklab list` shows.\"\"\"
    def setup() -> dict: ...          # optional; returns the state
    def step(state) -> None: ...      # required; one unit of work
    def teardown(state) -> None: ...  # optional

Optional module-level names:

``VARIANTS``
    ``{"leaky": "what it does", "fixed": "..."}``; the first is the default. A value
    may also be a dict with ``doc``, ``params`` (default overrides for this variant)
    and ``rate`` (a default ``--rate`` for this variant, e.g. ``"37/s"``).
``PARAMS``
    ``{"response_size": 2048, "timeout": Param("5s", kind="duration", help="...")}``:
    plain defaults take their type from the default; :class:`Param` adds help text
    and unit-aware kinds (``size``, ``duration``, ``rate``) or ``choices``.

``setup``, ``step`` and ``teardown`` may be ``async def``. ``setup`` receives, by
keyword, whichever of ``variant``, ``params`` (a dict of every resolved value) or
individual parameter names its signature names.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from leaklab import units

ENV_VAR = "LEAKLAB_SCENARIOS"


class ScenarioError(Exception):
    """A scenario that cannot be found, loaded or configured; the message says what to do."""


@dataclass
class Param:
    """A scenario parameter with a default, help text and an optional unit-aware kind."""

    default: Any
    help: str = ""
    kind: str | None = None  # None (type of the default), "size", "duration", "rate"
    choices: tuple[Any, ...] | None = None

    def type_name(self) -> str:
        if self.kind:
            return self.kind
        return type(self.default).__name__

    def coerce(self, raw: Any, name: str = "") -> Any:
        """Turn ``raw`` (a string from ``--param`` or a Python value) into this parameter's type."""
        label = f"parameter {name!r}" if name else "parameter"
        try:
            value = self._coerce(raw)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"{label}: {exc}") from None
        if self.choices is not None and value not in self.choices:
            raise ScenarioError(
                f"{label}: {raw!r} is not one of {', '.join(map(str, self.choices))}"
            )
        return value

    def _coerce(self, raw: Any) -> Any:
        if self.kind == "size":
            return units.parse_size(raw)
        if self.kind == "duration":
            return units.parse_duration(raw)
        if self.kind == "rate":
            return units.parse_rate(raw)
        default = self.default
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected a boolean (true/false/1/0/yes/no), got {raw!r}")
        if isinstance(default, int):
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            text = str(raw).strip().replace("_", "")
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"expected an integer, got {raw!r}") from None
        if isinstance(default, float):
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"expected a number, got {raw!r}") from None
        if default is None or isinstance(default, str):
            return str(raw)
        # Lists, dicts and other literals: only Python literals are accepted, never code.
        if isinstance(raw, str):
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                raise ValueError(
                    f"expected a {type(default).__name__} literal, got {raw!r}"
                ) from None
        else:
            value = raw
        if not isinstance(value, type(default)):
            raise ValueError(f"expected a {type(default).__name__}, got {raw!r}")
        return value


@dataclass
class Variant:
    name: str
    doc: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    rate: str | None = None
    #: other names accepted by ``--variant`` (``leaky`` for a scenario's main leak)
    aliases: tuple[str, ...] = ()


@dataclass
class Scenario:
    """A loaded scenario module and what it declares."""

    name: str
    path: Path
    module: ModuleType
    description: str
    variants: dict[str, Variant]
    params: dict[str, Param]
    setup: Callable[..., Any] | None
    step: Callable[[Any], Any]
    teardown: Callable[[Any], Any] | None

    @property
    def default_variant(self) -> str | None:
        return next(iter(self.variants), None)

    @property
    def is_async(self) -> bool:
        return any(
            fn is not None and inspect.iscoroutinefunction(fn)
            for fn in (self.setup, self.step, self.teardown)
        )

    def resolve_variant(self, variant: str | None) -> str | None:
        if variant is None:
            return self.default_variant
        if not self.variants:
            raise ScenarioError(f"scenario {self.name!r} has no variants; drop --variant")
        for candidate in self.variants.values():
            if variant in candidate.aliases:
                return candidate.name
        if variant not in self.variants:
            raise ScenarioError(
                f"scenario {self.name!r} has no variant {variant!r}; known variants: "
                f"{', '.join(self.variants)}"
            )
        return variant

    def resolve_params(self, variant: str | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults, then the variant's defaults, then ``overrides``; each type-checked."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "(none)"
            raise ScenarioError(
                f"scenario {self.name!r} has no parameter {unknown[0]!r}; known parameters: {known}"
            )
        values: dict[str, Any] = {}
        variant_defaults = self.variants[variant].params if variant in self.variants else {}
        for name, param in self.params.items():
            raw = overrides.get(name, variant_defaults.get(name, param.default))
            values[name] = param.coerce(raw, name) if raw is not None else None
        return values

    def setup_kwargs(self, variant: str | None, params: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments ``setup`` asks for by name."""
        if self.setup is None:
            return {}
        signature = inspect.signature(self.setup)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        offered: dict[str, Any] = {"variant": variant, "params": dict(params), **params}
        if accepts_any:
            return offered
        return {k: v for k, v in offered.items() if k in signature.parameters}

    def default_rate(self, variant: str | None) -> str | None:
        return self.variants[variant].rate if variant in self.variants else None


def normalize_name(name: str) -> str:
    """``http-agent`` and ``http_agent`` name the same scenario."""
    return name.replace("-", "_")


def display_name(path: Path) -> str:
    return path.stem.replace("_", "-")


def builtin_dir() -> Path | None:
    """The scenarios shipped with leaklab: the wheel's copy, else the source checkout's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_builtin_scenarios", here.parent / "scenarios"):
        if candidate.is_dir():
            return candidate
    return None


def search_dirs(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Where named scenarios are looked up, first match wins: ``--scenarios``,
    ``$LEAKLAB_SCENARIOS``, ``./scenarios``, then the built-in ones."""
    dirs = [Path(d) for d in extra]
    dirs += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    dirs.append(Path.cwd() / "scenarios")
    builtin = builtin_dir()
    if builtin is not None:
        dirs.append(builtin)
    unique: list[Path] = []
    for d in dirs:
        resolved = d.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def discover(extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> dict[str, Path]:
    """Every scenario name found in :func:`search_dirs`, mapped to its file (first wins)."""
    found: dict[str, Path] = {}
    for directory in search_dirs(extra_dirs):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            found.setdefault(display_name(path), path)
    return found


def find(name_or_path: str, extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """The file for a scenario name (``http-agent``) or a path (``my/scenario.py``)."""
    candidate = Path(name_or_path)
    if name_or_path.endswith(".py") or os.sep in name_or_path or candidate.is_file():
        if candidate.is_file():
            return candidate.resolve()
        raise ScenarioError(f"no scenario file at {name_or_path!r}")
    wanted = normalize_name(name_or_path)
    known = discover(extra_dirs)
    for name, path in known.items():
        if normalize_name(name) == wanted:
            return path
    listing = ", ".join(sorted(known)) or "(none found)"
    raise ScenarioError(
        f"unknown scenario {name_or_path!r}; known scenarios: {listing}. "
        f"Pass a path to a .py file to run your own, or point --scenarios / ${ENV_VAR} at a folder."
    )


def _module_name(path: Path) -> str:
    stem = path.stem.replace("-", "_")
    return stem if stem.isidentifier() else f"scenario_{abs(hash(str(path)))}"


def load(path: str | os.PathLike[str]) -> Scenario:
    """Import a scenario file and read its declarations (imports run; setup does not)."""
    path = Path(path).resolve()
    module_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so dataclasses, pickling-free reprs and retention chains see a real
    # module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ScenarioError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    step = getattr(module, "step", None)
    if not callable(step):
        raise ScenarioError(f"{path} defines no step(state) function; a scenario needs one")
    doc = inspect.getdoc(module) or ""
    return Scenario(
        name=display_name(path),
        path=path,
        module=module,
        description=doc.strip().splitlines()[0] if doc.strip() else "",
        variants=_read_variants(getattr(module, "VARIANTS", None), path),
        params=_read_params(getattr(module, "PARAMS", None), path),
        setup=_optional_callable(module, "setup"),
        step=step,
        teardown=_optional_callable(module, "teardown"),
    )


def _optional_callable(module: ModuleType, name: str) -> Callable[..., Any] | None:
    fn = getattr(module, name, None)
    return fn if callable(fn) else None


def _read_variants(raw: Any, path: Path) -> dict[str, Variant]:
    if raw is None:
        return {}
    if isinstance(raw, (list, tuple)):
        raw = {str(name): "" for name in raw}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{path}: VARIANTS must be a dict or a list of names")
    variants: dict[str, Variant] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            variants[name] = Variant(name=name, doc=value)
        elif isinstance(value, Mapping):
            unknown = set(value) - {"doc", "params", "rate", "aliases"}
            if unknown:
                raise ScenarioError(
                    f"{path}: variant {name!r} has unknown keys {sorted(unknown)}; use doc, "
                    "params, rate, aliases"
                )
            if value.get("rate") is not None:
                units.parse_rate(value["rate"])
            aliases = value.get("aliases", ())
            aliases = (aliases,) if isinstance(aliases, str) else tuple(map(str, aliases))
            variants[name] = Variant(
                name=name,
                doc=value.get("doc", ""),
                params=dict(value.get("params", {})),
                rate=value.get("rate"),
                aliases=aliases,
            )
        else:
            raise ScenarioError(f"{path}: variant {name!r} must map to a description or a dict")
    taken = set(variants)
    for variant in variants.values():
        clash = taken.intersection(variant.aliases)
        if clash:
            raise ScenarioError(
                f"{path}: alias {sorted(clash)[0]!r} of variant {variant.name!r} is already a "
                "variant or alias"
            )
        taken.update(variant.aliases)
    return variants


def _read_params(raw: Any, path: Path) -> dict[str, Param]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{path}: PARAMS must be a dict of name -> default")
    return {
        name: value if isinstance(value, Param) else Param(value) for name, value in raw.items()
    }


def parse_param_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``["size=4KB", "n=3"]`` -> ``{"size": "4KB", "n": "3"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ScenarioError(f"--param takes name=value, got {pair!r}")
        out[name.strip()] = value
    return out


def describe(path: Path) -> dict[str, Any]:
    """A listing entry: name, description, variants and parameters; an import failure is
    reported, not raised."""
    try:
        scenario = load(path)
    except ScenarioError as exc:
        return {
            "name": display_name(path),
            "path": str(path),
            "description": f"(cannot load: {exc})",
            "variants": {},
            "params": {},
        }
    return {
        "name": scenario.name,
        "path": str(scenario.path),
        "description": scenario.description,
        "variants": {v.name: v.doc for v in scenario.variants.values()},
        "aliases": {alias: v.name for v in scenario.variants.values() for alias in v.aliases},
        "params": {
            name: {"default": p.default, "type": p.type_name(), "help": p.help}
            for name, p in scenario.params.items()
        },
    }
