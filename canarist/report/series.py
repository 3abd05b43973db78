"""Both versions' data per policy metric over a rollout, through the analyzer's own query path.

The charts must show what the judges saw, so the data is fetched by ``analyzer.analysis.fetch``
with the rollout's selectors and args: the same templates, rendered and escaped the same way,
on the same grid. Only the step may be coarser: a rollout that ran for days is fetched at a
multiple of the analysis interval (the policy is copied with that interval, so
``increase(x[interval])`` still covers each step), which keeps a report to ``MAX_POINTS`` per
series. Each metric becomes one number per interval and version: the error ratio for counts,
a quantile for histograms (``histogram_quantile`` of the judges), the value for series.

Missing data is data here too: a failed query or an outage gives a series with a ``problem`` and
the page says "no data"; after the first temporary failure the remaining queries are skipped, so
a report over a dead Prometheus costs one timeout, not one per query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from analyzer.analysis import MetricWindow, fetch
from analyzer.errors import CanaristError, TemporarySourceError
from analyzer.judges.base import CountsData, HistogramData, JudgeData, SeriesData
from analyzer.judges.tails import histogram_quantile
from analyzer.policy import Policy
from analyzer.policy.durations import format_duration
from analyzer.policy.metrics import AnyMetric, CountsMetric, HistogramMetric
from analyzer.sources.base import FloatArray, MetricSource, Series
from canarist.report.formatting import Unit
from workers.state import RolloutSpec

MAX_POINTS = 720
HISTOGRAM_QUANTILE = 0.9


@dataclass(frozen=True)
class MetricSeries:
    """One metric's per-interval values for both versions, or why there are none."""

    name: str
    what: str  # what a point is, e.g. "5xx share per 1m"
    unit: Unit
    times: FloatArray
    baseline: FloatArray
    canary: FloatArray
    problem: str | None = None

    @property
    def has_data(self) -> bool:
        return bool(np.isfinite(self.baseline).any() or np.isfinite(self.canary).any())


class _StopAfterOutage:
    """A MetricSource that stops asking once the source said it is unavailable."""

    def __init__(self, source: MetricSource) -> None:
        self.source = source
        self.outage: TemporarySourceError | None = None

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        if self.outage is not None:
            raise TemporarySourceError(f"not asked: {self.outage}")
        try:
            return self.source.query_range(promql, start, end, step)
        except TemporarySourceError as exc:
            self.outage = exc
            raise


def metric_series(
    policy: Policy, source: MetricSource, spec: RolloutSpec, start: float, end: float
) -> list[MetricSeries]:
    """Every metric of ``policy`` for the rollout's versions over [start, end]."""
    interval = policy.analysis.interval
    step = interval * max(1, math.ceil((end - start) / interval.total_seconds() / MAX_POINTS))
    if step != interval:
        analysis = policy.analysis.model_copy(update={"interval": step})
        policy = policy.model_copy(update={"analysis": analysis})
    empty = np.zeros(0)
    try:
        window = fetch(
            policy,
            _StopAfterOutage(source),
            spec.versions(),
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(end, UTC),
        )
    except CanaristError as exc:
        problem = f"the metrics could not be queried: {exc}"
        return [
            MetricSeries(
                metric.name, _what(metric, step), _unit(metric), empty, empty, empty, problem
            )
            for metric in policy.metrics
        ]
    return [_series(metric_window, window.grid, step) for metric_window in window.metrics]


def _series(window: MetricWindow, grid: FloatArray, step: timedelta) -> MetricSeries:
    metric = window.metric
    what, unit = _what(metric, step), _unit(metric)
    if window.error is not None or window.baseline is None or window.canary is None:
        problem = window.error or "the rollout is shorter than one analysis interval"
        nothing = np.full(grid.size, np.nan)
        return MetricSeries(metric.name, what, unit, grid, nothing, nothing, problem)
    return MetricSeries(
        metric.name, what, unit, grid, _values(window.baseline), _values(window.canary)
    )


def _values(data: JudgeData) -> FloatArray:
    """One finite number per interval, NaN where the version had no data."""
    if isinstance(data, CountsData):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio: FloatArray = np.where(data.totals > 0, data.errors / data.totals, np.nan)
        return ratio
    if isinstance(data, HistogramData):
        quantiles = [
            histogram_quantile(HISTOGRAM_QUANTILE, data.upper_bounds, row)
            if np.isfinite(row).all()
            else math.nan
            for row in data.counts
        ]
        return np.array(quantiles, dtype=np.float64)
    assert isinstance(data, SeriesData)
    values: FloatArray = np.where(np.isfinite(data.values), data.values, np.nan)
    return values


def _what(metric: AnyMetric, step: timedelta) -> str:
    every = f"per {format_duration(step)}"
    if isinstance(metric, CountsMetric):
        return f"share of errors (errors / total) {every}"
    if isinstance(metric, HistogramMetric):
        return f"p{HISTOGRAM_QUANTILE * 100:g} from the histogram's buckets {every}"
    return f"value {every}"


def _unit(metric: AnyMetric) -> Unit:
    if isinstance(metric, CountsMetric):
        return Unit.RATIO
    if isinstance(metric, HistogramMetric):
        return Unit.SECONDS if "seconds" in metric.buckets else Unit.NUMBER
    query = next(iter(metric.templates().values()))
    return Unit.BYTES if "_bytes" in query else Unit.SECONDS if "seconds" in query else Unit.NUMBER
