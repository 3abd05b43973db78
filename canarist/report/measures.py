"""What a metric's chart plots: the quantity its ruling cites, per interval and version.

A chart beside a ruling must show what the ruling is about, or the engineer compares a p90
line with a sentence about the p99. So the measure is chosen from the judgement on the card:

- counts: the share of errors (errors / total);
- a histogram whose judge tested the mean (``details["tested"] == "mean"``): the mean latency,
  ``sum / count`` per interval (the policy's ``sum`` and ``count`` queries);
- a histogram whose ruling cites a bucket tail: that quantile (``details["quantile"]``, e.g.
  0.99) of each interval's buckets, by ``histogram_quantile`` as the judge computes it;
- a histogram without a ruling that cites either (not judged yet, no data): the mean when the
  policy queries ``sum`` and ``count``, else the p99, and the chart says it is not cited;
- series and thresholds: the value (a trend ruling is about growth, which its caption gives).

The unit of the axis comes from the query: ``seconds`` in a histogram's buckets, ``_bytes`` or
``seconds`` in a series' query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analyzer.judges.base import CountsData, HistogramData, JudgeData, SeriesData
from analyzer.judges.tails import histogram_quantile
from analyzer.policy.metrics import AnyMetric, CountsMetric, HistogramMetric
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement
from canarist.report.formatting import Unit, significant

UNCITED_QUANTILE = 0.99  # what the histogram judge reports when no boundary is cited


class Quantity(StrEnum):
    ERROR_SHARE = "error share"
    MEAN = "mean"
    QUANTILE = "quantile"
    VALUE = "value"


@dataclass(frozen=True)
class Measure:
    """One number per interval and version, what it is called and how it is written."""

    quantity: Quantity
    unit: Unit
    quantile: float | None = None  # Quantity.QUANTILE: which
    cited: bool = True  # False: no ruling names it; the chart shows a default

    @property
    def label(self) -> str:
        """``p99 latency``, ``mean latency``, ``share of errors (errors / total)``, ``value``."""
        latency = " latency" if self.unit is Unit.SECONDS else ""
        if self.quantity is Quantity.QUANTILE:
            return f"{quantile_name(self.quantile or UNCITED_QUANTILE)}{latency}"
        if self.quantity is Quantity.MEAN:
            return f"mean{latency} (sum / count)"
        if self.quantity is Quantity.ERROR_SHARE:
            return "share of errors (errors / total)"
        return "value"

    def values(self, data: JudgeData | None, size: int) -> FloatArray:
        """One number per interval, NaN where the version had no data (or not this kind)."""
        nothing = np.full(size, np.nan)
        if isinstance(data, CountsData) and self.quantity is Quantity.ERROR_SHARE:
            with np.errstate(invalid="ignore", divide="ignore"):
                share: FloatArray = np.where(data.totals > 0, data.errors / data.totals, np.nan)
            return share
        if isinstance(data, HistogramData) and self.quantity is Quantity.MEAN:
            if data.sums is None or data.observations is None:
                return nothing
            with np.errstate(invalid="ignore", divide="ignore"):
                mean: FloatArray = np.where(
                    data.observations > 0, data.sums / data.observations, np.nan
                )
            return np.where(np.isfinite(mean), mean, np.nan)
        if isinstance(data, HistogramData) and self.quantity is Quantity.QUANTILE:
            level = self.quantile or UNCITED_QUANTILE
            return np.array(
                [
                    histogram_quantile(level, data.upper_bounds, row)
                    if np.isfinite(row).all()
                    else math.nan
                    for row in data.counts
                ],
                dtype=np.float64,
            )
        if isinstance(data, SeriesData) and self.quantity is Quantity.VALUE:
            values: FloatArray = np.where(np.isfinite(data.values), data.values, np.nan)
            return values
        return nothing


def quantile_name(level: float) -> str:
    """``p99``, ``p98.9``, ``p50``: as the judges' reasons write a quantile."""
    return f"p{significant(100 * level, 3)}"


def measure_for(metric: AnyMetric, ruling: Judgement | None) -> Measure:
    """What the chart of ``metric`` plots beside ``ruling`` (the judgement on its card)."""
    if isinstance(metric, CountsMetric):
        return Measure(Quantity.ERROR_SHARE, Unit.RATIO)
    if isinstance(metric, HistogramMetric):
        unit = Unit.SECONDS if "seconds" in metric.buckets else Unit.NUMBER
        details = ruling.details if ruling is not None else {}
        if details.get("tested") == "mean":
            return Measure(Quantity.MEAN, unit)
        level = details.get("quantile")
        if isinstance(level, int | float) and not isinstance(level, bool) and 0 < level < 1:
            return Measure(Quantity.QUANTILE, unit, quantile=float(level))
        if metric.sum is not None and metric.count is not None:
            return Measure(Quantity.MEAN, unit, cited=False)
        return Measure(Quantity.QUANTILE, unit, quantile=UNCITED_QUANTILE, cited=False)
    query = next(iter(metric.templates().values()))
    unit = Unit.BYTES if "_bytes" in query else Unit.SECONDS if "seconds" in query else Unit.NUMBER
    return Measure(Quantity.VALUE, unit)
