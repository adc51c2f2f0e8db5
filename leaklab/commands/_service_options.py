"""Moved to :mod:`leaklab.commands.service_options`; kept until ``commands/plan.py`` imports from there."""

from leaklab.commands.service_options import config_fields, options, signal_name

__all__ = ["config_fields", "options", "signal_name"]
