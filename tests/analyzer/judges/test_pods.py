"""One slow pod is not the version: a FAIL one canary pod explains, told apart from a FAIL of the
code, on its own and through one analysis pass of queries written ``by (pod)``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analyzer.analysis import Versions, fetch, judge_upto
from analyzer.judges.base import CountsData, HistogramData, JudgeContext, SeriesData
from analyzer.judges.pods import combined, explained, one_pod_explains
from analyzer.judges.sequential import SequentialCountsJudge
from analyzer.policy import load_policy_text
from analyzer.policy.metrics import CountsMetric
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.base import Series
from analyzer.sources.memory import MemorySource
from analyzer.verdict import Outcome, Reason

JUDGE = SequentialCountsJudge()
CONTEXT = JudgeContext(alpha=0.005, min_samples=3)
METRIC = CountsMetric.model_validate(
    {"name": "errors", "kind": "counts", "errors": "sum(e)", "total": "sum(t)", "tolerance": 0.25}
)
MINUTES = 20
STAMPS = np.arange(MINUTES) * 60.0


def pod(requests: float, ratio: float, rate: float = 0.01) -> CountsData:
    """A pod's errors exactly at ``rate * ratio`` of its requests every minute."""
    totals = np.full(MINUTES, requests)
    return CountsData(STAMPS, totals * rate * ratio, totals)


BASELINE = pod(18_000, 1.0)


def test_one_bad_canary_pod_explains_the_fail_and_is_named() -> None:
    pods = {"canary-a": pod(1000, 3.0), "canary-b": pod(1000, 1.0)}
    assert JUDGE.judge(BASELINE, combined(list(pods.values())), METRIC, CONTEXT).outcome is (
        Outcome.FAIL
    )
    found = one_pod_explains(JUDGE, BASELINE, pods, METRIC, CONTEXT)
    assert found is not None and found.pod == "canary-a"
    assert found.alone.outcome is Outcome.FAIL and found.others.outcome is not Outcome.FAIL


def test_a_regression_on_every_pod_is_the_version_and_a_lone_pod_proves_nothing() -> None:
    everywhere = {"canary-a": pod(1000, 3.0), "canary-b": pod(1000, 3.0)}
    assert one_pod_explains(JUDGE, BASELINE, everywhere, METRIC, CONTEXT) is None
    alone = {"canary-a": pod(2000, 3.0)}
    assert one_pod_explains(JUDGE, BASELINE, alone, METRIC, CONTEXT) is None
    # the others do not fail (too little data), but their estimate is as bad: the version
    as_bad = {"canary-a": pod(1000, 4.0), "canary-b": pod(40, 3.0)}
    assert JUDGE.judge(BASELINE, as_bad["canary-b"], METRIC, CONTEXT).outcome is not Outcome.FAIL
    assert one_pod_explains(JUDGE, BASELINE, as_bad, METRIC, CONTEXT) is None
    # an estimate a little beyond the tolerance with no evidence against it (e-value < 1): the
    # lone pod explains it; the same estimate on a pod with evidence of it does not
    slightly = {"canary-a": pod(1000, 4.0), "canary-b": pod(1000, 1.3)}
    found = one_pod_explains(JUDGE, BASELINE, slightly, METRIC, CONTEXT)
    assert found is not None and found.pod == "canary-a"
    assert found.others.e_value is not None and found.others.e_value < 1
    evident = {"canary-a": pod(1000, 4.0), "canary-b": pod(1000, 1.5)}
    assert JUDGE.judge(BASELINE, evident["canary-b"], METRIC, CONTEXT).e_value > 1
    assert one_pod_explains(JUDGE, BASELINE, evident, METRIC, CONTEXT) is None


def test_explained_holds_the_metric_or_keeps_the_fail_as_the_policy_says() -> None:
    pods = {"canary-a": pod(1000, 3.0), "canary-b": pod(1000, 1.0)}
    failed = JUDGE.judge(BASELINE, combined(list(pods.values())), METRIC, CONTEXT)
    found = one_pod_explains(JUDGE, BASELINE, pods, METRIC, CONTEXT)
    assert found is not None
    held = explained(failed, found, "inconclusive")
    assert (held.outcome, held.reason_code) == (Outcome.INCONCLUSIVE, Reason.ONE_POD)
    assert held.reason.startswith("pod canary-a alone explains it")
    assert held.details["regression_detected"] is False  # never counts as a PASS later
    kept = explained(failed, found, "fail")
    assert kept.outcome is Outcome.FAIL and "pod canary-a alone explains it" in kept.reason


def test_pods_combine_as_one_version() -> None:
    a, b = pod(1000, 1.0), pod(500, 2.0)
    summed = combined([a, b])
    assert isinstance(summed, CountsData)
    assert np.allclose(summed.totals, 1500) and np.allclose(summed.errors, 10 + 10)
    bounds = np.array([0.1, np.inf])
    one = HistogramData(STAMPS[:2], bounds, np.array([[3.0, 1.0], [np.nan, np.nan]]),
                        np.array([0.5, np.nan]), np.array([4.0, np.nan]))  # fmt: skip
    two = HistogramData(STAMPS[:2], bounds, np.array([[1.0, 1.0], [2.0, 0.0]]),
                        np.array([0.3, 0.1]), np.array([2.0, 2.0]))  # fmt: skip
    merged = combined([one, two])
    assert isinstance(merged, HistogramData) and merged.sums is not None
    assert np.allclose(merged.counts, [[4.0, 2.0], [2.0, 0.0]])  # a pod not scraped adds nothing
    assert np.allclose(merged.sums, [0.8, 0.1])
    series = combined([SeriesData(STAMPS[:2], np.array([1.0, np.nan])),
                       SeriesData(STAMPS[:2], np.array([3.0, np.nan]))])  # fmt: skip
    assert isinstance(series, SeriesData)
    assert series.values[0] == 2.0 and np.isnan(series.values[1])


# -- through an analysis pass ----------------------------------------------------------------

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
POLICY_TEXT = """
name: pods
analysis: {{interval: 1m, min_samples: 3, one_pod_explains: {decide}}}
metrics:
  - name: errors
    kind: counts
    errors: sum by (pod) (e{{ {{{{ selector }}}} }})
    total: sum by (pod) (t{{ {{{{ selector }}}} }})
    tolerance: 0.25
    critical: true
strategy: {{type: canary, steps: [{{set_weight: 100}}]}}
"""
VERSIONS = Versions(Selector.parse('version="v1"'), Selector.parse('version="v2"'), {})


def source(policy_text: str, canary_ratios: dict[str, float]) -> MemorySource:
    """Prometheus answering ``by (pod)``: 18 baseline pods, the canary's as given."""
    policy = load_policy_text(policy_text)
    stamps = START.timestamp() + 60.0 * np.arange(1, MINUTES + 1)
    memory = MemorySource()
    for version, pods in (("v1", {f"base-{i}": 1.0 for i in range(18)}), ("v2", canary_ratios)):
        selector = Selector.parse(f'version="{version}"')
        for field, per_minute in (("errors", 10.0), ("total", 1000.0)):
            template = getattr(policy.metrics[0], field)
            promql = PromQLTemplate.parse(template).render(
                selector=selector, interval=timedelta(minutes=1), args={}
            )
            memory.set(
                promql,
                [
                    Series({"pod": name}, stamps, np.full(MINUTES, per_minute * ratio))
                    if field == "errors"
                    else Series({"pod": name}, stamps, np.full(MINUTES, per_minute))
                    for name, ratio in pods.items()
                ],
            )
    return memory


@pytest.mark.parametrize(
    ("decide", "outcome"), [("inconclusive", "inconclusive"), ("fail", "fail")]
)
def test_an_analysis_of_by_pod_queries_says_which_pod_and_decides_as_the_policy_says(
    decide: str, outcome: str
) -> None:
    text = POLICY_TEXT.format(decide=decide)
    policy = load_policy_text(text)
    end = START + timedelta(minutes=MINUTES)
    window = fetch(policy, source(text, {"canary-a": 3.0, "canary-b": 1.0}), VERSIONS, START, end)
    assert set(window.metrics[0].canary_pods) == {"canary-a", "canary-b"}
    verdict = judge_upto(policy, window)
    (errors,) = verdict.metrics
    assert errors.judgement.outcome.value == outcome
    assert "pod canary-a alone explains it" in errors.judgement.reason
    if decide == "inconclusive":
        assert verdict.outcome is Outcome.INCONCLUSIVE


def test_a_regression_on_both_pods_fails_the_analysis() -> None:
    text = POLICY_TEXT.format(decide="inconclusive")
    policy = load_policy_text(text)
    end = START + timedelta(minutes=MINUTES)
    window = fetch(policy, source(text, {"canary-a": 3.0, "canary-b": 3.0}), VERSIONS, START, end)
    verdict = judge_upto(policy, window)
    assert verdict.outcome is Outcome.FAIL
    assert "explains" not in verdict.metrics[0].judgement.reason
