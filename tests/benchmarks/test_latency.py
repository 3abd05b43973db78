"""The latency model's closed forms against numerical integration, and the bucket-conditioned sums
against the moments they promise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtri
from scipy.stats import norm

from benchmarks.latency import Z90, Z99, LatencyShape, latency_sums

LOG_MEDIAN = math.log(0.08)
SHAPES = {
    "lognormal": (LOG_MEDIAN, 0.5, 0.0, Z90, 0.0),
    "slow pod": (LOG_MEDIAN + math.log(1.25), 0.6, 0.0, Z90, 0.0),
    "p99 x1.5": (LOG_MEDIAN, 0.5, math.log(1.5) / (0.5 * (Z99 - Z90)), Z90, 0.0),
    "slowest 10% x3": (LOG_MEDIAN, 0.5, 0.0, float(ndtri(0.9)), math.log(3.0)),
}


def shape_of(values: tuple[float, ...], size: int | None = None) -> LatencyShape:
    if size is None:
        return LatencyShape(*(np.asarray(value, dtype=np.float64) for value in values))
    return LatencyShape(*(np.full(size, value) for value in values))


def integrated(values: tuple[float, ...], power: int) -> float:
    log_median, sigma, stretch, threshold, log_factor = values

    def latency(z: float) -> float:
        if z <= threshold:
            return math.exp(log_median + sigma * z)
        return math.exp(log_median + sigma * (z + stretch * (z - threshold)) + log_factor)

    def integrand(z: float) -> float:
        return float(latency(z) ** power * norm.pdf(z))

    below = integrate.quad(integrand, -12.0, threshold, limit=200)[0]
    return below + integrate.quad(integrand, threshold, 14.0, limit=200)[0]


@pytest.mark.parametrize("name", SHAPES)
def test_closed_form_moments_match_numerical_integration(name: str) -> None:
    values = SHAPES[name]
    mean, variance = shape_of(values).moments()
    first, second = integrated(values, 1), integrated(values, 2)
    assert float(mean) == pytest.approx(first, rel=1e-9)
    assert float(variance) == pytest.approx(second - first**2, rel=1e-7)


@pytest.mark.parametrize("name", SHAPES)
def test_bucket_conditioned_sums_have_the_exact_mean_and_variance(name: str) -> None:
    values = SHAPES[name]
    rng = np.random.default_rng(7)
    requests, minutes = 20, 40_000
    shape = shape_of(values, minutes)
    buckets = rng.multinomial(requests, shape_of(values).bucket_probabilities(), size=minutes)
    sums = latency_sums(shape, buckets.astype(np.float64), rng)
    mean, variance = shape_of(values).moments()
    assert sums.mean() / requests == pytest.approx(float(mean), rel=0.005)
    assert sums.var() / requests == pytest.approx(float(variance), rel=0.05)


def test_a_tail_shift_leaves_no_request_between_the_old_p90_and_three_times_it() -> None:
    values = SHAPES["slowest 10% x3"]
    p90 = 0.08 * math.exp(0.5 * Z90)
    z = shape_of(values).z_at(np.array([p90 * 1.01, p90 * 2.0, p90 * 2.99]))
    np.testing.assert_allclose(z, Z90)
    assert shape_of(values).z_at(np.array([p90 * 3.3]))[0] > Z90
