"""Histogram tails: Prometheus' quantile interpolation, and the bounds behind ``tolerance``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analyzer.judges.tails import TailCurve, histogram_quantile, split_rows

BOUNDS = np.r_[np.geomspace(0.002, 20, 29), np.inf]


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = np.array([0.1, 0.2, 0.4, np.inf])
    buckets = np.array([10.0, 30.0, 40.0, 20.0])
    assert histogram_quantile(0.5, bounds, buckets) == pytest.approx(0.2 + 0.2 * 10 / 40)
    assert histogram_quantile(0.05, bounds, buckets) == pytest.approx(0.05)
    assert histogram_quantile(0.99, bounds, buckets) == 0.4  # in +Inf: the last finite bound
    assert math.isnan(histogram_quantile(0.5, bounds, np.zeros(4)))


def test_rows_are_tails_above_then_at_or_below_each_boundary() -> None:
    counts = np.array([[1.0, 2.0, 3.0, 4.0]])  # one interval, three finite boundaries
    assert split_rows(counts, 3)[:, 0].tolist() == [9, 7, 4, 1, 3, 6]


@pytest.mark.parametrize("shape", [0.3, 0.5, 1.0])
def test_the_tail_bounds_contain_a_lognormal_slowed_by_the_tolerance(shape: float) -> None:
    """log S(b / 1.1) - log S(b), and the same for F, lie within the bounds wherever both
    versions' tails are estimated: lognormal latency is log-concave on the log scale."""
    latency = stats.lognorm(shape, scale=0.2)
    edges = BOUNDS[:-1]
    counts = 1e9 * np.diff(np.r_[0.0, latency.cdf(edges), 1.0])
    curve = TailCurve.of(edges, counts)
    (slow_low, slow_high), _ = curve.log_margins(math.log(1.1))
    truth = np.r_[
        latency.logsf(edges / 1.1) - latency.logsf(edges),
        latency.logcdf(edges / 1.1) - latency.logcdf(edges),
    ]
    known = np.isfinite(slow_low) & np.isfinite(slow_high)
    assert known.sum() > 20
    assert np.all(slow_low[known] <= truth[known] + 1e-9)
    assert np.all(truth[known] <= slow_high[known] + 1e-9)
