"""Moved: the terminal summary is :mod:`leaklab.report.text` (the output layer).

Kept only until ``leaklab/commands/run.py`` and ``leaklab/commands/watch.py`` import
``format_summary`` from there; then delete this module.
"""

from leaklab.report.text import format_summary

__all__ = ["format_summary"]
