"""Turn query results into the judges' data shapes, all on one grid of interval timestamps.

A source answers with series of points; a judge wants aligned arrays in which NaN means "no data
for this interval". The analysis builds one grid per pass with ``step_grid`` (the instants a
Prometheus range query is evaluated at) and converts every version's results onto it, so both
versions' arrays line up index for index. Pure functions: no I/O, no clock.

Alignment: a point lands on the nearest grid instant when it is less than half the grid spacing
away (exact to the millisecond for a one-point grid); points off the grid are dropped. When one
series has several points for an instant, the nearest wins, then the first. NaN values are
missing data. Prometheus evaluates on exactly these instants, so snapping only matters for a
source whose clock rounding differs slightly; it never moves evidence across intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from analyzer.errors import QueryError
from analyzer.judges.base import CountsData, HistogramData, SeriesData
from analyzer.sources.base import FloatArray, Series

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def unix_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, Prometheus' resolution. Naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware datetime (UTC)")
    return (moment - _EPOCH) // _MILLISECOND


def grid_bounds_ms(start: datetime, end: datetime, step: timedelta) -> tuple[int, int, int]:
    """``(start, end, step)`` in milliseconds, refused as Prometheus itself would refuse them."""
    start_ms, end_ms, step_ms = unix_ms(start), unix_ms(end), step // _MILLISECOND
    if step_ms <= 0:
        raise QueryError(f"the query step must be at least 1 ms, got {step}")
    if end_ms < start_ms:
        raise QueryError(f"the query range ends ({end.isoformat()}) before it starts")
    return start_ms, end_ms, step_ms


def step_grid(start: datetime, end: datetime, step: timedelta) -> FloatArray:
    """Unix seconds ``start, start + step, …`` up to ``end`` inclusive: one per interval."""
    start_ms, end_ms, step_ms = grid_bounds_ms(start, end, step)
    count = (end_ms - start_ms) // step_ms + 1
    # Integer milliseconds first, one division last: equal, bit for bit, to Prometheus' stamps.
    grid: FloatArray = (start_ms + step_ms * np.arange(count, dtype=np.int64)) / 1000.0
    return grid


def counts_data(errors: Sequence[Series], totals: Sequence[Series], grid: FloatArray) -> CountsData:
    """Bad and total events per interval, each summed across the series returned.

    Totals are NaN where no series has a value. Errors missing where totals exist are 0:
    ``increase()`` of a 5xx counter that has never moved returns nothing at all. ``increase()``
    extrapolates each counter on its own, so errors are clipped to ``[0, totals]``.
    """
    total_counts = np.clip(_sum_on_grid(totals, grid, finite_only=True), 0.0, None)
    error_counts = np.nan_to_num(_sum_on_grid(errors, grid, finite_only=True), nan=0.0)
    error_counts = np.clip(error_counts, 0.0, total_counts)  # NaN where totals are NaN
    return CountsData(timestamps=grid.copy(), errors=error_counts, totals=total_counts)


def histogram_data(
    buckets: Sequence[Series],
    grid: FloatArray,
    sums: Sequence[Series] | None = None,
    counts: Sequence[Series] | None = None,
) -> HistogramData:
    """Per-bucket counts per interval from cumulative ``le`` buckets (``sum by (le) (…)``), and
    the ``_sum`` and ``_count`` increases when they were queried.

    Series sharing an ``le`` (``"0.1"`` and ``"0.10"`` are one) are summed. Buckets are ordered by
    numeric upper bound, ``+Inf`` last. An interval missing any bucket is a NaN row: a partial
    histogram would put its missing observations in the wrong bucket. Differencing across ``le``
    can go slightly negative after counter resets or extrapolation; those counts clip to 0. A sum
    or count that is missing, negative or not finite is NaN, as is a sum without observations.
    """
    upper = [_upper_bound(series) for series in buckets]
    bounds = sorted(set(upper))
    column_of = {bound: column for column, bound in enumerate(bounds)}
    columns = np.array([column_of[bound] for bound in upper], dtype=np.intp)
    aligned = _aligned(buckets, grid, finite_only=True)
    cumulative = _grouped_sums(aligned, columns, len(bounds)).T
    incomplete = np.isnan(cumulative).any(axis=1)
    per_bucket = np.clip(np.diff(cumulative, axis=1, prepend=0.0), 0.0, None)
    per_bucket[incomplete, :] = np.nan
    total_sums = observations = None
    if sums is not None and counts is not None:
        total_sums = _sum_on_grid(sums, grid, finite_only=True)
        observations = _sum_on_grid(counts, grid, finite_only=True)
        usable = (total_sums >= 0) & (observations > 0)
        total_sums = np.where(usable, total_sums, np.nan)
        observations = np.where(usable, observations, np.nan)
    return HistogramData(
        timestamps=grid.copy(),
        upper_bounds=np.array(bounds, dtype=np.float64),
        counts=per_bucket,
        sums=total_sums,
        observations=observations,
    )


def by_label(series: Sequence[Series], label: str) -> dict[str, list[Series]]:
    """The series grouped by the value of ``label`` (e.g. one group per pod); a series without
    the label is left out. Empty when no series has it: the query did not keep it."""
    groups: dict[str, list[Series]] = {}
    for one in series:
        value = one.labels.get(label)
        if value is not None:
            groups.setdefault(value, []).append(one)
    return groups


def series_data(series: Sequence[Series], grid: FloatArray) -> SeriesData:
    """One value per interval; NaN where there is none.

    A query for this shape should return one series. When it returns several (typically one per
    pod because the query forgot to aggregate), the mean per interval is used: unlike a sum it
    does not jump when a pod joins or leaves, so the value stays comparable across versions
    that run different numbers of pods. ``±Inf`` is kept: ``histogram_quantile`` returns it.
    """
    aligned = _aligned(series, grid, finite_only=False)
    present = ~np.isnan(aligned)
    counts = present.sum(axis=0)
    sums = np.where(present, aligned, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return SeriesData(timestamps=grid.copy(), values=values)


def _upper_bound(series: Series) -> float:
    text = series.labels.get("le")
    if text is None:
        raise QueryError(
            f"a histogram query must keep the 'le' label (e.g. 'sum by (le) (…)'); "
            f"got a series with labels {dict(series.labels)}"
        )
    try:
        bound = float(text)  # also reads "+Inf"
    except ValueError as exc:
        raise QueryError(f"histogram bucket le={text!r} is not a number") from exc
    if np.isnan(bound):
        raise QueryError("histogram bucket le='NaN' has no meaning")
    return bound


def _sum_on_grid(series: Sequence[Series], grid: FloatArray, *, finite_only: bool) -> FloatArray:
    """Sum across series per grid instant, NaN where none of them has a value."""
    aligned = _aligned(series, grid, finite_only=finite_only)
    present = ~np.isnan(aligned)
    summed: FloatArray = np.where(
        present.any(axis=0), np.where(present, aligned, 0.0).sum(axis=0), np.nan
    )
    return summed


def _grouped_sums(aligned: FloatArray, groups: np.ndarray, count: int) -> FloatArray:
    """Sums of ``aligned``'s rows by group (row i adds to group ``groups[i]``), one row per
    group: NaN where no row of the group has a value at that instant."""
    present = ~np.isnan(aligned)
    sums = np.zeros((count, aligned.shape[1]))
    seen = np.zeros((count, aligned.shape[1]), dtype=bool)
    np.add.at(sums, groups, np.where(present, aligned, 0.0))
    np.logical_or.at(seen, groups, present)
    grouped: FloatArray = np.where(seen, sums, np.nan)
    return grouped


def _aligned(series: Sequence[Series], grid: FloatArray, *, finite_only: bool) -> FloatArray:
    """Each series' value at each grid instant (a row per series), NaN where missing. Every
    series is aligned in one pass over all their points: a by-pod histogram is hundreds."""
    matrix = np.full((len(series), grid.size), np.nan)
    grid_ms = np.round(np.asarray(grid, dtype=np.float64) * 1000.0).astype(np.int64)
    if grid_ms.size > 1 and np.any(np.diff(grid_ms) <= 0):
        raise ValueError("the grid must be strictly increasing")
    if grid_ms.size == 0 or not series:
        return matrix
    # Points strictly closer than half the spacing; `2 * distance < spacing` avoids fractions.
    spacing = int(np.diff(grid_ms).min()) if grid_ms.size > 1 else 1
    values = np.concatenate([np.asarray(one.values, dtype=np.float64) for one in series])
    stamps = np.concatenate([np.asarray(one.timestamps, dtype=np.float64) for one in series])
    rows = np.repeat(np.arange(len(series)), [len(one.values) for one in series])
    keep = np.isfinite(values) if finite_only else ~np.isnan(values)
    values, rows = values[keep], rows[keep]
    stamps_ms = np.round(stamps[keep] * 1000.0).astype(np.int64)
    right = np.clip(np.searchsorted(grid_ms, stamps_ms), 0, grid_ms.size - 1)
    left = np.clip(right - 1, 0, grid_ms.size - 1)
    nearer_left = np.abs(stamps_ms - grid_ms[left]) < np.abs(stamps_ms - grid_ms[right])
    index = np.where(nearer_left, left, right)
    distance = np.abs(stamps_ms - grid_ms[index])
    on_grid = 2 * distance < spacing
    index, distance, values, rows = (
        index[on_grid],
        distance[on_grid],
        values[on_grid],
        rows[on_grid],
    )
    # stable: by series, by instant, then nearest, then first; the first of each (series, instant)
    order = np.lexsort((distance, index, rows))
    cell = rows[order] * grid_ms.size + index[order]
    first = np.ones(cell.size, dtype=bool)
    first[1:] = cell[1:] != cell[:-1]
    chosen = order[first]
    matrix[rows[chosen], index[chosen]] = values[chosen]
    return matrix
