"""The Judge seam: pure functions from two versions' data to a Judgement.

A judge sees numbers, never a clock or a network. The analysis turns query results into one of
the data shapes below, one per version, all aligned on the same interval timestamps:

- ``CountsData``     per-interval bad events and total events (e.g. 5xx and all responses)
- ``HistogramData``  per-interval counts per latency bucket (non-cumulative, ``+Inf`` last), and
                     when the policy queries them the histogram's ``_sum`` and ``_count``
- ``SeriesData``     per-interval values of any gauge or rate

NaN marks an interval without data. ``JudgeContext`` carries what the policy decides beyond the
metric itself: the alpha allotted to this metric after correction across metrics, and
``min_samples``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from analyzer.policy.metrics import MetricBase
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement


@dataclass(frozen=True)
class CountsData:
    timestamps: FloatArray
    errors: FloatArray
    totals: FloatArray


@dataclass(frozen=True)
class HistogramData:
    timestamps: FloatArray
    upper_bounds: FloatArray  # bucket upper bounds ("le"), ascending, +inf last
    counts: FloatArray  # shape (intervals, buckets): observations that fell in each bucket
    sums: FloatArray | None = None  # per interval: the _sum increase (e.g. seconds), if queried
    observations: FloatArray | None = None  # per interval: the _count increase, with ``sums``


@dataclass(frozen=True)
class SeriesData:
    timestamps: FloatArray
    values: FloatArray


JudgeData = CountsData | HistogramData | SeriesData


@dataclass(frozen=True)
class JudgeContext:
    alpha: float  # this metric's share of the policy's false-abort rate
    min_samples: int


class Judge(Protocol):
    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement: ...


def empty_series() -> SeriesData:
    return SeriesData(np.zeros(0), np.zeros(0))


def on_common_buckets(
    baseline: HistogramData, canary: HistogramData
) -> tuple[HistogramData, HistogramData]:
    """Both histograms re-bucketed onto the bucket bounds they share.

    A new version may change its buckets; observations can only be compared at boundaries both
    versions report, so finer buckets are merged into the shared ones (cumulative counts at a
    shared bound are exact for both). A version without buckets comes back empty: no data.
    """
    if np.array_equal(baseline.upper_bounds, canary.upper_bounds):
        return baseline, canary
    shared = np.intersect1d(baseline.upper_bounds, canary.upper_bounds)
    return _rebucket(baseline, shared), _rebucket(canary, shared)


def _rebucket(data: HistogramData, bounds: FloatArray) -> HistogramData:
    columns = np.searchsorted(data.upper_bounds, bounds)
    cumulative = np.cumsum(data.counts, axis=1)[:, columns] if bounds.size else data.counts[:, :0]
    counts = np.diff(cumulative, axis=1, prepend=0.0) if bounds.size else cumulative
    return HistogramData(
        data.timestamps, bounds.astype(np.float64), counts, data.sums, data.observations
    )
