"""The package's structure rules (docs/architecture.md), checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "leaklab"
MAX_FUNCTION_LINES = 60
#: Folders whose functions must each fit on one screen.
SHORT_FUNCTION_FOLDERS = ("runner", "analysis")
#: Which layers a layer may import (docs/architecture.md); a top-level module is its own layer.
FORBIDDEN_IMPORTS = {
    "store": (
        "leaklab.runner",
        "leaklab.analysis",
        "leaklab.report",
        "leaklab.gate",
        "leaklab.probes",
    ),
    "runner": ("leaklab.analysis", "leaklab.report", "leaklab.gate", "leaklab.commands"),
    "analysis": (
        "leaklab.runner",
        "leaklab.report",
        "leaklab.gate",
        "leaklab.probes",
        "leaklab.commands",
    ),
    "report": ("leaklab.runner", "leaklab.probes", "leaklab.commands"),
    "probes": (
        "leaklab.runner",
        "leaklab.analysis",
        "leaklab.report",
        "leaklab.gate",
        "leaklab.commands",
    ),
    "importers": (
        "leaklab.runner",
        "leaklab.analysis",
        "leaklab.report",
        "leaklab.gate",
        "leaklab.probes",
    ),
}
#: Modules every layer may import, and the only leaklab modules each of them imports.
FOUNDATIONS = {
    "kinds": (),
    "records": ("leaklab.kinds",),
    "units": (),
    "naming": (),
    "pm2_defaults": (),
    "chain_graph": (),
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(tree: ast.Module) -> list[tuple[str, list[str], int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, [], node.lineno) for a in node.names)
    return found


def test_no_module_imports_a_private_name_from_another() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name} from {module}"
        for path in _modules()
        for module, names, line in _imports(_tree(path))
        if module.startswith("leaklab")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_layers_import_only_what_they_may() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {module}"
        for path in _modules()
        for module, _names, line in _imports(_tree(path))
        for forbidden in FORBIDDEN_IMPORTS.get(_layer(path), ())
        if module == forbidden or module.startswith(forbidden + ".")
    ]
    assert offenders == []


def test_foundations_import_only_foundations() -> None:
    offenders = [
        f"leaklab/{name}.py:{line}: imports {module}"
        for name, allowed in FOUNDATIONS.items()
        for module, _names, line in _imports(_tree(PACKAGE / f"{name}.py"))
        if module.startswith("leaklab") and module not in allowed
    ]
    assert offenders == []


@pytest.mark.parametrize("folder", SHORT_FUNCTION_FOLDERS)
def test_functions_fit_on_one_screen(folder: str) -> None:
    too_long = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.name} ({lines} lines)"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for node in ast.walk(_tree(path))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (lines := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert too_long == []
