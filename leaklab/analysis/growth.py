"""Growth rate of one sampled signal, with a confidence interval that survives
autocorrelated samples.

Method, in order:

1. **Bins.** The post-warm-up samples are cut into at most ``n_bins`` consecutive
   groups of equal count (never across a process generation) and each group is
   reduced to its median time, steps and value. Medians ignore outliers (a
   temporary buffer, one slow read) and shrink the GC sawtooth.
2. **Slope.** Theil-Sen over the bin medians: the median of the slopes between
   every pair of bins (pairs within the same generation only, so a recycled run's
   restarts do not count as growth). Done twice: against ``t`` (units/s) and
   against ``steps`` (units/step).
3. **Interval.** A moving-block bootstrap of the residuals around the Theil-Sen
   line: blocks of consecutive residuals keep their autocorrelation (allocator
   steps, sawtooth, slow drift), so the interval widens where the samples are
   not independent. Block length grows with the residuals' autocorrelation time.
   The bootstrap uses a fixed seed: the same run always gives the same numbers.

The last part of the window (the "tail") gets its own slope and interval, fitted the
same way: a leak keeps growing there, a cache that filled up does not. Over several
process generations the tail is the last part of each one (a restart starts memory
over). A signal that repeatedly drops back (resets) gets the slope of its troughs, the
floor a sawtooth returns to: a leak raises the floor, a periodic clear does not.
"""

from __future__ import annotations

import functools
import math
from dataclasses import InitVar, asdict, dataclass, field, replace
from typing import Any

import numpy as np

# Student's t quantiles straight from scipy.special (what scipy.stats.t.ppf calls): importing
# scipy.stats costs every analysing command most of a second, and only short stretches need it.
from scipy.special import stdtrit

#: Signals analysed, in display order, and their unit.
SIGNALS: dict[str, str] = {"rss": "bytes", "uss": "bytes", "blocks": "blocks", "traced": "bytes"}
#: Run columns behind each signal.
COLUMN_OF: dict[str, str] = {
    "rss": "rss",
    "uss": "uss",
    "blocks": "allocated_blocks",
    "traced": "traced",
}

BASELINE_DEFINITION = "the value of the fitted line at t_start, the first sample after the warm-up"


@dataclass(frozen=True)
class GrowthOptions:
    """How growth is estimated (defaults suit runs from a few seconds to days)."""

    n_bins: int = 64  # bins the window is reduced to (Theil-Sen is O(bins^2))
    n_boot: int = 200  # bootstrap replicates
    tail_fraction: float = 1 / 3  # last part of the window whose own slope is reported
    reset_fraction: float = 0.5  # a drop by this share of the signal's range is a reset
    seed: int = 0


@dataclass
class Growth:
    """Growth of one signal over the analysed window, in the signal's ``unit`` (bytes or
    blocks): ``per_s`` and ``per_step`` are the slopes, ``per_hour`` the slope per hour.
    ``pct_per_hour`` is relative to ``baseline``: the value of the fitted line at
    ``t_start`` (see :data:`BASELINE_DEFINITION`).

    ``to_dict`` (the ``--json`` output) keeps the historical keys ``bytes_per_s``,
    ``bytes_per_step`` and ``mb_per_hour`` (millions of units per hour); the same names
    are accepted by the constructor and readable as attributes, for code written before
    the unit-neutral names.
    """

    signal: str
    unit: str
    per_s: float = math.nan
    per_step: float = math.nan
    pct_per_hour: float = math.nan
    baseline: float = math.nan
    ci95: tuple[float, float] = (math.nan, math.nan)
    ci95_per_step: tuple[float, float] = (math.nan, math.nan)
    n_samples: int = 0
    t_start: float = math.nan
    t_end: float = math.nan
    steps_per_s: float = math.nan
    n_bins: int = 0
    block_len: int = 0
    tail_per_s: float = math.nan  # slope over the last ``tail_fraction`` of the window
    tail_ci95: tuple[float, float] = (math.nan, math.nan)
    tail_per_step: float = math.nan  # the same two slopes per step (NaN where steps are unknown)
    tail_ci95_per_step: tuple[float, float] = (math.nan, math.nan)
    head_per_step: float = math.nan
    head_ci95_per_step: tuple[float, float] = (math.nan, math.nan)
    tail_high: float = math.nan  # highest bin median in the tail
    head_high: float = math.nan  # highest bin median before the tail
    #: how far the tail's highest bin is above the head's: a new high in the tail when positive
    #: (over several generations, the median of each generation's own)
    tail_above_head: float = math.nan
    head_per_s: float = math.nan  # slope over the window before the tail
    head_ci95: tuple[float, float] = (math.nan, math.nan)
    resets: int = 0  # drops by more than half the range (a sawtooth's clears)
    floor_per_s: float = math.nan  # slope of the troughs between resets (when resets >= 2)
    floor_ci95: tuple[float, float] = (math.nan, math.nan)
    max_jump: float = math.nan  # largest single rise between bins (allocator step size)
    max_fall: float = math.nan  # the same for falls
    first: float = math.nan  # median of the first bin
    last: float = math.nan  # median of the last bin
    span: float = math.nan  # robust range of the bin medians (max - min)
    generations: int = 1
    #: blocks only: the count after full collections, from its first to its last reading in
    #: the window, per step (NaN without two readings): what really stayed alive
    settled_per_step: float = math.nan
    #: blocks only: the slope of every raw reading per step, garbage included
    raw_per_step: float = math.nan
    notes: list[str] = field(default_factory=list)
    bytes_per_s: InitVar[float | None] = None  # the former names of per_s and per_step
    bytes_per_step: InitVar[float | None] = None

    def __post_init__(self, bytes_per_s: float | None, bytes_per_step: float | None) -> None:
        if bytes_per_s is not None:
            self.per_s = bytes_per_s
        if bytes_per_step is not None:
            self.per_step = bytes_per_step

    @property
    def per_hour(self) -> float:
        return self.per_s * 3600

    @property
    def mb_per_hour(self) -> float:
        """Millions of units per hour (MB/h for bytes): the ``--json`` key of the same name."""
        return self.per_s * 3600 / 1e6

    @property
    def window_s(self) -> float:
        return self.t_end - self.t_start

    @property
    def ci95_half_width(self) -> float:
        lo, hi = self.ci95
        return (hi - lo) / 2

    @property
    def n_blocks(self) -> float:
        """Independent blocks behind the interval (bins over the bootstrap block length)."""
        return self.n_bins / self.block_len if self.block_len else math.nan

    def at_level(self, level: float) -> Growth:
        """The same estimate with every interval stretched from 95% to ``level`` (for a
        verdict that must hold over several looks at the data). The bootstrap gives the
        95% interval; other levels scale it by the ratio of Student's t quantiles for
        the interval's independent blocks."""
        if level == 0.95:
            return self
        df = max(self.n_blocks - 1, 1.0) if math.isfinite(self.n_blocks) else 1e6
        factor = float(stdtrit(df, 0.5 + level / 2) / stdtrit(df, 0.975))

        def stretch(centre: float, interval: tuple[float, float]) -> tuple[float, float]:
            lo, hi = interval
            if not math.isfinite(centre):
                return interval
            return centre - factor * (centre - lo), centre + factor * (hi - centre)

        return replace(
            self,
            ci95=stretch(self.per_s, self.ci95),
            ci95_per_step=stretch(self.per_step, self.ci95_per_step),
            tail_ci95=stretch(self.tail_per_s, self.tail_ci95),
            head_ci95=stretch(self.head_per_s, self.head_ci95),
            tail_ci95_per_step=stretch(self.tail_per_step, self.tail_ci95_per_step),
            head_ci95_per_step=stretch(self.head_per_step, self.head_ci95_per_step),
            floor_ci95=stretch(self.floor_per_s, self.floor_ci95),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, under the documented keys (``bytes_per_s``, ``bytes_per_step``,
        ``mb_per_hour``: the names from before the unit-neutral fields)."""
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key in _JSON_KEYS:
                data[_JSON_KEYS[key]] = value
                if key == "per_step":
                    data["mb_per_hour"] = self.mb_per_hour
            elif key in _INTERVALS:
                data[key] = [_clean(v) for v in value]
            else:
                data[key] = value
        return {k: _clean(v) if isinstance(v, float) else v for k, v in data.items()}


#: Fields shown under another key in ``--json``.
_JSON_KEYS = {"per_s": "bytes_per_s", "per_step": "bytes_per_step"}
_INTERVALS = (
    "ci95",
    "ci95_per_step",
    "tail_ci95",
    "head_ci95",
    "floor_ci95",
    "tail_ci95_per_step",
    "head_ci95_per_step",
)


def _former_name(new: str) -> property:
    """A read-only alias under a field's former name."""
    return property(lambda self: getattr(self, new), doc=f"Former name of ``{new}``.")


# The constructor's former-name arguments (InitVars) leave their defaults as class attributes: the
# aliases replace them, so ``growth.bytes_per_s`` reads ``per_s``.
Growth.bytes_per_s = _former_name("per_s")  # type: ignore[assignment]
Growth.bytes_per_step = _former_name("per_step")  # type: ignore[assignment]


def _clean(value: float) -> float | None:
    """JSON has no NaN: missing numbers become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def empty_growth(
    signal: str,
    n_samples: int = 0,
    t_start: float = math.nan,
    t_end: float = math.nan,
    note: str = "",
) -> Growth:
    return Growth(
        signal=signal,
        unit=SIGNALS.get(signal, "bytes"),
        n_samples=n_samples,
        t_start=t_start,
        t_end=t_end,
        notes=[note] if note else [],
    )


def median_last_axis(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=-1)``, the same bits, faster: one partition at the middle (numpy's
    vectorised select) instead of np.median's partition at three places, and for an even count
    the largest value below the middle. A row holding NaN is NaN, as in np.median. Rows whose
    median is zero are taken from np.median itself: among equal zeros the two selections may
    pick a different sign of zero."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 0 or a.shape[-1] == 0:
        return np.median(a, axis=-1)
    n = a.shape[-1]
    rows = a.reshape(-1, n)
    half = n // 2
    part = np.partition(rows, half, axis=-1)
    upper = part[:, half]
    # np.median's mean of the two middle values: their sum over two
    mid = upper.copy() if n % 2 else (part[:, :half].max(axis=-1) + upper) / 2
    mid[np.isnan(rows).any(axis=-1)] = np.nan
    zero = mid == 0
    if zero.any():
        mid[zero] = np.median(rows[zero], axis=-1)
    return mid.reshape(a.shape[:-1])[()]


def bin_edges(group: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of up to ``n_bins`` equal-count bins that never cross a group
    (``group`` in row order): each group gets its share of the bins, none empty."""
    n = len(group)
    bounds = np.flatnonzero(np.diff(group)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [n]))
    lows: list[np.ndarray] = []
    highs: list[np.ndarray] = []
    for a, b in zip(starts, ends, strict=True):
        k = max(1, round(n_bins * (b - a) / n))
        edges = np.linspace(a, b, k + 1).round().astype(int)
        lows.append(edges[:-1])
        highs.append(edges[1:])
    lo, hi = np.concatenate(lows), np.concatenate(highs)
    keep = hi > lo
    return lo[keep], hi[keep]


def bin_medians(
    t: np.ndarray, steps: np.ndarray, y: np.ndarray, group: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median t, steps and y of up to ``n_bins`` equal-count bins that never cross a group."""
    n = len(t)
    if n <= n_bins:
        return t, steps, y, group
    lo, hi = bin_edges(group, n_bins)
    columns = np.stack([np.asarray(t, float), np.asarray(steps, float), np.asarray(y, float)])
    medians = np.empty((3, len(lo)))
    # Bins of one length at a time (a group's bins differ by one row at most): one median
    # over a (bins, length) array per length, row by row what np.median of each bin gives.
    for length in np.unique(hi - lo):
        which = np.flatnonzero(hi - lo == length)
        rows = lo[which, None] + np.arange(length)
        medians[:, which] = median_last_axis(columns[:, rows])
    return medians[0], medians[1], medians[2], np.asarray(group, dtype=float)[lo]


@functools.lru_cache(maxsize=64)
def _upper_pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(m, k=1)
    i.flags.writeable = j.flags.writeable = False
    return i, j


def pair_indices(group: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) in the same group with distinct x."""
    i, j = _upper_pairs(len(x))
    keep = (group[i] == group[j]) & (x[j] != x[i])
    return i[keep], j[keep]


#: Pairwise slopes computed at once (a block of bootstrap replicates): all replicates at once
#: would be megabytes of fresh memory per fit, slower to allocate than to compute.
_SLOPES_PER_BLOCK = 65_536


def theil_sen(x: np.ndarray, y: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Median pairwise slope; ``y`` may be 2-D (replicates on axis 0)."""
    if len(i) == 0:
        return np.full(y.shape[:-1], np.nan) if y.ndim > 1 else np.array(np.nan)
    dx = x[j] - x[i]
    if y.ndim == 1:
        return median_last_axis((y[j] - y[i]) / dx)
    rows = y.reshape(-1, y.shape[-1])
    out = np.empty(len(rows))
    step = max(1, _SLOPES_PER_BLOCK // len(i))
    for r in range(0, len(rows), step):
        block = rows[r : r + step]
        slopes = (np.take(block, j, axis=-1) - np.take(block, i, axis=-1)) / dx
        out[r : r + step] = median_last_axis(slopes)
    return out.reshape(y.shape[:-1])


def intercepts(x: np.ndarray, y: np.ndarray, slope: float, group: np.ndarray) -> np.ndarray:
    """Per-group median intercept, spread back onto each point."""
    resid = y - slope * x
    out = np.empty_like(y)
    for g in np.unique(group):
        mask = group == g
        out[mask] = np.median(resid[mask])
    return out


def block_length(resid: np.ndarray) -> int:
    """Bootstrap block length: twice the residuals' correlation time (at least m^(1/3),
    at most m/3). The correlation time is the larger of the lag where the
    autocorrelation first falls below 1/e and the e-folding time of the lag-1
    autocorrelation, corrected for its downward bias in short series."""
    m = len(resid)
    base = max(1, math.ceil(m ** (1 / 3)))
    r = resid - resid.mean()
    denom = float(np.dot(r, r))
    if m < 4 or denom == 0.0:
        return min(base, max(1, m // 3))
    acf = np.correlate(r, r, mode="full")[m - 1 :] / denom
    below = np.flatnonzero(acf < 1 / math.e)
    tau = float(below[0]) if len(below) else float(m)
    rho = min(0.99, float(acf[1]) + (1 + 3 * float(acf[1])) / m)
    if rho > 0:
        tau = max(tau, -1 / math.log(rho))
    return int(max(1, min(max(base, math.ceil(2 * tau)), m // 3)))


def widen(estimate: float, lo: float, hi: float, n_blocks: float) -> tuple[float, float]:
    """Stretch a bootstrap interval by Student's t for the number of independent blocks
    over the normal quantile: with few blocks the bootstrap underestimates the spread."""
    from math import isfinite

    if not (isfinite(lo) and isfinite(hi)) or n_blocks >= 200:
        return lo, hi
    factor = _t975(max(n_blocks - 1, 1)) / 1.959964
    return estimate - factor * (estimate - lo), estimate + factor * (hi - estimate)


def _t975(df: float) -> float:
    """97.5% quantile of Student's t (Cornish-Fisher expansion; within 1% for df >= 1)."""
    if df < 1.5:
        return 12.706
    if df < 2.5:
        return 4.303
    z = 1.959964
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def moving_blocks(m: int, length: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (n_boot, m) of a moving-block bootstrap."""
    n_blocks = math.ceil(m / length)
    starts = rng.integers(0, m - length + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(length)[None, None, :]).reshape(n_boot, -1)
    return idx[:, :m]


@functools.lru_cache(maxsize=256)
def seeded_blocks(m: int, length: int, n_boot: int, seed: int) -> np.ndarray:
    """:func:`moving_blocks` from a fresh generator seeded with ``seed``: the same indices for
    the same arguments, so they are drawn once (read-only) and shared by every fit of that shape."""
    idx = moving_blocks(m, length, n_boot, np.random.default_rng(seed))
    idx.flags.writeable = False
    return idx


@dataclass
class Fit:
    """Theil-Sen slopes against time and steps, with block-bootstrap percentile intervals."""

    per_s: float
    ci: tuple[float, float]
    per_step: float
    ci_step: tuple[float, float]
    fitted: np.ndarray
    block_len: int


def fit(
    bt: np.ndarray, bs: np.ndarray, by: np.ndarray, bg: np.ndarray, options: GrowthOptions
) -> Fit:
    """Fit bin medians (time ``bt``, steps ``bs``, value ``by``, group ``bg``)."""
    nan2 = (math.nan, math.nan)
    i, j = pair_indices(bg, bt)
    slope_t = float(theil_sen(bt, by, i, j))
    if not math.isfinite(slope_t):
        return Fit(math.nan, nan2, math.nan, nan2, np.full_like(by, math.nan), 0)
    fit_t = slope_t * bt + intercepts(bt, by, slope_t, bg)
    resid_t = by - fit_t
    length = block_length(resid_t)
    idx = seeded_blocks(len(bt), length, options.n_boot, options.seed)
    boot_t = theil_sen(bt, fit_t[None, :] + resid_t[idx], i, j)
    n_blocks = len(bt) / length
    ci = widen(slope_t, *(float(v) for v in np.nanpercentile(boot_t, [2.5, 97.5])), n_blocks)
    slope_s, ci_s = math.nan, nan2
    if np.isfinite(bs).all() and np.ptp(bs) > 0:
        si, sj = pair_indices(bg, bs)
        if len(si):
            slope_s = float(theil_sen(bs, by, si, sj))
            fit_s = slope_s * bs + intercepts(bs, by, slope_s, bg)
            # The same blocks for both fits: the two intervals describe the same resampled runs.
            boot_s = theil_sen(bs, fit_s[None, :] + (by - fit_s)[idx], si, sj)
            ci_s = widen(
                slope_s, *(float(v) for v in np.nanpercentile(boot_s, [2.5, 97.5])), n_blocks
            )
    return Fit(slope_t, ci, slope_s, ci_s, fit_t, length)  # type: ignore[arg-type]


#: Below this many points Sen's order statistics cannot bound a slope; a t interval does.
MIN_SEN_POINTS = 10


def sen_interval(x: np.ndarray, y: np.ndarray, slope: float) -> tuple[float, float]:
    """95% interval for a Theil-Sen slope of independent points: Sen's (order statistics of
    the pairwise slopes, through Kendall's tau) from 10 points, below that the
    least-squares slope's Student-t interval (n - 2 degrees of freedom), which still
    bounds a slope from 4 points; NaN below 4 points."""
    n = len(x)
    if n < 4:
        return math.nan, math.nan
    if n < MIN_SEN_POINTS:
        from scipy import stats  # here: see the import of stdtrit

        fit_ = stats.linregress(x, y)
        half = float(stdtrit(n - 2, 0.975)) * float(fit_.stderr)
        return float(min(fit_.slope - half, slope)), float(max(fit_.slope + half, slope))
    i, j = np.triu_indices(n, k=1)
    dx = x[j] - x[i]
    slopes = np.sort(((y[j] - y[i]) / dx)[dx != 0])
    big_n = len(slopes)
    sigma = math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    lower = int(np.floor((big_n - 1.959964 * sigma) / 2))
    upper = int(np.ceil((big_n + 1.959964 * sigma) / 2))
    lo = slopes[lower - 1] if lower >= 1 else -math.inf
    hi = slopes[upper] if upper < big_n else math.inf
    return float(min(lo, slope)), float(max(hi, slope))


def resets_and_floor(
    t: np.ndarray, y: np.ndarray, group: np.ndarray, fraction: float, options: GrowthOptions
) -> tuple[int, float, tuple[float, float]]:
    """Resets and the trend of the troughs between them, on the raw samples.

    A sample above both neighbours (a buffer in flight), or two in a row, is first
    clipped to the higher neighbour; a reset is then a fall between two samples by more than
    ``fraction`` of the signal's range and by more than six noise deviations (so
    white noise does not count). The trough is the lowest sample of each stretch
    between resets. Their Theil-Sen slope comes with the wider of Sen's interval (for
    independent troughs) and the block-bootstrap one (troughs share slow wander),
    NaN with fewer than two resets. More troughs than ``n_bins`` are binned first.
    """
    nan2 = (math.nan, math.nan)
    n = len(y)
    if n < 5:
        return 0, math.nan, nan2
    clipped = y.copy()
    clipped[1:-1] = np.minimum(clipped[1:-1], np.maximum(clipped[:-2], clipped[2:]))
    clipped[2:-2] = np.minimum(
        clipped[2:-2], np.maximum(clipped[:-4], clipped[4:])
    )  # spikes two samples long
    diffs = np.diff(clipped)
    same = group[1:] == group[:-1]
    noise = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs))))
    span = float(np.quantile(clipped, 0.95) - np.quantile(clipped, 0.05))
    if span <= 0:
        return 0, math.nan, nan2
    drops = np.flatnonzero((diffs < -fraction * span) & (diffs < -6 * noise) & same) + 1
    if len(drops) < 2:
        return len(drops), math.nan, nan2
    # The stretch before the first reset starts wherever the window did: not a trough.
    edges = np.concatenate((drops, [n]))
    at = np.array(
        [a + int(np.argmin(clipped[a:b])) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    x, v, grp = t[at], clipped[at], group[at]
    if len(x) > options.n_bins:
        x, _, v, grp = bin_medians(x, x, v, grp, options.n_bins)
    troughs = fit(x, np.full_like(x, np.nan), v, grp, options)
    slope = troughs.per_s
    lo, hi = troughs.ci
    if len(np.unique(grp)) == 1 and len(x) >= 4:
        sen_lo, sen_hi = sen_interval(x, v, slope)
        if len(x) < MIN_SEN_POINTS:
            # A bootstrap of a handful of troughs resamples next to nothing: the t interval alone.
            lo, hi = sen_lo, sen_hi
        else:
            lo, hi = min(sen_lo, lo), max(sen_hi, hi)
    allowance = _trough_drift(t, diffs, same & (diffs >= -6 * noise), x)
    return len(drops), slope, (lo - allowance, hi + allowance)


def _trough_drift(t: np.ndarray, diffs: np.ndarray, ramp_mask: np.ndarray, x: np.ndarray) -> float:
    """How far the troughs' slope may be off from when they were sampled (per second).

    A trough is sampled some time after its reset, up to one sampling gap: as the sampling
    clock drifts against the clearing one, the troughs drift by up to ramp x gap. The ramp is
    the median rise per second between samples outside the resets (``ramp_mask``); ``x`` are
    the troughs' times.
    """
    dt = np.diff(t)
    ramp = (
        float(np.median(diffs[ramp_mask] / dt[ramp_mask]))
        if ramp_mask.any() and (dt[ramp_mask] > 0).all()
        else 0.0
    )
    spread = float(np.ptp(x)) if len(x) > 1 else 0.0
    return max(ramp, 0.0) * float(np.median(dt)) / spread if spread > 0 else math.inf


def max_jump(by: np.ndarray) -> float:
    """The third-largest rise between neighbouring bins after a 3-point running median:
    the size of an allocator's steps, which a short stretch of a slow leak may not
    cross (the third, so that a stray outlier or two do not count)."""
    if len(by) < 5:
        return math.nan
    padded = np.concatenate(([by[0]], by, [by[-1]]))
    smooth = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    return float(max(np.sort(np.diff(smooth))[-3], 0.0))


def max_fall(by: np.ndarray) -> float:
    """:func:`max_jump` of the falls: a signal that falls as far as it rises wanders."""
    return max_jump(-by) if len(by) >= 5 else math.nan


def _steps_per_s(t: np.ndarray, steps: np.ndarray, group: np.ndarray) -> float:
    done = spent = 0.0
    for g in np.unique(group):
        mask = (group == g) & np.isfinite(steps)
        if mask.sum() >= 2:
            done += steps[mask][-1] - steps[mask][0]
            spent += t[mask][-1] - t[mask][0]
    return done / spent if spent > 0 and done > 0 else math.nan


def _rows(
    t: np.ndarray, steps: np.ndarray, y: np.ndarray, group: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows with a time and a value, as float arrays (in the order given)."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    steps = np.asarray(steps, dtype=float)
    group = np.zeros_like(t) if group is None else np.nan_to_num(np.asarray(group, dtype=float))
    ok = np.isfinite(t) & np.isfinite(y)
    return t[ok], steps[ok], y[ok], group[ok]


@dataclass
class _Part:
    """One part of the window: its bins (value and generation) and their own fit (None with
    fewer than four bins)."""

    y: np.ndarray
    group: np.ndarray
    fit: Fit | None

    def highs(self) -> dict[float, float]:
        """The highest bin of each generation in this part."""
        return {float(g): float(self.y[self.group == g].max()) for g in np.unique(self.group)}


def _part(
    bt: np.ndarray, bs: np.ndarray, by: np.ndarray, bg: np.ndarray, options: GrowthOptions
) -> _Part:
    return _Part(by, bg, fit(bt, bs, by, bg, options) if len(bt) >= 4 else None)


def _fit_parts(
    bt: np.ndarray, bs: np.ndarray, by: np.ndarray, bg: np.ndarray, options: GrowthOptions
) -> tuple[_Part, _Part]:
    """The tail (the window's last ``tail_fraction``) and the head (the rest), from its bins."""
    tail_start = bt[0] + (1 - options.tail_fraction) * (bt[-1] - bt[0])
    tail, head = bt >= tail_start, bt < tail_start
    return (
        _part(bt[tail], bs[tail], by[tail], bg[tail], options),
        _part(bt[head], bs[head], by[head], bg[head], options),
    )


def _generation_parts(
    t: np.ndarray, steps: np.ndarray, y: np.ndarray, group: np.ndarray, options: GrowthOptions
) -> tuple[_Part, _Part]:
    """The tail and head of a window over several process generations: the last
    ``tail_fraction`` of each generation, and the rest of each, binned on their own.

    Every restart starts memory over, so whether growth went on to the end is a question
    about each process' life: the window's own last third would hold a new process'
    early growth (a cache refilling after a restart), or only the last process."""
    in_tail = np.zeros(len(t), dtype=bool)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        start = t[rows[0]] + (1 - options.tail_fraction) * (t[rows[-1]] - t[rows[0]])
        in_tail[rows[t[rows] >= start]] = True

    def part(rows: np.ndarray) -> _Part:
        return _part(
            *bin_medians(t[rows], steps[rows], y[rows], group[rows], options.n_bins), options
        )

    return part(in_tail), part(~in_tail)


def _split(
    t: np.ndarray,
    steps: np.ndarray,
    y: np.ndarray,
    group: np.ndarray,
    bins: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    options: GrowthOptions,
) -> tuple[_Part, _Part]:
    """The tail and the head: of the window's bins within one generation, of each generation's
    own samples across several."""
    if len(np.unique(bins[3])) == 1:
        return _fit_parts(*bins, options)
    return _generation_parts(t, steps, y, group, options)


def _part_fields(tail_part: _Part, head_part: _Part) -> dict[str, Any]:
    """The :class:`Growth` fields of the tail and the head."""
    nan, nan2 = math.nan, (math.nan, math.nan)
    tail, head = tail_part.fit, head_part.fit
    tail_highs, head_highs = tail_part.highs(), head_part.highs()
    both = [g for g in tail_highs if g in head_highs]
    return {
        "tail_per_s": tail.per_s if tail else nan,
        "tail_ci95": tail.ci if tail else nan2,
        "tail_per_step": tail.per_step if tail else nan,
        "tail_ci95_per_step": tail.ci_step if tail else nan2,
        "head_per_step": head.per_step if head else nan,
        "head_ci95_per_step": head.ci_step if head else nan2,
        "tail_high": max(tail_highs.values(), default=nan),
        "head_high": max(head_highs.values(), default=nan),
        "tail_above_head": float(np.median([tail_highs[g] - head_highs[g] for g in both]))
        if both
        else nan,
        "head_per_s": head.per_s if head else nan,
        "head_ci95": head.ci if head else nan2,
    }


def _generation_notes(n_groups: int) -> list[str]:
    """The note of a window that spans several process generations."""
    if n_groups > 1:
        return [f"{n_groups} process generations: slopes use pairs within a generation only"]
    return []


def estimate(
    signal: str,
    t: np.ndarray,
    steps: np.ndarray,
    y: np.ndarray,
    group: np.ndarray | None = None,
    options: GrowthOptions | None = None,
) -> Growth:
    """Growth of ``y`` over the samples given (already cut to the analysed window).

    ``t`` seconds, ``steps`` cumulative steps (NaN where unknown), ``y`` the signal
    (NaN where missing), ``group`` the process generation of each row.
    """
    options = options or GrowthOptions()
    t, steps, y, group = _rows(t, steps, y, group)
    n = len(t)
    if n < 3:
        return empty_growth(
            signal,
            n,
            float(t[0]) if n else math.nan,
            float(t[-1]) if n else math.nan,
            f"{n} samples after the warm-up: too few for a slope",
        )
    order = np.argsort(t, kind="stable")
    t, y, steps, group = t[order], y[order], steps[order], group[order]
    bt, bs, by, bg = bin_medians(t, steps, y, group, options.n_bins)
    whole = fit(bt, bs, by, bg, options)
    resets, floor, floor_ci = resets_and_floor(t, y, group, options.reset_fraction, options)
    baseline = float(whole.fitted[0])
    n_groups = len(np.unique(bg))
    return Growth(
        signal=signal,
        unit=SIGNALS.get(signal, "bytes"),
        per_s=whole.per_s,
        per_step=whole.per_step,
        pct_per_hour=100 * whole.per_s * 3600 / baseline if baseline > 0 else math.nan,
        baseline=baseline,
        ci95=whole.ci,
        ci95_per_step=whole.ci_step,
        n_samples=n,
        t_start=float(t[0]),
        t_end=float(t[-1]),
        steps_per_s=_steps_per_s(t, steps, group),
        n_bins=len(bt),
        block_len=whole.block_len,
        **_part_fields(*_split(t, steps, y, group, (bt, bs, by, bg), options)),
        resets=resets,
        floor_per_s=floor,
        floor_ci95=floor_ci,
        max_jump=max_jump(by),
        max_fall=max_fall(by),
        first=float(by[0]),
        last=float(by[-1]),
        span=float(np.ptp(by)),
        generations=n_groups,
        notes=_generation_notes(n_groups),
    )
