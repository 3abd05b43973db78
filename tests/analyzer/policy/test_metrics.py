"""The policy language's newer metric fields: a histogram's ``sum``/``count``, the ``trend``
judge, and how a FAIL one pod explains is decided; each refused with the field to fix."""

from __future__ import annotations

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text
from analyzer.policy.judges import TrendSpec
from analyzer.policy.metrics import HistogramMetric, SeriesMetric

HEAD = "name: p\nstrategy: {type: canary, steps: [{set_weight: 100}]}\n"


def policy(metrics: str, analysis: str = "{}") -> str:
    return f"{HEAD}analysis: {analysis}\nmetrics:\n{metrics}"


LATENCY = """  - name: latency
    kind: histogram
    buckets: sum by (le, pod) (b{ {{ selector }} })
"""


def test_a_histogram_takes_its_sum_and_count_together() -> None:
    both = load_policy_text(
        policy(LATENCY + "    sum: sum(s{ {{ selector }} })\n    count: sum(c{ {{ selector }} })\n")
    )
    metric = both.metrics[0]
    assert isinstance(metric, HistogramMetric)
    assert set(metric.templates()) == {"buckets", "sum", "count"}
    with pytest.raises(PolicyError, match=r"<policy>:\d+: metrics\[0\].*sum and count go together"):
        load_policy_text(policy(LATENCY + "    sum: sum(s{ {{ selector }} })\n"))
    with pytest.raises(PolicyError, match=r"count.*selector"):  # a template like any other
        load_policy_text(policy(LATENCY + "    sum: sum(s{ {{ selector }} })\n    count: sum(c)\n"))


def test_the_trend_judge_has_a_horizon_and_is_a_series_judge() -> None:
    memory = "  - name: memory\n    kind: series\n    query: max by (pod) (m{ {{ selector }} })\n"
    loaded = load_policy_text(policy(memory + "    judge: {type: trend, horizon: 30m}\n"))
    metric = loaded.metrics[0]
    assert isinstance(metric, SeriesMetric) and isinstance(metric.judge, TrendSpec)
    assert metric.judge.horizon.total_seconds() == 1800
    assert isinstance(load_policy_text(policy(memory + "    judge: trend\n")).metrics[0].judge,
                      TrendSpec)  # fmt: skip
    with pytest.raises(PolicyError, match="horizon"):
        load_policy_text(policy(memory + "    judge: {type: trend, horizon: 0s}\n"))


def test_one_pod_explains_is_inconclusive_by_default_or_fail() -> None:
    errors = (
        "  - name: e\n    kind: counts\n"
        "    errors: e{ {{ selector }} }\n    total: t{ {{ selector }} }\n"
    )
    assert load_policy_text(policy(errors)).analysis.one_pod_explains == "inconclusive"
    assert (
        load_policy_text(policy(errors, "{one_pod_explains: fail}")).analysis.one_pod_explains
        == "fail"
    )
    with pytest.raises(PolicyError, match="one_pod_explains"):
        load_policy_text(policy(errors, "{one_pod_explains: ignore}"))
    with pytest.raises(PolicyError, match="pod_label"):
        load_policy_text(policy(errors, "{pod_label: 'kubernetes pod'}"))
