"""Histograms with different bucket layouts are compared on the boundaries both report."""

from __future__ import annotations

import numpy as np

from analyzer.judges.base import HistogramData, JudgeContext, on_common_buckets
from analyzer.judges.sequential import SequentialJudge
from analyzer.policy import load_policy_text
from analyzer.verdict import Outcome, Reason

INF = float("inf")
POLICY = load_policy_text(
    """
name: h
metrics:
  - name: latency
    kind: histogram
    buckets: sum by (le) (rate(x_bucket{ {{ selector }} }[{{ interval }}]))
strategy: {type: canary, steps: [{set_weight: 100}]}
"""
)


def histogram(bounds: list[float], rows: list[list[float]]) -> HistogramData:
    counts = np.array(rows, dtype=np.float64).reshape(len(rows), len(bounds))
    return HistogramData(np.arange(len(rows), dtype=np.float64), np.array(bounds), counts)


def test_finer_buckets_merge_into_the_shared_ones() -> None:
    coarse = histogram([0.1, 1.0, INF], [[5, 3, 1]])
    fine = histogram([0.05, 0.1, 0.5, 1.0, INF], [[2, 2, 1, 1, 1]])
    left, right = on_common_buckets(coarse, fine)
    assert list(left.upper_bounds) == list(right.upper_bounds) == [0.1, 1.0, INF]
    assert right.counts.tolist() == [[4, 2, 1]]
    assert left.counts.tolist() == [[5, 3, 1]]


def test_a_version_without_buckets_is_no_data_not_an_error() -> None:
    baseline = histogram([0.1, 1.0, INF], [[50, 30, 1]] * 6)
    canary = HistogramData(np.arange(6.0), np.zeros(0), np.zeros((6, 0)))
    judgement = SequentialJudge().judge(baseline, canary, POLICY.metrics[0], JudgeContext(0.01, 3))
    assert judgement.outcome is Outcome.INCONCLUSIVE
    assert judgement.reason_code is Reason.NO_DATA
    assert "canary" in judgement.reason


def test_a_slower_canary_with_a_different_layout_still_fails() -> None:
    baseline = histogram([0.1, 0.5, 1.0, INF], [[900, 90, 9, 1]] * 20)
    canary = histogram([0.1, 0.25, 0.5, 1.0, INF], [[300, 300, 300, 90, 10]] * 20)
    judgement = SequentialJudge().judge(baseline, canary, POLICY.metrics[0], JudgeContext(0.01, 3))
    assert judgement.outcome is Outcome.FAIL
