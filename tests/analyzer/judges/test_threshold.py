"""The threshold judge: absolute bounds on the canary alone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from analyzer.judges.base import CountsData, HistogramData, JudgeContext, SeriesData, empty_series
from analyzer.judges.threshold import ThresholdJudge, canary_value
from analyzer.policy.metrics import CountsMetric, ThresholdMetric
from analyzer.verdict import Judgement, Outcome, Reason

JUDGE = ThresholdJudge()


def threshold_metric(**judge: Any) -> ThresholdMetric:
    return ThresholdMetric.model_validate(
        {
            "name": "p99",
            "kind": "threshold",
            "query": "histogram_quantile(0.99, rate(h_bucket{ {{ selector }} }[1m]))",
            "judge": {"type": "threshold", **judge},
        }
    )


def series(values: list[float], timestamps: list[float] | None = None) -> SeriesData:
    stamps = timestamps if timestamps is not None else [float(i) for i in range(len(values))]
    return SeriesData(np.array(stamps), np.array(values, dtype=np.float64))


def run(canary: SeriesData | CountsData, min_samples: int = 3, **judge: Any) -> Judgement:
    context = JudgeContext(alpha=0.01, min_samples=min_samples)
    return JUDGE.judge(empty_series(), canary, threshold_metric(**judge), context)


def test_max_exceeded_fails_with_value_and_bound() -> None:
    judgement = run(series([0.2, 0.72, 0.3, 0.4, 0.1]), max=0.5)
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason == "canary p99 max 0.72 > max 0.5"
    assert judgement.threshold == 0.5
    assert judgement.direction == "high"
    assert judgement.details["value"] == 0.72
    assert judgement.details["bound"] == 0.5
    assert judgement.canary == {"count": 5.0, "value": 0.72}


def test_within_bounds_passes() -> None:
    judgement = run(series([0.2, 0.72, 0.3, 0.4, 0.1]), max=0.5, min=0.1, aggregate="mean")
    assert judgement.outcome is Outcome.PASS
    assert judgement.details["value"] == pytest.approx(0.344)
    assert judgement.reason == "canary p99 mean 0.344 within max 0.5 and min 0.1"
    assert judgement.details["regression_detected"] is False


def test_min_bound_fails_below() -> None:
    judgement = run(series([0.9, 0.95, 0.4, 0.99]), min=0.5, aggregate="min")
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason == "canary p99 min 0.4 < min 0.5"
    assert judgement.direction == "low"


@pytest.mark.parametrize(
    ("aggregate", "expected"), [("last", 0.3), ("mean", 0.3), ("max", 0.4), ("min", 0.2)]
)
def test_aggregates_ignore_nan_and_last_means_latest(aggregate: str, expected: float) -> None:
    # Out of order on purpose: the latest timestamp (30) holds 0.3; the NaN at 40 is ignored.
    data = series([0.2, 0.3, 0.4, math.nan], timestamps=[10.0, 30.0, 20.0, 40.0])
    value, samples = canary_value(data, aggregate)
    assert value == pytest.approx(expected)
    assert samples == 3


def test_counts_use_the_pooled_error_ratio() -> None:
    counts = CountsData(
        np.arange(4.0), np.array([1.0, 3.0, math.nan, 0.0]), np.array([100.0, 100.0, 50.0, 0.0])
    )
    metric = CountsMetric.model_validate(
        {
            "name": "error-ratio",
            "kind": "counts",
            "errors": "sum(e{ {{ selector }} })",
            "total": "sum(t{ {{ selector }} })",
            "judge": {"type": "threshold", "max": 0.01},
        }
    )
    context = JudgeContext(alpha=0.01, min_samples=2)
    judgement = JUDGE.judge(empty_series(), counts, metric, context)
    # Only the two served intervals with both numbers count: (1 + 3) / (100 + 100).
    assert judgement.details["value"] == pytest.approx(0.02)
    assert judgement.canary["count"] == 2.0
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason == "canary error-ratio 0.02 > max 0.01"


@pytest.mark.parametrize(
    "canary",
    [
        series([]),
        series([math.nan, math.nan]),
        CountsData(np.arange(2.0), np.array([0.0, 0.0]), np.array([0.0, 0.0])),
    ],
)
def test_no_canary_data(canary: SeriesData | CountsData) -> None:
    judgement = run(canary, max=0.5)
    assert judgement.outcome is Outcome.INCONCLUSIVE
    assert judgement.reason_code is Reason.NO_DATA


def test_too_few_samples_unless_the_failure_is_certain() -> None:
    # Fewer than min_samples: a mean or a passing max may still change...
    mean = run(series([0.9, 0.8]), max=0.5, aggregate="mean")
    assert mean.reason_code is Reason.TOO_FEW_SAMPLES
    assert mean.outcome is Outcome.INCONCLUSIVE
    passing_max = run(series([0.1, 0.2]), max=0.5)
    assert passing_max.reason_code is Reason.TOO_FEW_SAMPLES
    # ...but a window's max above max (or min below min) can only stay broken.
    assert run(series([0.1, 0.9]), max=0.5).outcome is Outcome.FAIL
    assert run(series([0.1]), min=0.5, aggregate="min").outcome is Outcome.FAIL
    last = run(series([0.1, 0.9]), max=0.5, aggregate="last")
    assert last.reason_code is Reason.TOO_FEW_SAMPLES


def test_histograms_are_refused() -> None:
    histogram = HistogramData(np.zeros(1), np.array([np.inf]), np.ones((1, 1)))
    with pytest.raises(TypeError, match="histogram"):
        run(histogram, max=1.0)  # type: ignore[arg-type]
