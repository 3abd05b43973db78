"""Run Canarist on a simulated canary through its real pipeline: templates, source, backtest.

The benchmark plays Prometheus. Each of the policy's templates is rendered with the simulated
versions' selectors exactly as ``analyzer.analysis.fetch`` renders it, and the rendered PromQL is
registered in a ``MemorySource`` with the answer Prometheus would give for the simulated data:

- ``sum(increase(http_requests_total{…, code=~"5.."}[1m]))`` — the version's errors per minute;
- ``sum(increase(http_requests_total{…}[1m]))`` — its requests per minute;
- ``sum by (le) (increase(http_request_duration_seconds_bucket{…}[1m]))`` — one series per ``le``
  with cumulative counts, as a ``by (le)`` query of a histogram returns them;
- ``avg(process_resident_memory_bytes{…})`` — the mean of the version's pods.

The value of ``increase(x[1m])`` at instant t covers (t - 1m, t], so minute m of the canary (which
starts at ``START``) is stamped ``START + (m + 1) min``; a minute without a scrape has no point (or
a NaN point). ``analyzer.backtest.backtest`` then replays every look; the benchmark never decides
for Canarist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from analyzer.analysis import Versions, resolve_args
from analyzer.backtest import BacktestResult, backtest
from analyzer.policy.metrics import AnyMetric, CountsMetric, HistogramMetric, SeriesMetric
from analyzer.policy.models import Policy
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.base import FloatArray, Series
from analyzer.sources.memory import MemorySource
from benchmarks.latency import BUCKET_BOUNDS
from benchmarks.simulator import MINUTES, SimulatedRun, VersionStream

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=MINUTES)
VERSIONS = Versions(
    baseline=Selector.from_labels({"app": "sim", "version": "baseline"}),
    canary=Selector.from_labels({"app": "sim", "version": "canary"}),
    args={},
)
_STAMPS: FloatArray = START.timestamp() + 60.0 * np.arange(1, MINUTES + 1, dtype=np.float64)


def run_canarist(policy: Policy, run: SimulatedRun) -> BacktestResult:
    """Canarist's decision on one simulated canary, by ``analyzer.backtest.backtest``."""
    return backtest(policy, source_for(policy, run), VERSIONS, START, END)


def source_for(policy: Policy, run: SimulatedRun) -> MemorySource:
    """A MemorySource answering every rendered query of ``policy`` for both simulated versions."""
    args = resolve_args(policy, VERSIONS.args)
    source = MemorySource()
    for selector, stream in ((VERSIONS.baseline, run.baseline), (VERSIONS.canary, run.canary)):
        for template, answer in _answers(policy_metrics(policy), stream):
            promql = PromQLTemplate.parse(template).render(
                selector=selector, interval=policy.analysis.interval, args=args
            )
            source.set(promql, answer)
    return source


def policy_metrics(policy: Policy) -> list[AnyMetric]:
    if policy.analysis.interval != timedelta(minutes=1):
        raise ValueError("the simulator produces one point per minute: use a 1m interval")
    return list(policy.metrics)


def _answers(metrics: list[AnyMetric], stream: VersionStream) -> list[tuple[str, list[Series]]]:
    answers: list[tuple[str, list[Series]]] = []
    for metric in metrics:
        if isinstance(metric, CountsMetric):
            _expect(metric.errors, ("http_requests_total", '"5.."'))
            _expect(metric.total, ("http_requests_total",))
            answers.append((metric.errors, [_series({}, stream.errors, stream)]))
            answers.append((metric.total, [_series({}, stream.requests, stream)]))
        elif isinstance(metric, HistogramMetric):
            _expect(metric.buckets, ("http_request_duration_seconds_bucket", "by (le)"))
            cumulative = np.cumsum(stream.buckets, axis=1)
            answers.append(
                (
                    metric.buckets,
                    [
                        _series({"le": _le(bound)}, cumulative[:, column], stream)
                        for column, bound in enumerate(BUCKET_BOUNDS)
                    ],
                )
            )
        elif isinstance(metric, SeriesMetric):
            _expect(metric.query, ("process_resident_memory_bytes",))
            answers.append((metric.query, [_series({}, stream.memory, stream)]))
        else:
            raise ValueError(f"the simulator has no data for metric {metric.name!r}")
    return answers


def _expect(template: str, fragments: tuple[str, ...]) -> None:
    """Refuse a template the simulator does not model, rather than answer it with wrong data."""
    missing = [fragment for fragment in fragments if fragment not in template]
    if missing:
        raise ValueError(f"the simulator cannot answer {template!r}: it lacks {missing}")


def _series(labels: dict[str, str], values: FloatArray, stream: VersionStream) -> Series:
    keep = ~stream.missing
    shown = np.where(stream.nan, np.nan, values)
    return Series(labels=labels, timestamps=_STAMPS[keep], values=shown[keep].astype(np.float64))


def _le(bound: float) -> str:
    """Prometheus' spelling of a bucket bound: 0.005, 0.1, 1, 2.5, +Inf."""
    return "+Inf" if np.isinf(bound) else f"{bound:g}"
