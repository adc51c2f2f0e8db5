"""Importers: memory series recorded elsewhere, turned into run directories.

One module per format (:mod:`~leaklab.importers.csv_source`, :mod:`~leaklab.importers.mprof`,
:mod:`~leaklab.importers.prometheus`); each reads its source into chunks of points per
series and hands them to :class:`~leaklab.importers.series.RunSink`, which is the only
writer (through :mod:`leaklab.store`). A run written here reads like any other: its
``meta.json`` says where it came from (``source``), ``samples.csv`` has ``t``, ``steps``
(empty unless work was counted), ``rss`` (the imported memory, bytes), ``pid`` and
``generation`` (a restart in the series starts a new one).
"""

from leaklab.importers.series import ImportFailed, RestartRule, RunSink

__all__ = ["ImportFailed", "RestartRule", "RunSink"]
