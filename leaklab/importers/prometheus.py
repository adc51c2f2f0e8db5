"""Prometheus range queries: a saved ``/api/v1/query_range`` response, or a live server.

Each series of the result is one member of a fleet and becomes one run, named by its
labels. Labels listed as *restart labels* (``pid`` by default; ``instance`` for a pod
that comes back under a new name) do not name a member: series that differ only in them
are one member, in time order, each new value a new process generation.

Series of ``process_start_time_seconds`` in the same answer (a query such as
``{__name__=~"process_resident_memory_bytes|process_start_time_seconds",job="api"}``; the
official clients export both from one process collector) are not members: each is the start
time of the member with the same other labels, and a new value is a restart however memory
moved.

A live import asks the server's HTTP API (``GET /api/v1/query_range``) in chunks of
time, so that one answer holds at most :data:`POINTS_PER_CHUNK` points whatever the
fleet's size: memory stays bounded by a chunk. A saved response is read whole (it was
one answer of the server's).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leaklab.importers.series import ImportFailed, RunSink

#: Points (all series together) asked for in one request of a live import.
POINTS_PER_CHUNK = 400_000
#: Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS_PER_SERIES = 11_000
DEFAULT_RESTART_LABELS = ("pid",)
#: A series of this name is the start time of the member with its other labels, not a member.
START_TIME_METRIC = "process_start_time_seconds"
TIMEOUT_S = 60.0


@dataclass
class _Members:
    """Series grouped into fleet members; each member's restart-label values numbered in order."""

    restart_labels: tuple[str, ...]
    ordinals: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)

    def key(self, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        named = {
            k: v
            for k, v in sorted(labels.items())
            if k != "__name__" and k not in self.restart_labels
        }
        return ",".join(f"{k}={v}" for k, v in named.items()), named

    def ordinal(self, key: str, labels: Mapping[str, str]) -> float:
        """What goes in the ``pid`` column: the pid itself when ``pid`` is the only restart label,
        else the number of the restart-label values in order of appearance (1, 2, ...)."""
        values = tuple(str(labels.get(k, "")) for k in self.restart_labels)
        if self.restart_labels == ("pid",):
            try:
                return float(values[0]) if values[0] else math.nan
            except ValueError:
                pass
        seen = self.ordinals.setdefault(key, {})
        return float(seen.setdefault(values, len(seen) + 1))


def _matrix(doc: Any, where: str) -> list[dict[str, Any]]:
    """The ``result`` list of a range-query answer, or why it is not one."""
    if isinstance(doc, dict) and doc.get("status") == "error":
        raise ImportFailed(
            f"{where}: Prometheus answered an error: {doc.get('errorType', 'error')}: "
            f"{doc.get('error', '(no message)')}"
        )
    data = doc.get("data", doc) if isinstance(doc, dict) else None
    if not isinstance(data, dict) or "result" not in data:
        raise ImportFailed(
            f"{where}: not a Prometheus query answer (no data.result); save the JSON of "
            "/api/v1/query_range?query=...&start=...&end=...&step=..."
        )
    kind = data.get("resultType")
    if kind != "matrix":
        raise ImportFailed(
            f"{where}: the answer is a {kind}, not a range of samples (matrix): use "
            "/api/v1/query_range, not /api/v1/query"
        )
    result = data["result"]
    if not isinstance(result, list):
        raise ImportFailed(f"{where}: data.result is not a list")
    return result


def _points(series: Mapping[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    values = series.get("values") or []
    if not values:
        return np.empty(0), np.empty(0)
    try:
        pairs = np.asarray(values, dtype=object)
        return pairs[:, 0].astype(float), pairs[:, 1].astype(float)
    except (ValueError, TypeError, IndexError):
        raise ImportFailed(f'{where}: a series\' values are not [time, "number"] pairs') from None


def _started_at(ts: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """The process start time at each of ``ts`` (NaN where none was answered; the newest
    process where two were)."""
    if not parts:
        return None
    st = np.concatenate([p[0] for p in parts])
    sv = np.concatenate([p[1] for p in parts])
    order = np.lexsort((-sv, st))
    st, sv = st[order], sv[order]
    first = np.concatenate(([True], np.diff(st) > 0))
    st, sv = st[first], sv[first]
    at = np.minimum(np.searchsorted(st, ts), len(st) - 1)
    return np.where(st[at] == ts, sv[at], np.nan)


def _feed(result: Iterable[Mapping[str, Any]], sink: RunSink, members: _Members, where: str) -> int:
    """Hand one answer's series to the sink, merged into members; returns the series seen."""
    grouped: dict[str, list[tuple[float, dict[str, str], np.ndarray, np.ndarray]]] = {}
    starts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    count = 0
    for series in result:
        labels = {str(k): str(v) for k, v in (series.get("metric") or {}).items()}
        ts, values = _points(series, where)
        count += 1
        if not len(ts):
            continue
        key, _ = members.key(labels)
        if labels.get("__name__") == START_TIME_METRIC:
            starts.setdefault(key, []).append((ts, values))
            continue
        grouped.setdefault(key, []).append((members.ordinal(key, labels), labels, ts, values))
    for key, parts in grouped.items():
        _, named = members.key(parts[0][1])
        if len(parts) == 1:
            ordinal, _, ts, values = parts[0]
            pids = np.full(len(ts), ordinal)
        else:
            # The newest process wins where two answer at one time (one still draining).
            ts = np.concatenate([p[2] for p in parts])
            values = np.concatenate([p[3] for p in parts])
            pids = np.concatenate([np.full(len(p[2]), p[0]) for p in parts])
            order = np.lexsort((-pids, ts))
            ts, values, pids = ts[order], values[order], pids[order]
            first = np.concatenate(([True], np.diff(ts) > 0))
            ts, values, pids = ts[first], values[first], pids[first]
        name = parts[0][1].get("__name__")
        sink.add(
            key,
            {**({"__name__": name} if name else {}), **named},
            ts,
            values,
            pids=pids,
            started=_started_at(ts, starts.get(key, [])),
        )
    return count


def import_saved(
    path: str | Path, sink: RunSink, restart_labels: tuple[str, ...] = DEFAULT_RESTART_LABELS
) -> None:
    """Feed a saved range-query answer (a JSON file) to ``sink``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{path}: not JSON ({exc})") from None
    result = _matrix(doc, str(path))
    seen = _feed(result, sink, _Members(restart_labels), str(path))
    if not sink.series:
        raise ImportFailed(f"{path}: the query matched nothing ({seen} series with samples: 0)")


def _get(session: Any, url: str, params: Mapping[str, Any], timeout: float) -> Any:
    import requests

    endpoint = url.rstrip("/") + "/api/v1/query_range"
    try:
        response = session.get(endpoint, params=params, timeout=timeout)
    except requests.RequestException as exc:
        raise ImportFailed(
            f"cannot reach Prometheus at {url}: {type(exc).__name__}: {exc}; is it running, "
            "and is --prometheus its base URL (http://host:9090)?"
        ) from None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code != 200:
        detail = (
            f"{doc.get('errorType')}: {doc.get('error')}"
            if isinstance(doc, dict) and doc.get("error")
            else response.text[:200].strip()
        )
        raise ImportFailed(f"Prometheus at {url} answered HTTP {response.status_code}: {detail}")
    if doc is None:
        raise ImportFailed(f"{endpoint} did not answer JSON: is --prometheus a Prometheus server?")
    return doc


def _chunk_params(
    query: str, start: float, step: float, total_points: int, per_chunk: int
) -> list[dict[str, Any]]:
    """The range queries of a live import in time order, ``per_chunk`` points per series each."""
    chunks = []
    first = 0
    while first < total_points:
        last = min(total_points - 1, first + per_chunk - 1)
        chunks.append(
            {
                "query": query,
                "start": start + first * step,
                "end": start + last * step,
                "step": step,
            }
        )
        first = last + 1
    return chunks


def import_live(
    url: str,
    query: str,
    start: float,
    end: float,
    step: float,
    sink: RunSink,
    restart_labels: tuple[str, ...] = DEFAULT_RESTART_LABELS,
    timeout: float = TIMEOUT_S,
) -> None:
    """Feed ``query`` over ``[start, end]`` every ``step`` seconds, from the server at ``url``."""
    import requests

    if not end > start:
        raise ImportFailed(f"--start must be before --end (start {start}, end {end})")
    if not step > 0:
        raise ImportFailed("--step must be positive")
    total_points = int((end - start) // step) + 1
    members = _Members(restart_labels)
    # One request ahead: the server answers the next chunk while this one is written (the
    # answers are fed in order, so the runs are the same; two chunks are held at most).
    with requests.Session() as session, ThreadPoolExecutor(max_workers=1) as ahead:
        # A coarse look first: how many series, so a chunk of time holds a bounded number of points.
        coarse_step = max(step, (end - start) / 20)
        probe = _matrix(
            _get(
                session,
                url,
                {"query": query, "start": start, "end": end, "step": coarse_step},
                timeout,
            ),
            url,
        )
        if not probe:
            raise ImportFailed(
                f"the query matched nothing between {start:.0f} and {end:.0f}: {query}"
            )
        per_chunk = int(min(MAX_POINTS_PER_SERIES, max(10, POINTS_PER_CHUNK // len(probe))))
        chunks = _chunk_params(query, start, step, total_points, per_chunk)
        answer = ahead.submit(_get, session, url, chunks[0], timeout)
        for k in range(len(chunks)):
            doc = answer.result()
            if k + 1 < len(chunks):
                answer = ahead.submit(_get, session, url, chunks[k + 1], timeout)
            _feed(_matrix(doc, url), sink, members, url)
            del doc
    if not sink.series:
        raise ImportFailed(f"the query matched nothing between {start:.0f} and {end:.0f}: {query}")
