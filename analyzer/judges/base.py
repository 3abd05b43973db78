"""The Judge seam: pure functions from two versions' data to a Judgement.

A judge sees numbers, never a clock or a network. The analysis turns query results into one of
the data shapes below, one per version, all aligned on the same interval timestamps:

- ``CountsData``     per-interval bad events and total events (e.g. 5xx and all responses)
- ``HistogramData``  per-interval counts per latency bucket (non-cumulative, ``+Inf`` last)
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
