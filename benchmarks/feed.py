"""Run Canarist on a simulated canary through its real pipeline: templates, source, backtest.

The benchmark plays Prometheus. Each of the policy's templates is rendered with the simulated
versions' selectors exactly as ``analyzer.analysis.fetch`` renders it, and the rendered PromQL is
registered in a ``MemorySource`` with the answer Prometheus would give for the simulated data
(``benchmarks.queries`` recognises the template, or refuses it with a clear error):

- ``sum(increase(http_requests_total{…, code=~"5.."}[1m]))`` — the version's errors per minute;
- ``sum(increase(http_requests_total{…}[1m]))`` — its requests per minute;
- ``sum by (le) (increase(http_request_duration_seconds_bucket{…}[1m]))`` — one series per ``le``
  with cumulative counts, as a ``by (le)`` query of a histogram returns them;
- ``sum(increase(http_request_duration_seconds_sum{…}[1m]))`` / ``_count`` — the latency sum in
  seconds and the number of requests;
- ``avg(process_resident_memory_bytes{…})`` — the mean of the version's pods (``max``, ``min``,
  ``sum`` across them likewise);
- each of these ``by (pod)`` (buckets ``by (le, pod)``): one series per pod, labelled
  ``{"pod": "canary-0"}`` (``{"le": "0.1", "pod": "canary-0"}``, cumulative per pod), e.g.
  ``sum by (pod) (increase(http_requests_total{ {{ selector }} }[{{ interval }}]))`` or
  ``max by (pod) (process_resident_memory_bytes{ {{ selector }} })``.

The value of ``increase(x[1m])`` at instant t covers (t - 1m, t], so minute m of the canary (which
starts at ``START``) is stamped ``START + (m + 1) min``; a minute without a scrape has no point (or
a NaN point). ``analyzer.backtest.backtest`` then replays every look; the benchmark never decides
for Canarist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from analyzer.analysis import Versions, resolve_args
from analyzer.backtest import BacktestResult, backtest
from analyzer.policy.metrics import AnyMetric, HistogramMetric
from analyzer.policy.models import Policy
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.base import FloatArray, Series
from analyzer.sources.memory import MemorySource
from benchmarks.latency import BUCKET_BOUNDS
from benchmarks.queries import Family, QueryShape, UnansweredQueryError, recognise
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
        for template, found in _answers(policy_metrics(policy), stream):
            promql = PromQLTemplate.parse(template).render(
                selector=selector, interval=policy.analysis.interval, args=args
            )
            source.set(promql, found)
    return source


def policy_metrics(policy: Policy) -> list[AnyMetric]:
    if policy.analysis.interval != timedelta(minutes=1):
        raise ValueError("the simulator produces one point per minute: use a 1m interval")
    return list(policy.metrics)


# The families a metric's field may ask for: anything else would judge the wrong quantity.
_FIELD_FAMILIES: dict[str, tuple[Family, ...]] = {
    "errors": (Family.ERRORS,),
    "total": (Family.REQUESTS, Family.LATENCY_COUNT),
    "buckets": (Family.BUCKETS,),
    "sum": (Family.LATENCY_SUM,),
    "count": (Family.LATENCY_COUNT, Family.REQUESTS),
    "query": tuple(family for family in Family if family is not Family.BUCKETS),
}


def _answers(metrics: list[AnyMetric], stream: VersionStream) -> list[tuple[str, list[Series]]]:
    answers: list[tuple[str, list[Series]]] = []
    for metric in metrics:
        for field, template in metric_templates(metric).items():
            try:
                shape = recognise(template)
                allowed = _FIELD_FAMILIES.get(field, tuple(Family))
                if shape.family not in allowed:
                    names = " or ".join(family.value for family in allowed)
                    raise UnansweredQueryError(
                        f"{field!r} asks for {shape.family.value}, expected {names}: {template!r}"
                    )
            except UnansweredQueryError as exc:
                raise UnansweredQueryError(f"metric {metric.name!r} ({field}): {exc}") from exc
            answers.append((template, answer(shape, stream)))
    return answers


def metric_templates(metric: AnyMetric) -> dict[str, str]:
    """The metric's templates by field, with a histogram's ``sum``/``count`` when it has them.

    ``getattr``: those fields are being added to ``HistogramMetric``; this works before and after.
    """
    templates = dict(metric.templates())
    if isinstance(metric, HistogramMetric):
        for field in ("sum", "count"):
            template = getattr(metric, field, None)
            if isinstance(template, str) and template:
                templates.setdefault(field, template)
    return templates


def answer(shape: QueryShape, stream: VersionStream) -> list[Series]:
    """What Prometheus returns for a query of this shape over the simulated version."""
    pods = stream.pods
    if shape.family is Family.BUCKETS:
        if not shape.per_pod:
            return _histogram({}, stream.buckets, stream)
        return [
            series
            for index, name in enumerate(pods.names)
            for series in _histogram({"pod": name}, pods.buckets[index], stream)
        ]
    per_pod, version = {
        Family.ERRORS: (pods.errors, stream.errors),
        Family.REQUESTS: (pods.requests, stream.requests),
        Family.LATENCY_COUNT: (pods.requests, stream.requests),  # every request is observed
        Family.LATENCY_SUM: (pods.latency_sum, stream.latency_sum),
        Family.MEMORY: (pods.memory, stream.memory),
    }[shape.family]
    if shape.per_pod:
        return [
            _series({"pod": name}, per_pod[index], stream) for index, name in enumerate(pods.names)
        ]
    if shape.family is Family.MEMORY and shape.aggregation != "avg":
        version = _ACROSS_PODS[shape.aggregation](per_pod)
    return [_series({}, version, stream)]


_ACROSS_PODS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "sum": lambda pods: pods.sum(axis=0),
    "max": lambda pods: pods.max(axis=0),
    "min": lambda pods: pods.min(axis=0),
}


def _histogram(labels: dict[str, str], buckets: FloatArray, stream: VersionStream) -> list[Series]:
    """Cumulative ``le`` series, as ``sum by (le) (…)`` of a histogram returns them."""
    cumulative = np.cumsum(buckets, axis=1)
    return [
        _series({"le": _le(bound), **labels}, cumulative[:, column], stream)
        for column, bound in enumerate(BUCKET_BOUNDS)
    ]


def _series(labels: dict[str, str], values: FloatArray, stream: VersionStream) -> Series:
    keep = ~stream.missing
    shown = np.where(stream.nan, np.nan, values)
    return Series(labels=labels, timestamps=_STAMPS[keep], values=shown[keep].astype(np.float64))


def _le(bound: float) -> str:
    """Prometheus' spelling of a bucket bound: 0.005, 0.1, 1, 2.5, +Inf."""
    return "+Inf" if np.isinf(bound) else f"{bound:g}"
