"""Query results become the judges' arrays, checked by hand on small known data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from analyzer.errors import QueryError
from analyzer.sources.base import Series
from analyzer.sources.convert import (
    _aligned,
    counts_data,
    histogram_data,
    series_data,
    step_grid,
)
from analyzer.sources.memory import series_from_points

NAN = math.nan
T0 = 1_700_000_000.0
GRID = np.array([T0, T0 + 60, T0 + 120, T0 + 180])


def at(*values: float, labels: dict[str, str] | None = None) -> Series:
    """A series with one value per GRID instant; NaN values are left out (no point there)."""
    points = [(stamp, v) for stamp, v in zip(GRID, values, strict=True) if not math.isnan(v)]
    return series_from_points(labels or {}, points)


def assert_same(actual: npt.NDArray[np.float64], expected: npt.ArrayLike) -> None:
    np.testing.assert_array_equal(actual, np.array(expected, dtype=np.float64))


# --- the grid -------------------------------------------------------------------------------


def test_step_grid_includes_both_ends_and_keeps_milliseconds() -> None:
    start = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    grid = step_grid(start, start + timedelta(seconds=45), timedelta(seconds=15))
    base = start.timestamp()
    assert_same(grid, [base, base + 15, base + 30, base + 45])


def test_step_grid_stops_before_an_end_off_the_grid() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    grid = step_grid(start, start + timedelta(seconds=50), timedelta(seconds=15))
    assert grid.size == 4 and grid[-1] == start.timestamp() + 45


def test_step_grid_of_an_empty_range_is_one_instant() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    assert_same(step_grid(start, start, timedelta(minutes=1)), [start.timestamp()])


def test_step_grid_refuses_what_prometheus_refuses() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(QueryError, match="step"):
        step_grid(start, start + timedelta(minutes=1), timedelta(0))
    with pytest.raises(QueryError, match="before it starts"):
        step_grid(start, start - timedelta(seconds=1), timedelta(seconds=1))
    with pytest.raises(ValueError, match="time zone"):
        step_grid(datetime(2024, 5, 1), datetime(2024, 5, 2), timedelta(hours=1))


# --- counts ---------------------------------------------------------------------------------


def test_no_errors_series_means_zero_errors_where_there_are_totals() -> None:
    data = counts_data([], [at(100, 120, NAN, 80)], GRID)
    assert_same(data.totals, [100, 120, NAN, 80])
    assert_same(data.errors, [0, 0, NAN, 0])
    assert_same(data.timestamps, list(GRID))


def test_counts_sum_across_series_and_fill_missing_errors_with_zero() -> None:
    totals = [at(100, 50, NAN, NAN), at(10, NAN, 5, NAN)]
    errors = [at(3, NAN, NAN, 7), at(NAN, NAN, 1, NAN)]
    data = counts_data(errors, totals, GRID)
    assert_same(data.totals, [110, 50, 5, NAN])
    assert_same(data.errors, [3, 0, 1, NAN])  # errors without totals are no data


def test_errors_are_clipped_to_zero_and_to_totals() -> None:
    data = counts_data([at(12.5, -0.25, 2, 0)], [at(12, 10, 2, 0)], GRID)
    assert_same(data.errors, [12, 0, 2, 0])


def test_non_finite_totals_are_no_data() -> None:
    data = counts_data([at(1, 1, 1, 1)], [at(NAN, math.inf, 4, 4)], GRID)
    assert_same(data.totals, [NAN, NAN, 4, 4])
    assert_same(data.errors, [NAN, NAN, 1, 1])


# --- histograms -----------------------------------------------------------------------------


def bucket(le: str, *cumulative: float, **labels: str) -> Series:
    return at(*cumulative, labels={"le": le, **labels})


def test_cumulative_buckets_become_per_bucket_counts_with_inf_last() -> None:
    buckets = [  # deliberately out of order, as Prometheus may return them
        bucket("+Inf", 20, 7, NAN, 0),
        bucket("0.1", 5, 1, NAN, 0),
        bucket("1", 18, 7, NAN, 0),
        bucket("0.5", 12, 4, NAN, 0),
    ]
    data = histogram_data(buckets, GRID)
    assert_same(data.upper_bounds, [0.1, 0.5, 1.0, math.inf])
    assert_same(
        data.counts,
        [[5.0, 7, 6, 2], [1.0, 3, 3, 0], [NAN, NAN, NAN, NAN], [0.0, 0, 0, 0]],
    )


def test_buckets_with_the_same_numeric_le_are_summed() -> None:
    buckets = [
        bucket("0.1", 2, 2, 2, 2, pod="a"),
        bucket("0.10", 3, 3, 3, 3, pod="b"),
        bucket("+Inf", 4, 4, 4, 4, pod="a"),
        bucket("Inf", 6, 6, 6, 6, pod="b"),
    ]
    data = histogram_data(buckets, GRID)
    assert_same(data.upper_bounds, [0.1, math.inf])
    assert_same(data.counts[0], [5, 5])


def test_negative_differences_from_extrapolation_clip_to_zero() -> None:
    buckets = [bucket("0.1", 10.2, 0, 0, 0), bucket("+Inf", 10.0, 0, 0, 0)]
    data = histogram_data(buckets, GRID)
    assert_same(data.counts[0], [10.2, 0])


def test_an_interval_missing_one_bucket_is_a_nan_row() -> None:
    buckets = [bucket("0.1", 1, 1, 1, 1), bucket("+Inf", 2, NAN, 2, 2)]
    data = histogram_data(buckets, GRID)
    assert np.isnan(data.counts[1]).all()
    assert_same(data.counts[2], [1, 1])


def test_no_bucket_series_gives_no_buckets() -> None:
    data = histogram_data([], GRID)
    assert data.counts.shape == (4, 0) and data.upper_bounds.size == 0


def test_a_series_without_le_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="'le' label"):
        histogram_data([at(1, 1, 1, 1, labels={"pod": "a"})], GRID)
    with pytest.raises(QueryError, match="not a number"):
        histogram_data([bucket("fast", 1, 1, 1, 1)], GRID)


# --- plain series ---------------------------------------------------------------------------


def test_one_series_keeps_its_values_and_nan_gaps_and_infinities() -> None:
    data = series_data([at(0.25, NAN, math.inf, 3)], GRID)
    assert_same(data.values, [0.25, NAN, math.inf, 3])


def test_several_series_are_averaged_over_those_present() -> None:
    data = series_data([at(1, 2, NAN, NAN), at(3, NAN, NAN, 5)], GRID)
    assert_same(data.values, [2, 2, NAN, 5])


def test_no_series_is_all_nan() -> None:
    assert np.isnan(series_data([], GRID).values).all()


# --- alignment ------------------------------------------------------------------------------


def test_points_snap_to_the_nearest_instant_within_half_a_step() -> None:
    points = [(T0 + 0.001, 1.0), (T0 + 60 + 29.999, 2.0), (T0 + 150, 3.0), (T0 + 500, 4.0)]
    data = series_data([series_from_points({}, points)], GRID)
    # 89.999 s is nearer 60 s than 120 s; 150 s is exactly halfway, so it belongs to neither.
    assert_same(data.values, [1, 2, NAN, NAN])


def test_duplicate_timestamps_keep_the_nearest_then_the_first() -> None:
    points = [(T0 + 60, 7.0), (T0 + 60, 8.0), (T0 + 1, 9.0), (T0, 1.0), (T0 + 120, NAN)]
    series = series_from_points({}, points)
    data = series_data([series], GRID)
    assert_same(data.values, [1, 7, NAN, NAN])  # a NaN point is no point


def test_a_single_instant_grid_matches_to_the_millisecond() -> None:
    grid = np.array([T0])
    exact = series_from_points({}, [(T0, 5.0)])
    off = series_from_points({}, [(T0 + 0.002, 6.0)])
    assert_same(series_data([exact], grid).values, [5])
    assert_same(series_data([off], grid).values, [NAN])


def test_many_series_put_on_the_grid_together_match_each_on_its_own() -> None:
    """A by-pod query returns hundreds of series, aligned in one pass: every series must land
    exactly where it would alone (its duplicates, off-grid points and NaN gaps its own), and
    their sum is the sum of what each gives alone."""
    rng = np.random.default_rng(7)
    many = []
    for _ in range(40):
        stamps = rng.choice(GRID, size=6) + rng.choice([0.0, 0.001, -2.0, 31.0, 45.0], size=6)
        values = rng.choice([1.0, 2.0, 3.0, 5.0, NAN, math.inf], size=6)
        many.append(series_from_points({}, list(zip(stamps, values, strict=True))))
    for finite_only in (True, False):
        together = _aligned(many, GRID, finite_only=finite_only)
        for row, one in enumerate(many):
            assert_same(together[row], _aligned([one], GRID, finite_only=finite_only)[0])
    alone = np.array([counts_data([], [one], GRID).totals for one in many])
    present = ~np.isnan(alone)
    expected = np.where(present.any(axis=0), np.where(present, alone, 0.0).sum(axis=0), NAN)
    np.testing.assert_allclose(counts_data([], many, GRID).totals, expected)
