"""PrometheusSource.query_many against a real Prometheus: one request answers every query as
asking each alone would, and a failure is only its own query's.

The service's series are written once (tests/workloads.py, two versions on several pods); every
answer is compared with ``query_range`` of the same query, label set by label set, value by value.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analyzer.errors import QueryError, TemporarySourceError
from analyzer.policy import load_policy
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.base import QueryResult, Series
from analyzer.sources.prometheus import POINTS_PER_REQUEST, PrometheusSource
from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.analyzer.counting_prometheus import CountingPrometheus
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

POLICY = load_policy(Path(__file__).parents[3] / "policies" / "default-canary.yaml")
MINUTE = timedelta(minutes=1)
MINUTES = 20


def as_dict(series: Sequence[Series]) -> dict[tuple[tuple[str, str], ...], list[list[float]]]:
    """An answer keyed by label set: the points as [stamp, value] pairs (exact, order kept)."""
    found = {
        tuple(sorted(one.labels.items())): np.column_stack([one.timestamps, one.values]).tolist()
        for one in series
    }
    assert len(found) == len(series), "two series of one answer share a label set"
    return found


def answered(result: QueryResult) -> list[Series]:
    assert not isinstance(result, Exception), result
    return result


@dataclass(frozen=True)
class Service:
    app: str
    start: datetime
    url: str


@pytest.fixture(scope="module")
def service(prometheus_server: ServiceProcess) -> Service:
    """An app on the default policy's metric names, v1 on 3 pods and v2 on 2, for 20 minutes."""
    app = f"many-{uuid.uuid4().hex[:8]}"
    start = math.floor(time.time() / 60) * 60 - 3 * 3600.0
    series = http_service(app, "v1", start, MINUTES, Behaviour(), seed=1, pods=3)
    series += http_service(app, "v2", start, MINUTES, Behaviour(error_ratio=0.03), seed=2, pods=2)
    write_samples(prometheus_server.url, series)
    return Service(app, datetime.fromtimestamp(start, UTC), prometheus_server.url)


@pytest.fixture
def source(service: Service) -> Iterator[CountingPrometheus]:
    with CountingPrometheus(service.url, timeout=10) as prometheus:
        yield prometheus


def policy_queries(app: str) -> list[str]:
    """The default policy's 6 templates rendered for both versions: 12 queries."""
    queries = []
    for version in ("v1", "v2"):
        selector = Selector.from_labels({"app": app, "version": version})
        for metric in POLICY.metrics:
            for text in metric.templates().values():
                template = PromQLTemplate.parse(text)
                queries.append(template.render(selector=selector, interval=MINUTE))
    return queries


def test_one_request_answers_the_default_policy_as_one_query_each_would(
    source: CountingPrometheus, service: Service
) -> None:
    app = service.app
    raw = f'http_requests_total{{app="{app}",version="v2"}}'  # keeps __name__
    queries = [*policy_queries(app), raw]
    assert len(queries) == 13
    assert any("by (le, pod)" in query for query in queries)
    assert any(query.startswith("max by (pod)") for query in queries)
    start, end = service.start + 2 * MINUTE, service.start + MINUTES * MINUTE

    many = source.query_many(queries, start, end, MINUTE)
    assert source.requests == 1
    alone = [source.query_range(query, start, end, MINUTE) for query in queries]
    assert source.requests == 1 + len(queries)

    assert len(many) == len(queries)
    for query, together, single in zip(queries, many, alone, strict=True):
        assert as_dict(answered(together)) == as_dict(single), query
        assert single, f"the test data answers nothing for {query}"
        assert all("canarist_query" not in one.labels for one in answered(together))
    buckets = answered(many[2])
    assert {"le", "pod"} <= set(buckets[0].labels), "by (le, pod) keeps both labels"
    assert len({one.labels["pod"] for one in buckets}) == 3  # v1's three pods
    assert {one.labels["__name__"] for one in answered(many[-1])} == {"http_requests_total"}
    assert len(answered(many[-1])) == 4  # two pods x codes 200 and 500


def test_a_broken_query_fails_alone_and_scalars_are_answered(
    source: CountingPrometheus, service: Service
) -> None:
    good = policy_queries(service.app)[:2]
    broken = "sum(rate(http_requests_total[1m]"  # a syntax error: Prometheus answers 400
    queries = [good[0], broken, "scalar(vector(7))", "time()", good[1], "vector(1)"]
    start = service.start + 5 * MINUTE
    end = start + 5 * MINUTE

    many = source.query_many(queries, start, end, MINUTE)

    assert isinstance(many[1], QueryError)
    assert "parse error" in str(many[1]) and str(many[1]).endswith(f"query: {broken}")
    for index in (0, 2, 3, 4, 5):
        assert as_dict(answered(many[index])) == as_dict(
            source.query_range(queries[index], start, end, MINUTE)
        ), queries[index]
    [clock] = answered(many[3])  # time() is the instant itself, at each of the 6 instants
    assert clock.labels == {}
    assert clock.values.tolist() == clock.timestamps.tolist() and clock.values.size == 6


def test_a_scalar_among_vectors_gets_its_own_answer(
    source: CountingPrometheus, service: Service
) -> None:
    """label_replace refuses a scalar, so the union fails and each query is asked alone."""
    start = service.start + 5 * MINUTE
    many = source.query_many(["vector(2)", "scalar(vector(3))"], start, start + MINUTE, MINUTE)
    assert [answered(result)[0].values.tolist() for result in many] == [[2.0, 2.0], [3.0, 3.0]]
    assert source.requests == 3  # the refused union, then one request per query


def test_an_outage_is_every_querys_temporary_error() -> None:
    closed = f"http://{HOST}:{free_port()}"
    queries = ["vector(1)", "up", "sum(up)"]
    now = datetime.now(UTC)
    with PrometheusSource(closed, timeout=2) as source:
        many = source.query_many(queries, now - MINUTE, now, MINUTE)
    assert all(isinstance(result, TemporarySourceError) for result in many)
    for query, result in zip(queries, many, strict=True):
        assert closed in str(result) and str(result).endswith(f"query: {query}")


def test_a_query_using_the_union_label_is_asked_alone(
    source: CountingPrometheus, service: Service
) -> None:
    own = 'label_replace(vector(5), "canarist_query", "mine", "", "")'
    queries = ["vector(1)", own, "vector(2)"]
    start = service.start + 5 * MINUTE
    many = source.query_many(queries, start, start, MINUTE)
    assert [answered(result)[0].labels for result in many] == [{}, {"canarist_query": "mine"}, {}]
    assert [answered(result)[0].values.tolist() for result in many] == [[1.0], [5.0], [2.0]]
    assert source.requests == 2  # the union of the two others, and the one alone


def test_a_single_query_is_sent_as_it_is(source: CountingPrometheus) -> None:
    now = datetime.now(UTC)
    [result] = source.query_many(["scalar(vector(4))"], now - MINUTE, now, MINUTE)
    assert answered(result)[0].values.tolist() == [4.0, 4.0]  # no label_replace around a scalar
    assert source.requests == 1


def test_a_long_range_is_chunked_like_query_range(
    source: CountingPrometheus, service: Service
) -> None:
    app = service.app
    queries = [
        f'sum(http_requests_total{{app="{app}",version="v1"}})',
        f'max by (pod) (process_resident_memory_bytes{{app="{app}",version="v2"}})',
    ]
    start, step = service.start + MINUTE, timedelta(milliseconds=100)
    end = start + step * (POINTS_PER_REQUEST + 500)  # inside the 20 minutes of data

    many = source.query_many(queries, start, end, step)
    assert source.requests == 2  # one union, in two chunks
    for query, result in zip(queries, many, strict=True):
        assert as_dict(answered(result)) == as_dict(source.query_range(query, start, end, step))
        assert answered(result)[0].timestamps.size == POINTS_PER_REQUEST + 501  # both chunks
