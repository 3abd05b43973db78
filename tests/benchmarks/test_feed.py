"""The benchmark answers the per-pod queries of the new default policy as Prometheus would, reads
back the same version totals through Canarist's fetch, and refuses what it cannot answer."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from analyzer.analysis import fetch
from analyzer.policy.loader import load_policy
from analyzer.policy.metrics import CountsMetric, HistogramMetric, SeriesMetric
from analyzer.policy.models import Policy
from analyzer.policy.promql import PromQLTemplate
from analyzer.sources.base import Series
from benchmarks.feed import END, START, VERSIONS, answer, run_canarist, source_for
from benchmarks.latency import BUCKET_BOUNDS
from benchmarks.queries import Family, UnansweredQueryError, recognise
from benchmarks.runner import DEFAULT_POLICY, Task, simulate_task
from benchmarks.simulator import SimulatedRun, VersionStream

PER_POD = {
    "errors": 'sum by (pod) (increase(http_requests_total{ {{ selector }}, code=~"5.." }'
    "[{{ interval }}]))",
    "total": "sum by (pod) (increase(http_requests_total{ {{ selector }} }[{{ interval }}]))",
    "buckets": "sum by (le, pod) (increase(http_request_duration_seconds_bucket"
    "{ {{ selector }} }[{{ interval }}]))",
    "sum": "sum by (pod) (increase(http_request_duration_seconds_sum{ {{ selector }} }"
    "[{{ interval }}]))",
    "count": "sum by (pod) (increase(http_request_duration_seconds_count{ {{ selector }} }"
    "[{{ interval }}]))",
    "memory": "max by (pod) (process_resident_memory_bytes{ {{ selector }} })",
}
VERSION_SUM = "sum(increase(http_request_duration_seconds_sum{ {{ selector }} }[{{ interval }}]))"
VERSION_COUNT = (
    "sum(increase(http_request_duration_seconds_count{ {{ selector }} }[{{ interval }}]))"
)


@pytest.fixture(scope="module")
def run() -> SimulatedRun:
    """A run whose canary has both kinds of scrape gap (no point, a NaN point); its baseline too."""
    simulated = simulate_task(Task("realistic mix", "medium", 3, 20260105))
    assert simulated.canary.missing.any() and simulated.canary.nan.any()
    assert (simulated.baseline.missing | simulated.baseline.nan).any()
    return simulated


def shown(values: np.ndarray, stream: VersionStream) -> np.ndarray:
    """What a series of ``values`` looks like after scrape gaps: no point, or a NaN point."""
    return np.where(stream.nan, np.nan, values)[~stream.missing]


def by_pod(found: list[Series]) -> dict[str, Series]:
    assert all(set(series.labels) == {"pod"} for series in found)
    return {series.labels["pod"]: series for series in found}


@pytest.mark.parametrize(
    ("field", "family", "values"),
    [
        ("errors", Family.ERRORS, "errors"),
        ("total", Family.REQUESTS, "requests"),
        ("sum", Family.LATENCY_SUM, "latency_sum"),
        ("count", Family.LATENCY_COUNT, "requests"),
        ("memory", Family.MEMORY, "memory"),
    ],
)
def test_each_per_pod_query_has_one_series_per_pod(
    run: SimulatedRun, field: str, family: Family, values: str
) -> None:
    shape = recognise(PER_POD[field])
    assert shape.family is family and shape.per_pod
    for stream in (run.baseline, run.canary):
        series = by_pod(answer(shape, stream))
        assert tuple(series) == stream.pods.names
        for index, name in enumerate(stream.pods.names):
            expected = shown(getattr(stream.pods, values)[index], stream)
            np.testing.assert_array_equal(series[name].values, expected)


def test_buckets_by_le_and_pod_are_cumulative_per_pod(run: SimulatedRun) -> None:
    shape = recognise(PER_POD["buckets"])
    assert shape.family is Family.BUCKETS and shape.per_pod
    stream = run.canary
    found = answer(shape, stream)
    assert len(found) == len(stream.pods.names) * len(BUCKET_BOUNDS)
    assert {tuple(sorted(series.labels)) for series in found} == {("le", "pod")}
    for index, name in enumerate(stream.pods.names):
        mine = {s.labels["le"]: s for s in found if s.labels["pod"] == name}
        assert list(mine)[-1] == "+Inf" and "0.1" in mine
        cumulative = np.cumsum(stream.pods.buckets[index], axis=1)
        np.testing.assert_array_equal(mine["0.1"].values, shown(cumulative[:, 4], stream))
        np.testing.assert_array_equal(
            mine["+Inf"].values, shown(stream.pods.requests[index], stream)
        )


def test_version_level_sum_and_count(run: SimulatedRun) -> None:
    for template, values in ((VERSION_SUM, "latency_sum"), (VERSION_COUNT, "requests")):
        shape = recognise(template)
        assert not shape.per_pod
        for stream in (run.baseline, run.canary):
            (series,) = answer(shape, stream)
            assert series.labels == {}
            np.testing.assert_array_equal(series.values, shown(getattr(stream, values), stream))


def per_pod_policy() -> Policy:
    policy = load_policy(DEFAULT_POLICY)
    counts, histogram, series = policy.metrics
    assert isinstance(counts, CountsMetric) and isinstance(histogram, HistogramMetric)
    assert isinstance(series, SeriesMetric)
    metrics = [
        counts.model_copy(update={"errors": PER_POD["errors"], "total": PER_POD["total"]}),
        histogram.model_copy(update={"buckets": PER_POD["buckets"]}),
        series.model_copy(update={"query": PER_POD["memory"]}),
    ]
    return policy.model_copy(update={"metrics": metrics})


def test_a_per_pod_policy_reads_back_the_version_totals_through_fetch(run: SimulatedRun) -> None:
    policy = per_pod_policy()
    window = fetch(policy, source_for(policy, run), VERSIONS, START + timedelta(minutes=1), END)
    data = {metric.metric.name: metric for metric in window.metrics}
    assert all(metric.error is None for metric in window.metrics)
    for version in ("baseline", "canary"):
        stream = getattr(run, version)
        lost = (stream.missing | stream.nan)[1:]
        counts = getattr(data["error-ratio"], version)
        np.testing.assert_array_equal(counts.totals, np.where(lost, np.nan, stream.requests[1:]))
        np.testing.assert_array_equal(counts.errors, np.where(lost, np.nan, stream.errors[1:]))
        histogram = getattr(data["latency"], version)
        np.testing.assert_array_equal(
            histogram.counts, np.where(lost[:, None], np.nan, stream.buckets[1:])
        )
        memory = getattr(data["memory"], version)  # the mean of the per-pod series
        np.testing.assert_allclose(memory.values, np.where(lost, np.nan, stream.memory[1:]))
    assert run_canarist(policy, run).decision in ("abort", "promote", "inconclusive")


class HistogramWithSums(HistogramMetric):
    """``HistogramMetric`` as it will be, with the optional ``sum`` and ``count`` templates."""

    sum: str | None = None
    count: str | None = None


def test_a_histograms_sum_and_count_are_fed_when_the_metric_has_them(run: SimulatedRun) -> None:
    policy = load_policy(DEFAULT_POLICY)
    histogram = policy.metrics[1]
    assert isinstance(histogram, HistogramMetric)
    fields = {**histogram.model_dump(), "sum": PER_POD["sum"], "count": VERSION_COUNT}
    with_sums = HistogramWithSums(**fields)
    policy = policy.model_copy(update={"metrics": [with_sums]})
    source = source_for(policy, run)
    for template, values, per_pod in (
        (PER_POD["sum"], "latency_sum", True),
        (VERSION_COUNT, "requests", False),
    ):
        promql = PromQLTemplate.parse(template).render(
            selector=VERSIONS.canary, interval=timedelta(minutes=1), args={}
        )
        found = source.query_range(promql, START, END, timedelta(minutes=1))
        stream = run.canary
        if per_pod:
            assert len(found) == len(stream.pods.names)
            total = np.nansum([series.values for series in found], axis=0)
        else:
            (only,) = found
            total = np.nan_to_num(only.values)
        np.testing.assert_allclose(total, np.nan_to_num(shown(getattr(stream, values), stream)))


@pytest.mark.parametrize(
    "template",
    [
        "sum(increase(http_requests_total{ {{ selector }} }[{{ interval }}])) by (pod)",
        "sum by(pod)(increase(http_requests_total{{{ selector }}}[1m]))",
        "sum  by ( le , pod ) ( increase( http_request_duration_seconds_bucket"
        "{ {{ selector }} }[ {{ interval }} ] ) )",
    ],
)
def test_spacing_and_a_postfix_by_are_recognised(template: str) -> None:
    assert recognise(template).per_pod


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("sum(rate(http_requests_total{ {{ selector }} }[{{ interval }}]))", "known counter"),
        (
            "histogram_quantile(0.99, sum by (le) (increase(http_request_duration_seconds_bucket"
            "{ {{ selector }} }[{{ interval }}])))",
            "sum/avg/max/min",
        ),
        ('sum(increase(http_requests_total{ {{ selector }}, path="/x" }[1m]))', "matcher"),
        ("avg by (pod) (increase(http_requests_total{ {{ selector }} }[1m]))", "only sum"),
        (
            "sum(increase(http_request_duration_seconds_bucket{ {{ selector }} }[1m]))",
            "by \\(le\\)",
        ),
        ("sum by (instance) (increase(http_requests_total{ {{ selector }} }[1m]))", "instance"),
        ("sum(increase(http_requests_total{ {{ selector }} }[5m]))", "1-minute"),
        ('avg(process_resident_memory_bytes{ app="x" })', "selector"),
        ("sum(increase(grpc_requests_total{ {{ selector }} }[1m]))", "known counter"),
    ],
)
def test_queries_the_simulator_cannot_answer_are_refused(template: str, reason: str) -> None:
    with pytest.raises(UnansweredQueryError, match=reason):
        recognise(template)


def test_a_field_asking_for_the_wrong_quantity_names_the_metric(run: SimulatedRun) -> None:
    policy = load_policy(DEFAULT_POLICY)
    counts = policy.metrics[0]
    assert isinstance(counts, CountsMetric)
    swapped = counts.model_copy(update={"errors": PER_POD["total"]})
    policy = policy.model_copy(update={"metrics": [swapped]})
    with pytest.raises(UnansweredQueryError, match="metric 'error-ratio' \\(errors\\)"):
        source_for(policy, run)
