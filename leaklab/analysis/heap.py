"""JS heap or native: where a Node.js program's growth is (pure functions over a run).

A Node.js program run with ``leaklab run -- node ...`` records the V8 heap from inside
(``v8_heap_used``, ``v8_heap_total``, ``v8_external``: :data:`leaklab.runner.command.NODE_COLUMNS`)
beside RSS from outside. Over the analysed window, the share of RSS growth that the
used JS heap accounts for says where to look: a heap snapshot (JS objects kept alive)
or native memory (Buffers, addons, the allocator). The heap's committed size
(``v8_heap_total``) is what JS objects cost in RSS: V8 grows it ahead of the used size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from leaklab import store, units
from leaklab.analysis import window as window_mod

#: Above this share of RSS growth the growth is "in the JS heap"; below its complement "native".
MOSTLY = 0.6
#: Fewest analysed samples of a generation for its slopes.
MIN_SAMPLES = 5
#: RSS growth below this (bytes/h) is not split.
FLAT_PER_H = 1e6


@dataclass
class HeapSplit:
    rss_per_s: float  # bytes/s, Theil-Sen over the window
    heap_used_per_s: float
    heap_total_per_s: float  # committed heap: its pages are in RSS
    external_per_s: float
    heap_share: float  # heap_total_per_s / rss_per_s
    where: str  # "js-heap", "native", "both", or "flat" (RSS does not grow)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }

    def sentence(self) -> str:
        rss, heap, used, external = (
            units.format_growth(per_s * 3600, "bytes", "h", signed=True)
            for per_s in (
                self.rss_per_s,
                self.heap_total_per_s,
                self.heap_used_per_s,
                self.external_per_s,
            )
        )
        if self.where == "flat":
            return f"RSS grows {rss}: nothing to split between the JS heap and native memory."
        where = {
            "js-heap": "mostly in the JS heap (take a heap snapshot)",
            "native": "mostly outside the JS heap (Buffers, native addons, the allocator)",
            "both": "in the JS heap and outside it",
        }[self.where]
        return (
            f"the V8 heap grows {heap} committed ({used} used) of RSS's {rss} "
            f"({self.heap_share:.0%}); external memory {external}: the growth is {where}."
        )


def heap_split(run: store.RunData | str) -> HeapSplit | None:
    """The split over the analysed window, or None when the run has no V8 heap samples."""
    if not isinstance(run, store.RunData):
        run = store.read_run(run, warn=False)
    columns = run.columns
    used = np.asarray(columns.get("v8_heap_used") or [], dtype=float)
    if not len(used) or not np.isfinite(used).any():
        return None
    # Imported only for a run with V8 heap samples: it costs most of a second.
    from scipy import stats

    mask = window_mod.select(columns, run.meta).mask
    t = np.asarray(columns["t"], dtype=float)
    rss = np.asarray(columns["rss"], dtype=float)
    external = np.asarray(columns.get("v8_external") or [math.nan] * len(t), dtype=float)
    gen = np.nan_to_num(np.asarray(columns.get("generation") or [0.0] * len(t), dtype=float))
    total = np.asarray(columns.get("v8_heap_total") or [math.nan] * len(t), dtype=float)
    # Within each process generation (a restart resets all three), then the median over them.
    per_generation = []
    for g in np.unique(gen):
        keep = mask & np.isfinite(used) & np.isfinite(rss) & (gen == g)
        if keep.sum() < MIN_SAMPLES:
            continue

        def slope(y: np.ndarray, keep: np.ndarray = keep) -> float:
            ok = keep & np.isfinite(y)
            return (
                float(stats.theilslopes(y[ok], t[ok])[0]) if ok.sum() >= MIN_SAMPLES else math.nan
            )

        per_generation.append([slope(rss), slope(used), slope(total), slope(external)])
    if not per_generation:
        return None
    rss_s, used_s, total_s, ext_s = (
        float(v) for v in np.nanmedian(np.array(per_generation), axis=0)
    )
    share = total_s / rss_s if rss_s > 0 else math.nan
    if not rss_s * 3600 >= FLAT_PER_H:
        where = "flat"
    else:
        where = "js-heap" if share >= MOSTLY else "native" if share <= 1 - MOSTLY else "both"
    return HeapSplit(rss_s, used_s, total_s, ext_s, share, where)
