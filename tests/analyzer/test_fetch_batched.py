"""analysis.fetch asks all of a look's queries at once, and the verdicts stay what one query per
template gave: the default policy over a real Prometheus holding two services' realistic series.

The reference is the same analysis through ``OneQueryEach``, a source that only has
``query_range``: the analyzer then asks each rendered query alone, as it always did.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analyzer.analysis import Versions, analyze, fetch
from analyzer.backtest import backtest
from analyzer.judges.base import CountsData
from analyzer.policy import load_policy
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.base import Series
from analyzer.sources.incremental import IncrementalSource
from analyzer.sources.prometheus import PrometheusSource
from analyzer.verdict import Outcome
from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.analyzer.counting_prometheus import CountingPrometheus
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

POLICY = load_policy(Path(__file__).parents[2] / "policies" / "default-canary.yaml")
MINUTE = timedelta(minutes=1)
MINUTES = 30
TEMPLATES = sum(len(metric.templates()) for metric in POLICY.metrics)


@dataclass
class OneQueryEach:
    """Only query_range: the analyzer asks it once per rendered query (the reference)."""

    source: PrometheusSource
    calls: int = 0

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        self.calls += 1
        return self.source.query_range(promql, start, end, step)


@dataclass(frozen=True)
class History:
    url: str
    start: datetime
    healthy: Versions
    bad: Versions


def versions(app: str, shift: timedelta = timedelta(0)) -> Versions:
    return Versions(
        baseline=Selector.from_labels({"app": app, "version": "v1"}),
        canary=Selector.from_labels({"app": app, "version": "v2"}),
        args={},
        baseline_shift=shift,
    )


@pytest.fixture(scope="module")
def history(prometheus_server: ServiceProcess) -> History:
    """Two services for 30 minutes, v1 on 3 pods and v2 on 2: one healthy, one whose v2 has
    4x the errors and is 30% slower."""
    start = math.floor(time.time() / 60) * 60 - 4 * 3600.0
    tag = uuid.uuid4().hex[:6]
    apps = {
        f"healthy-{tag}": Behaviour(),
        f"bad-{tag}": Behaviour(error_ratio=0.04, median_latency=0.104),
    }
    for seed, (app, canary) in enumerate(apps.items()):
        series = http_service(app, "v1", start, MINUTES, Behaviour(), seed=seed, pods=3)
        series += http_service(app, "v2", start, MINUTES, canary, seed=seed + 10, pods=2)
        write_samples(prometheus_server.url, series)
    healthy, bad = apps
    return History(
        prometheus_server.url, datetime.fromtimestamp(start, UTC), versions(healthy), versions(bad)
    )


@pytest.fixture
def counting(history: History) -> Iterator[CountingPrometheus]:
    with CountingPrometheus(history.url, timeout=10) as source:
        yield source


@pytest.fixture
def reference(history: History) -> Iterator[OneQueryEach]:
    with PrometheusSource(history.url, timeout=10) as source:
        yield OneQueryEach(source)


@pytest.mark.parametrize("which", ["healthy", "bad"])
def test_every_look_is_one_request_with_the_verdict_of_one_query_per_template(
    history: History, counting: CountingPrometheus, reference: OneQueryEach, which: str
) -> None:
    chosen = getattr(history, which)
    begin = history.start + 2 * MINUTE
    outcomes = set()
    for minute in (4, 8, 15, 22, 30):
        end = history.start + minute * MINUTE
        counting.requests, reference.calls = 0, 0

        verdict = analyze(POLICY, counting, chosen, begin, end, final=False)

        assert counting.requests == 1, f"minute {minute}"
        expected = analyze(POLICY, reference, chosen, begin, end, final=False)
        assert reference.calls == 2 * TEMPLATES == 12
        assert verdict == expected, f"minute {minute}"
        outcomes.add(verdict.outcome)
    assert (Outcome.FAIL in outcomes) == (which == "bad"), outcomes


def test_a_shifted_baseline_is_a_second_request(
    history: History, counting: CountingPrometheus, reference: OneQueryEach
) -> None:
    shifted = versions(history.healthy.canary.matchers[0].value, shift=10 * MINUTE)
    begin, end = history.start + 14 * MINUTE, history.start + 30 * MINUTE

    verdict = analyze(POLICY, counting, shifted, begin, end, final=True)

    assert counting.requests == 2
    assert verdict == analyze(POLICY, reference, shifted, begin, end, final=True)
    assert verdict.baseline_shift == 600.0


def test_a_backtest_decides_as_before_from_one_request(
    history: History, counting: CountingPrometheus, reference: OneQueryEach
) -> None:
    end = history.start + MINUTES * MINUTE
    result = backtest(POLICY, counting, history.bad, history.start, end)
    assert counting.requests == 1
    expected = backtest(POLICY, reference, history.bad, history.start, end)
    assert result == expected and result.decision == "abort"


def test_incremental_looks_ask_one_request_of_a_few_points_with_the_same_verdicts(
    history: History, counting: CountingPrometheus, reference: OneQueryEach
) -> None:
    incremental = IncrementalSource(counting)
    begin, points_full = history.start + 2 * MINUTE, 0
    for minute in range(4, MINUTES + 1):
        end = history.start + minute * MINUTE
        requests_before = counting.requests
        verdict = analyze(POLICY, incremental, history.bad, begin, end, final=False)
        assert counting.requests == requests_before + 1
        assert verdict == analyze(POLICY, reference, history.bad, begin, end, final=False)
        points_full += (minute - 2) * 2 * TEMPLATES  # the look's instants, every query
    stats = incremental.stats()
    looks = MINUTES - 3
    assert stats.requests == looks
    # 2 instants at the first look, 3 at the second, then the last 2 minutes again and 1 new
    assert stats.points == (2 + 3 + 4 * (looks - 2)) * 2 * TEMPLATES
    assert stats.points * 3 < points_full  # 1,260 points instead of 4,860; 48 instead of 336


def test_a_broken_query_fails_only_its_metric(
    history: History, counting: CountingPrometheus, reference: OneQueryEach
) -> None:
    memory = POLICY.metrics[2].model_copy(update={"query": "max by (pod) (process_resident_"})
    policy = POLICY.model_copy(update={"metrics": [*POLICY.metrics[:2], memory]})
    begin, end = history.start + 2 * MINUTE, history.start + 20 * MINUTE

    window = fetch(policy, counting, history.bad, begin, end)
    expected = fetch(policy, reference, history.bad, begin, end)

    assert [metric.error is None for metric in window.metrics] == [True, True, False]
    assert window.metrics[2].error == expected.metrics[2].error
    assert window.metrics[2].temporary is False and "parse error" in str(window.metrics[2].error)
    errors, expected_errors = window.metrics[0], expected.metrics[0]
    assert isinstance(errors.canary, CountsData) and isinstance(expected_errors.canary, CountsData)
    assert np.array_equal(errors.canary.totals, expected_errors.canary.totals)
    assert set(errors.canary_pods) == set(expected_errors.canary_pods) and errors.canary_pods
    assert analyze(policy, counting, history.bad, begin, end) == analyze(
        policy, reference, history.bad, begin, end
    )


def test_an_outage_is_a_temporary_error_of_every_metric(history: History) -> None:
    begin, end = history.start + 2 * MINUTE, history.start + 20 * MINUTE
    with CountingPrometheus(f"http://{HOST}:{free_port()}", timeout=2) as closed:
        window = fetch(POLICY, closed, history.bad, begin, end)
    assert closed.requests == 1
    assert all(metric.error and metric.temporary for metric in window.metrics)
    for metric, window_of in zip(POLICY.metrics, window.metrics, strict=True):
        first = PromQLTemplate.parse(next(iter(metric.templates().values())))
        rendered = first.render(selector=history.bad.baseline, interval=MINUTE)
        assert str(window_of.error).endswith(f"query: {rendered}")  # each names its own query
