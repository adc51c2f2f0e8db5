"""mprof ``.dat`` files (memory_profiler's ``mprof run``), read with memory_profiler's own reader.

``MEM`` lines are the profiled process (its children included with ``mprof run -C``);
``CHLD <pid>`` lines (``mprof run -M``) are each child process on its own. Every process
becomes one run: ``main`` and ``child-<pid>``. mprof records MiB; runs hold bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leaklab.importers.series import ImportFailed, RunSink

MIB = 2**20


def import_mprof(path: str | Path, sink: RunSink) -> None:
    """Feed the processes of the mprof file at ``path`` to ``sink``."""
    from mprof import read_mprofile_file

    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    try:
        content = read_mprofile_file(str(path))
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ImportFailed(
            f"{path}: not an mprof .dat file ({exc}); record one with `mprof run SCRIPT`"
        ) from None
    command = (content.get("cmd_line") or "").strip()
    sink.source.update(command=command or None)
    if content["mem_usage"]:
        sink.add(
            "main",
            {"process": "main"},
            np.asarray(content["timestamp"]),
            np.asarray(content["mem_usage"]) * MIB,
        )
    for pid, points in sorted(
        content["children"].items(), key=lambda kv: kv[1][0][1] if kv[1] else 0
    ):
        mem, ts = (np.asarray(v, dtype=float) for v in zip(*points, strict=True))
        try:
            pid_value = float(pid)
        except ValueError:
            pid_value = np.nan
        sink.add(
            f"child-{pid}",
            {"process": "child", "pid": str(pid)},
            ts,
            mem * MIB,
            pids=np.full(len(ts), pid_value),
        )
    if not sink.series:
        raise ImportFailed(
            f"{path}: no MEM or CHLD samples; mprof wrote no measurement (was the run too short?)"
        )
