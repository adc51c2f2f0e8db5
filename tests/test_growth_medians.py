"""The growth estimate's medians are np.median's, bit for bit, however they are computed."""

import numpy as np
import pytest

from leaklab.analysis import growth


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not (np.isnan(a) == np.isnan(b)).all():
        return False
    known = ~np.isnan(a)
    return bool((a[known].view(np.int64) == b[known].view(np.int64)).all())


def reference_bin_medians(t, steps, y, group, n_bins):
    """One np.median per bin, bin by bin: the definition bin_medians must reproduce."""
    n = len(t)
    if n <= n_bins:
        return t, steps, y, group
    bounds = np.flatnonzero(np.diff(group)) + 1
    out = []
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, n], strict=True):
        k = max(1, round(n_bins * (b - a) / n))
        edges = np.linspace(a, b, k + 1).round().astype(int)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if hi > lo:
                out.append([np.median(c[lo:hi]) for c in (t, steps, y)] + [group[lo]])
    return tuple(np.array(c, dtype=float) for c in zip(*out, strict=True))


def values(rng, shape, kind):
    """Noise, page-sized steps with ties and zeros of both signs, or a few NaN."""
    if kind == "ties":
        out = rng.integers(-3, 3, shape).astype(float) * 4096
        out[rng.random(shape) < 0.2] = -0.0
        return out
    out = 1e8 + rng.normal(0, 1e6, shape)
    if kind == "nan":
        out[rng.random(shape) < 0.02] = np.nan
    return out


@pytest.mark.parametrize("kind", ["noise", "ties", "nan"])
@pytest.mark.parametrize("width", [1, 2, 7, 90, 2016])
def test_median_last_axis_is_np_median(kind, width):
    rng = np.random.default_rng(width)
    for shape in [(width,), (50, width), (3, 4, width)]:
        a = values(rng, shape, kind)
        assert same_bits(growth.median_last_axis(a), np.median(a, axis=-1))


@pytest.mark.parametrize("kind", ["noise", "ties", "nan"])
def test_bin_medians_are_each_bins_np_median(kind):
    rng = np.random.default_rng(1)
    for n, n_bins, generations in [(5760, 64, 1), (1000, 64, 4), (777, 7, 3), (65, 64, 2)]:
        t = np.arange(n) * 15.0
        steps = np.cumsum(rng.integers(0, 3, n)).astype(float)
        group = np.sort(rng.integers(0, generations, n)).astype(float)
        y = values(rng, n, kind)
        got = growth.bin_medians(t, steps, y, group, n_bins)
        want = reference_bin_medians(t, steps, y, group, n_bins)
        assert all(same_bits(g, w) for g, w in zip(got, want, strict=True))


def test_bootstrap_slopes_are_each_replicates_np_median():
    rng = np.random.default_rng(2)
    x = np.sort(rng.uniform(0, 86400, 64))
    group = np.repeat([0.0, 1.0], 32)
    i, j = growth.pair_indices(group, x)
    for kind in ["noise", "ties"]:
        y = values(rng, (200, 64), kind)
        want = np.median((y[:, j] - y[:, i]) / (x[j] - x[i]), axis=-1)
        assert same_bits(growth.theil_sen(x, y, i, j), want)
        assert same_bits(growth.theil_sen(x, y[0], i, j), want[0])
