"""Both versions' data per policy metric over a rollout, through the analyzer's own query path.

The charts must show what the judges saw, so the data is fetched by ``analyzer.analysis.fetch``
with the rollout's selectors and args: the same templates (a histogram's ``buckets`` and, when
the policy has them, its ``sum`` and ``count``), rendered and escaped the same way, on the same
grid. Only the step may be coarser: a rollout that ran for days is fetched at a multiple of the
analysis interval (the policy is copied with that interval, so ``increase(x[interval])`` still
covers each step), which keeps a report to ``MAX_POINTS`` per series. What a chart plots of this
data (an error share, a mean or quantile latency, a value) is chosen beside the ruling it
illustrates: see measures.py.

Missing data is data here too: a failed query or an outage gives a series with a ``problem`` and
the page says "no data"; after the first temporary failure the remaining queries are skipped, so
a report over a dead Prometheus costs one timeout, not one per query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from analyzer.analysis import MetricWindow, fetch
from analyzer.errors import CanaristError, TemporarySourceError
from analyzer.judges.base import JudgeData
from analyzer.policy import Policy
from analyzer.policy.metrics import AnyMetric
from analyzer.sources.base import FloatArray, MetricSource, QueryResult, Series, ask_many
from canarist.report.measures import Measure
from workers.spec import RolloutSpec

MAX_POINTS = 720


@dataclass(frozen=True)
class MetricSeries:
    """One metric's data for both versions on ``times`` (one point per ``step``), or why there
    is none: ``baseline`` and ``canary`` are None with a ``problem``."""

    metric: AnyMetric
    step: timedelta
    times: FloatArray
    baseline: JudgeData | None
    canary: JudgeData | None
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.metric.name

    def plotted(self, measure: Measure) -> tuple[FloatArray, FloatArray]:
        """Baseline and canary as ``measure`` plots them, one number per time."""
        size = self.times.size
        return measure.values(self.baseline, size), measure.values(self.canary, size)


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

    def query_many(
        self, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
    ) -> list[QueryResult]:
        if self.outage is not None:
            return [TemporarySourceError(f"not asked: {self.outage}") for _ in queries]
        answers = ask_many(self.source, queries, start, end, step)
        outages = (answer for answer in answers if isinstance(answer, TemporarySourceError))
        self.outage = next(outages, None)
        return answers


def metric_series(
    policy: Policy, source: MetricSource, spec: RolloutSpec, start: float, end: float
) -> list[MetricSeries]:
    """Every metric of ``policy`` for the rollout's versions over [start, end]."""
    interval = policy.analysis.interval
    step = interval * max(1, math.ceil((end - start) / interval.total_seconds() / MAX_POINTS))
    if step != interval:
        analysis = policy.analysis.model_copy(update={"interval": step})
        policy = policy.model_copy(update={"analysis": analysis})
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
        empty = np.zeros(0)
        return [MetricSeries(m, step, empty, None, None, problem) for m in policy.metrics]
    return [_series(metric_window, window.grid, step) for metric_window in window.metrics]


def _series(window: MetricWindow, grid: FloatArray, step: timedelta) -> MetricSeries:
    if window.error is not None or window.baseline is None or window.canary is None:
        problem = window.error or "the rollout is shorter than one analysis interval"
        return MetricSeries(window.metric, step, grid, None, None, problem)
    return MetricSeries(window.metric, step, grid, window.baseline, window.canary)
