"""Thin a long series for drawing only. Numbers are always computed on every
sample by the analysis; a chart of 86,400 points looks the same with 4,000 of them
when each bucket keeps its lowest and highest point (peaks and troughs of a
sawtooth survive, unlike plain striding)."""

from __future__ import annotations

import numpy as np

MAX_POINTS = 4000


def envelope(
    x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of (x, y): per bucket of consecutive samples, the
    minimum and the maximum, in time order. Non-finite values are dropped first."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    starts = edges[:-1]
    lo_idx = starts + np.array(
        [int(np.argmin(y[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    hi_idx = starts + np.array(
        [int(np.argmax(y[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    idx = np.sort(np.unique(np.concatenate([lo_idx, hi_idx])))
    return x[idx], y[idx]


def envelope_by_process(
    x: np.ndarray, y: np.ndarray, process: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`envelope` of each process generation's rows, joined by a NaN point, so a
    drawn line breaks at a restart instead of joining one process to the next."""
    x, y, process = (np.asarray(a, dtype=float) for a in (x, y, process))
    labels = np.unique(process)
    if len(labels) <= 1:
        return envelope(x, y, max_points)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for label in labels:
        rows = process == label
        share = max(2, int(max_points * rows.sum() / len(process)))
        px, py = envelope(x[rows], y[rows], share)
        if len(px):
            xs += [px, np.array([np.nan])]
            ys += [py, np.array([np.nan])]
    if not xs:
        return np.array([]), np.array([])
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1])
