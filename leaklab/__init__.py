"""leaklab: reproduce, measure, explain and guard against memory leaks in Python services."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("leaklab")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from typing import Any

from leaklab.scenario import Param

__all__ = ["Param", "__version__", "compare", "load_run", "rank_fleet"]


def __getattr__(name: str) -> Any:
    # The notebook API pulls in pandas: imported on first use, never by `leaklab run`.
    if name in ("load_run", "compare", "rank_fleet"):
        from leaklab import api

        return getattr(api, name)
    raise AttributeError(f"module 'leaklab' has no attribute {name!r}")
