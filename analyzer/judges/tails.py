"""Histogram tails at the bucket boundaries: what the sequential judge tests for latency.

Separate from the judge because it is the one place where the histogram test is approximate (the
plug-in behind ``tolerance``), and because its bounds are geometry, not statistics of the test.

At every finite bucket boundary b the counts test runs twice, on the observations above b and on
those at or below it (each version's observations are its exposure): rows
``[above b_0 .. above b_{B-1}, at-or-below b_0 .. b_{B-1}]`` (``split_rows``). ``tolerance``
scales latency: "canary may be up to 5% slower" means canary <= baseline * 1.05 in distribution,
i.e. at every b the canary's tail is at most the baseline's tail at b / 1.05. The null ratio is
``S(b / 1.05) / S(b)`` above b and ``F(b / 1.05) / F(b)`` (alternative reversed) below it, from
the baseline's pooled histogram, which usually has far more data: a plug-in. Only the tails at the
boundaries are observed, so the judge uses bounds (``TailCurve``): where log S and log F look
concave in log latency (true of every log-concave density on the log scale: lognormal, gamma,
Weibull) the chord and the extended neighbouring secants bound them, elsewhere (a bimodal
latency) plain monotonicity does. A FAIL tests the lenient end and a PASS the strict end
(``boundary_log_e_values``); coarse buckets widen the gap between them (an interpolating
estimate, PCHIP, was measurably liberal at the boundary with Prometheus' default buckets). A row
whose margin cannot be estimated (fewer than ``PLUGIN_MIN_COUNT`` baseline observations on its
side) bets nothing. A row's FAIL e-value is the mixture over start times of
``analyzer.judges.onset``, so a slowdown that begins late is not diluted by the clean intervals
before it; its PASS e-value covers the whole window.

Validity: exact with ``tolerance: 0`` (stochastic dominance at the boundaries: no plug-in);
approximate for tolerances, as the bounds assume the pooled baseline shape holds across the window,
and ignore its sampling error. The reported p50/p90/p99 interpolate linearly in a bucket, as
``histogram_quantile`` does; effects are translated into latency at a boundary by log-log
interpolation of the baseline's tail (``TailCurve.latency_ratio``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer.errors import JudgeError
from analyzer.judges.base import HistogramData
from analyzer.judges.evalues import BoolArray, IntArray, RateRatioFit
from analyzer.judges.onset import log_e_values_any_start
from analyzer.sources.base import FloatArray

Bounds = tuple[FloatArray, FloatArray]

PLUGIN_MIN_COUNT = 10  # baseline observations on a side of a boundary before its margin is used


def histogram_quantile(quantile: float, upper_bounds: FloatArray, counts: FloatArray) -> float:
    """Prometheus' ``histogram_quantile`` on one set of bucket counts (linear inside a bucket)."""
    cumulative = np.cumsum(counts)
    if cumulative.size == 0 or cumulative[-1] <= 0:
        return math.nan
    rank = quantile * cumulative[-1]
    bucket = min(int(np.searchsorted(cumulative, rank, side="left")), cumulative.size - 1)
    if bucket == cumulative.size - 1 and math.isinf(upper_bounds[-1]):
        return float(upper_bounds[-2]) if upper_bounds.size > 1 else math.nan
    if bucket == 0 and upper_bounds[0] <= 0:
        return float(upper_bounds[0])
    lower = float(upper_bounds[bucket - 1]) if bucket > 0 else 0.0
    below = float(cumulative[bucket - 1]) if bucket > 0 else 0.0
    inside = float(counts[bucket])
    fraction = (rank - below) / inside if inside > 0 else 1.0
    return lower + (float(upper_bounds[bucket]) - lower) * fraction


@dataclass(frozen=True)
class CleanHistogram:
    counts: FloatArray  # (intervals, buckets), zero where an interval has no data
    has_data: BoolArray

    @staticmethod
    def of(data: HistogramData) -> CleanHistogram:
        counts = np.asarray(data.counts, dtype=float)
        if counts.ndim != 2 or counts.shape[1] != np.asarray(data.upper_bounds).size:
            raise JudgeError("histogram counts must be (intervals, buckets) with one bound each")
        complete = np.isfinite(counts).all(axis=1)
        clean = np.where(complete[:, None], np.maximum(np.nan_to_num(counts), 0.0), 0.0)
        return CleanHistogram(clean, complete & (clean.sum(axis=1) > 0))

    def summary(self, upper_bounds: FloatArray) -> dict[str, float]:
        pooled = self.counts.sum(axis=0)
        summary = {"observations": float(pooled.sum()), "intervals": float(self.has_data.sum())}
        if summary["observations"] > 0:
            for name, level in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
                summary[name] = histogram_quantile(level, upper_bounds, pooled)
        return summary


@dataclass(frozen=True)
class TailCurve:
    """The baseline's pooled tails at the bucket boundaries: the plug-in behind ``tolerance``.

    Between boundaries only bounds are known. If log S and log F are concave in log latency (true
    for every log-concave density on the log scale: lognormal, gamma, Weibull, ...) the chord is a
    lower bound and the neighbouring secants, extended, an upper bound. Where the empirical
    values are not concave (a bimodal latency) only monotonicity is used: between the two
    boundaries' values. A FAIL uses the lenient end of the bounds and a PASS the strict end.
    """

    log_bounds: FloatArray  # (boundaries,), NaN where a bound is not positive
    log_tails: FloatArray  # (2 * boundaries,): log S(b) for each b, then log F(b)
    usable: BoolArray  # (2 * boundaries,): enough baseline observations on that side of b

    @staticmethod
    def of(boundaries: FloatArray, pooled_counts: FloatArray) -> TailCurve:
        total = pooled_counts.sum()
        below = np.cumsum(pooled_counts)[: boundaries.size]
        above = np.cumsum(pooled_counts[::-1])[::-1][1 : boundaries.size + 1]
        tails = np.concatenate((above, below))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_bounds = np.where(boundaries > 0, np.log(boundaries), np.nan)
            log_tails = np.log(tails / total)
        return TailCurve(log_bounds, log_tails, tails >= PLUGIN_MIN_COUNT)

    def _points(self, side: int) -> tuple[FloatArray, FloatArray]:
        count = self.log_bounds.size
        values = self.log_tails[side * count : (side + 1) * count]
        valid = np.isfinite(self.log_bounds) & np.isfinite(values)
        return self.log_bounds[valid], values[valid]

    def log_margins(self, log_scale: float) -> tuple[Bounds, Bounds]:
        """Per row, bounds on log(tail at b / exp(log_scale) / tail at b), then at b * exp(...):
        ``((lower, upper) slower, (lower, upper) faster)``."""
        count = self.log_bounds.size
        shifted = np.concatenate((self.log_bounds - log_scale, self.log_bounds + log_scale))
        keep = self.usable & np.isfinite(self.log_tails)
        lower, upper = np.empty((2, 2 * count)), np.empty((2, 2 * count))
        for side in (0, 1):
            x, y = self._points(side)
            low, high = _concave_bounds(x, y, shifted)
            tail = self.log_tails[side * count : (side + 1) * count]
            lower[:, side * count : (side + 1) * count] = low.reshape(2, count) - tail
            upper[:, side * count : (side + 1) * count] = high.reshape(2, count) - tail
        lower[:, ~keep], upper[:, ~keep] = np.nan, np.nan
        return (lower[0], upper[0]), (lower[1], upper[1])

    def latency_ratio(self, row: int, tail_ratio: float, clamp: bool) -> float:
        """Latency at b over the baseline's latency where its tail is ``tail_ratio`` times larger:
        the canary's relative change at that quantile (log-log linear between boundaries).
        Beyond the boundaries it is clamped for an estimate, left open (0, inf) for a bound."""
        count = self.log_bounds.size
        above = row < count
        x, y = self._points(0 if above else 1)
        log_bound, tail = self.log_bounds[row % count], self.log_tails[row]
        if x.size < 2 or not (np.isfinite(log_bound) and np.isfinite(tail)):
            return math.nan
        if tail_ratio <= 0 or math.isinf(tail_ratio):
            return math.inf if (tail_ratio > 0) == above else 0.0
        target = tail + math.log(tail_ratio)
        # S falls with latency, F rises: order the points by tail value for np.interp
        order = np.argsort(y, kind="stable")
        open_ends = (math.inf, -math.inf) if above else (-math.inf, math.inf)
        ends = (None, None) if clamp else open_ends
        log_latency = float(np.interp(target, y[order], x[order], left=ends[0], right=ends[1]))
        return math.exp(log_bound - log_latency)


def _concave_bounds(
    x: FloatArray, y: FloatArray, targets: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Bounds on a monotone function known at ``(x, y)``, tighter where it looks concave."""
    if x.size < 2:
        nothing = np.full(targets.shape, np.nan)
        return nothing, nothing
    last = x.size - 2
    index = np.clip(np.searchsorted(x, targets, side="right") - 1, 0, last)
    secant = np.diff(y) / np.diff(x)
    offset = targets - x[index]
    chord = y[index] + secant[index] * offset
    before = np.where(index >= 1, secant[np.maximum(index - 1, 0)], np.inf)
    after = np.where(index < last, secant[np.minimum(index + 1, last)], -np.inf)
    from_left = y[index] + before * offset
    from_right = y[index + 1] - after * (x[index + 1] - targets)
    low_end, high_end = np.minimum(y[index], y[index + 1]), np.maximum(y[index], y[index + 1])
    concave = (before >= secant[index]) & (secant[index] >= after) & (index.size > 0) & (last > 0)
    with np.errstate(invalid="ignore"):
        ceiling = np.minimum(
            np.where(index >= 1, from_left, np.inf), np.where(index < last, from_right, np.inf)
        )
        upper = np.where(concave, np.clip(ceiling, chord, high_end), high_end)
        lower = np.where(concave, chord, low_end)
    inside = (targets >= x[0]) & (targets <= x[-1])
    return np.where(inside, lower, np.nan), np.where(inside, upper, np.nan)


@dataclass(frozen=True)
class BoundaryEvidence:
    """Per row, log e-values against slower, against faster (mixtures over start times), that it
    is not slower and that it is not faster (whole window): ``log_e`` of shape (4, rows). And
    for the first two families, the interval (0-based) whose restart weighs most: ``start``."""

    log_e: FloatArray
    start: IntArray


def boundary_log_e_values(
    fit: RateRatioFit,
    curve: TailCurve,
    tolerance: float,
    direction: str,
    *,
    pass_rows: BoolArray | None,
    log_cap: float,
) -> BoundaryEvidence:
    """The four families of e-values at every row. Families the direction does not need, and
    the PASS families outside ``pass_rows`` (None: no early PASS), stay at 0 (e-value 1)."""
    rows = fit.canary_hits.shape[0]
    above = np.arange(rows) < rows // 2
    if tolerance > 0:
        (slow_low, slow_high), (fast_low, fast_high) = curve.log_margins(math.log1p(tolerance))
    else:  # every margin is exactly 1: no plug-in
        slow_low = slow_high = fast_low = fast_high = np.zeros(rows)
    # Above b the lenient null is the larger ratio, at or below b the smaller one. A FAIL tests
    # the lenient null, a PASS the strict one.
    families = (
        (np.where(above, slow_high, slow_low), above),
        (np.where(above, fast_low, fast_high), ~above),
        (np.where(above, slow_low, slow_high), ~above),
        (np.where(above, fast_high, fast_low), above),
    )
    every, passing = np.arange(rows), np.flatnonzero(pass_rows if pass_rows is not None else [])
    wanted = [
        (family, subset)
        for family, subset, unwanted in (
            (0, every, "decrease_is_bad"),
            (1, every, "increase_is_bad"),
            (2, passing, "decrease_is_bad"),
            (3, passing, "increase_is_bad"),
        )
        if direction != unwanted and subset.size
    ]
    log_e, start = np.zeros((4, rows)), np.zeros((2, rows), dtype=np.intp)
    if not wanted:
        return BoundaryEvidence(log_e, start)
    onset = log_e_values_any_start(
        fit,
        np.concatenate([families[family][0][subset] for family, subset in wanted]),
        np.concatenate([families[family][1][subset] for family, subset in wanted]),
        np.concatenate([subset for _, subset in wanted]),
        log_cap=log_cap,
        restart=np.concatenate([np.full(subset.size, family < 2) for family, subset in wanted]),
    )
    offset = 0
    for family, subset in wanted:
        log_e[family, subset] = onset.log_e[offset : offset + subset.size]
        if family < 2:
            start[family, subset] = onset.start[offset : offset + subset.size]
        offset += subset.size
    return BoundaryEvidence(log_e, start)


def split_rows(counts: FloatArray, boundaries: int) -> FloatArray:
    """Rows ``[above b_0 .. above b_{B-1}, at-or-below b_0 .. b_{B-1}]`` by interval."""
    below = np.cumsum(counts, axis=1)[:, :boundaries]
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1 : boundaries + 1]
    stacked: FloatArray = np.concatenate((above.T, below.T))
    return stacked
