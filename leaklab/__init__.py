"""leaklab: reproduce, measure, explain and guard against memory leaks in Python services."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("leaklab")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from leaklab.scenario import Param

__all__ = ["Param", "__version__"]
