"""The Kayenta-compatible Mann-Whitney judge, checked against hand computation, brute force, scipy
and Kayenta's own reference case."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from analyzer.judges.base import CountsData, HistogramData, JudgeContext, SeriesData
from analyzer.judges.mannwhitney import (
    MannWhitneyJudge,
    clean,
    exact_u_cdf,
    hodges_lehmann,
    mean_ratio,
)
from analyzer.policy.metrics import SeriesMetric
from analyzer.verdict import Judgement, Outcome, Reason

JUDGE = MannWhitneyJudge()
BASELINE = [100.0, 101, 99, 100, 102, 98, 100, 101, 99, 100]


def series_metric(**fields: Any) -> SeriesMetric:
    judge = fields.pop("judge", {})
    return SeriesMetric.model_validate(
        {
            "name": "memory",
            "kind": "series",
            "query": "avg(process_resident_memory_bytes{ {{ selector }} })",
            "judge": {"type": "mann_whitney", **judge},
            **fields,
        }
    )


def series(values: list[float]) -> SeriesData:
    return SeriesData(np.arange(len(values), dtype=np.float64), np.array(values, dtype=np.float64))


def run(
    baseline: list[float], canary: list[float], min_samples: int = 3, **fields: Any
) -> Judgement:
    context = JudgeContext(alpha=0.01, min_samples=min_samples)
    return JUDGE.judge(series(baseline), series(canary), series_metric(**fields), context)


def test_kayenta_reference_case() -> None:
    # Kayenta's MannWhitneySuite: control 1..4, experiment 10..40 at 95% -> 22.5 in [6, 39].
    # By hand: the 16 differences sorted are 6 7 8 9 16 17 18 19 26 27 28 29 36 37 38 39, median
    # (19 + 26) / 2; P(U <= 0) = 1/70 <= 0.025 < P(U <= 1) = 2/70, so k = 1: [D(1), D(16)].
    judgement = run([1, 2, 3, 4], [10, 20, 30, 40], judge={"confidence": 0.95}, tolerance=0.1)
    assert judgement.details["hodges_lehmann"] == 22.5
    assert judgement.details["shift_interval"] == (6.0, 39.0)
    assert judgement.details["interval_coverage"] == pytest.approx(1 - 2 / 70)
    assert judgement.details["method"] == "exact"
    # U = 16 is the most extreme of C(8, 4) = 70 equally likely rank sets: p = 2 * 1/70.
    assert judgement.p_value == pytest.approx(2 / 70)
    assert judgement.threshold == pytest.approx(0.05)
    assert judgement.outcome is Outcome.FAIL
    assert judgement.direction == "high"
    assert judgement.effect == pytest.approx(25 / 2.5 - 1)  # mean ratio 10
    assert judgement.effect_interval == pytest.approx((6 / 2.5, 39 / 2.5))  # / baseline mean
    assert judgement.baseline == {
        "count": 4.0,
        "nan_count": 0.0,
        "outliers_removed": 0.0,
        "mean": 2.5,
        "median": 2.5,
    }


@pytest.mark.parametrize(("m", "n"), [(1, 1), (3, 4), (4, 4), (2, 6)])
def test_exact_null_law_matches_enumeration(m: int, n: int) -> None:
    u_counts = np.zeros(m * n + 1)
    for canary_ranks in itertools.combinations(range(1, m + n + 1), m):
        u_counts[sum(canary_ranks) - m * (m + 1) // 2] += 1
    assert exact_u_cdf(m, n) == pytest.approx(np.cumsum(u_counts) / math.comb(m + n, m))
    assert exact_u_cdf(n, m) == pytest.approx(exact_u_cdf(m, n))


def test_hodges_lehmann_with_ties_matches_brute_force_and_scipy() -> None:
    rng = np.random.default_rng(7)
    canary = rng.integers(0, 10, 30).astype(np.float64) + 1.0
    baseline = rng.integers(0, 10, 25).astype(np.float64)
    shift = hodges_lehmann(canary, baseline, 0.95)
    differences = np.sort(np.subtract.outer(canary, baseline).ravel())
    assert shift.method == "asymptotic"  # ties
    assert shift.estimate == np.median(differences)
    assert shift.lower <= shift.estimate <= shift.upper
    assert shift.lower in differences and shift.upper in differences
    judgement = run(list(baseline), list(canary), judge={"confidence": 0.95})
    expected = stats.mannwhitneyu(canary, baseline, alternative="two-sided", method="asymptotic")
    assert judgement.p_value == pytest.approx(expected.pvalue)


def test_normal_approximation_is_within_one_rank_of_the_exact_interval() -> None:
    rng = np.random.default_rng(3)
    canary, baseline = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 60)
    shift = hodges_lehmann(canary, baseline, 0.98)
    assert shift.method == "asymptotic"  # 50 points or more
    exact_k = int(np.count_nonzero(exact_u_cdf(60, 60) <= 0.01))
    differences = np.sort(np.subtract.outer(canary, baseline).ravel())
    approximate_k = int(np.searchsorted(differences, shift.lower)) + 1
    assert abs(approximate_k - exact_k) <= 1
    assert shift.coverage == pytest.approx(0.98, abs=0.002)


def test_identical_samples_pass() -> None:
    judgement = run(BASELINE, list(reversed(BASELINE)))
    assert judgement.outcome is Outcome.PASS
    assert "identical" in judgement.reason
    assert judgement.details["regression_detected"] is False


def test_all_zeros_and_one_repeated_value_pass() -> None:
    assert run([0.0] * 6, [0.0] * 6).outcome is Outcome.PASS
    judgement = run([5.0] * 6, [5.0] * 9)  # different sizes, one value: nothing to rank
    assert judgement.outcome is Outcome.PASS
    assert judgement.reason == "every canary and baseline value is 5"
    assert judgement.effect == 0.0


@pytest.mark.parametrize(
    ("baseline", "canary", "side"),
    [([], BASELINE, "baseline"), (BASELINE, [], "canary"), (BASELINE, [math.nan] * 5, "canary")],
)
def test_an_empty_side_is_no_data(baseline: list[float], canary: list[float], side: str) -> None:
    judgement = run(baseline, canary)
    assert judgement.outcome is Outcome.INCONCLUSIVE
    assert judgement.reason_code is Reason.NO_DATA
    assert f"no {side} data" in judgement.reason


def test_too_few_samples_after_cleaning() -> None:
    judgement = run(BASELINE, [200.0, 201.0, math.nan, 202.0], min_samples=4)
    assert judgement.outcome is Outcome.INCONCLUSIVE
    assert judgement.reason_code is Reason.TOO_FEW_SAMPLES
    assert judgement.canary["count"] == 3.0
    assert judgement.canary["nan_count"] == 1.0


def test_nan_strategies() -> None:
    canary = [95.0, 96, 94, 95] + [math.nan] * 8
    removed = run(BASELINE, canary, direction="either", tolerance=0.1)
    assert removed.outcome is Outcome.PASS  # 5% lower, within the allowance
    assert removed.canary["count"] == 4.0
    assert removed.canary["nan_count"] == 8.0
    # Replaced by 0, eight intervals without data read as a collapse of the metric.
    replaced = run(
        BASELINE, canary, direction="either", tolerance=0.1, judge={"nan_strategy": "replace"}
    )
    assert replaced.canary["count"] == 12.0
    assert replaced.canary["mean"] == pytest.approx(380 / 12)
    assert replaced.outcome is Outcome.FAIL
    assert replaced.direction == "low"


def test_significance_alone_is_not_enough() -> None:
    # Kayenta needs the interval to exclude 0 too. Ties at 100 keep the upper end of the
    # Hodges-Lehmann interval at 0 while eight zeros make the rank test significant.
    canary = [100.0, 101, 99, 100] + [math.nan] * 8
    judgement = run(BASELINE, canary, direction="either", judge={"nan_strategy": "replace"})
    assert judgement.p_value is not None and judgement.p_value < 0.02
    assert judgement.details["shift_interval"][1] == 0.0
    assert judgement.outcome is Outcome.PASS
    assert judgement.direction is None
    assert "includes 0" in judgement.reason


def test_clean_removes_tukey_outliers_with_the_policy_factor() -> None:
    values = np.array([1.0, 2, 3, 4, 5, 100])
    # Weibull (R type 6) quartiles of 1..5,100: Q1 = 1.75, Q3 = 28.75: wide, so factor 3 keeps 100.
    assert clean(values, "remove", "remove_iqr", 3.0).outliers_removed == 0
    tight = np.array([10.0, 11, 12, 10, 11, 12, 10, 11, 1000])
    cleaned = clean(tight, "remove", "remove_iqr", 3.0)
    assert cleaned.outliers_removed == 1
    assert 1000.0 not in cleaned.values
    assert clean(tight, "remove", "keep", 3.0).outliers_removed == 0


def test_outlier_removal_changes_the_decision() -> None:
    # Every canary point is ~5% above the baseline (significant, within a 10% tolerance), but one
    # spike drags the canary mean to almost twice the baseline's.
    canary = [105.0, 106, 104, 105, 107, 103, 105, 106, 104, 1000]
    kept = run(BASELINE, canary, tolerance=0.1)
    assert kept.outcome is Outcome.FAIL
    assert kept.details["mean_ratio"] == pytest.approx(194.5 / 100)
    removed = run(BASELINE, canary, tolerance=0.1, judge={"outliers": "remove_iqr"})
    assert removed.canary["outliers_removed"] == 1.0
    assert removed.outcome is Outcome.PASS
    assert removed.reason_code is Reason.WITHIN_TOLERANCE
    assert removed.direction == "high"
    assert removed.effect == pytest.approx(105 / 100 - 1)


@pytest.mark.parametrize(
    ("direction", "factor", "outcome"),
    [
        ("increase_is_bad", 1.5, Outcome.FAIL),
        ("increase_is_bad", 0.5, Outcome.PASS),
        ("decrease_is_bad", 1.5, Outcome.PASS),
        ("decrease_is_bad", 0.5, Outcome.FAIL),
        ("either", 1.5, Outcome.FAIL),
        ("either", 0.5, Outcome.FAIL),
    ],
)
def test_direction_decides_which_side_fails(
    direction: str, factor: float, outcome: Outcome
) -> None:
    canary = [value * factor for value in BASELINE]
    judgement = run(BASELINE, canary, direction=direction, tolerance=0.2)
    assert judgement.outcome is outcome
    assert judgement.direction == ("high" if factor > 1 else "low")
    assert judgement.details["classification"] == ("High" if factor > 1 else "Low")
    assert judgement.details["regression_detected"] is (outcome is Outcome.FAIL)


def test_allowed_decrease_is_the_inverse_of_the_allowed_increase() -> None:
    # 1 / 1.25 = 0.8: a canary at 0.85 x is within the allowance, at 0.75 x beyond it.
    within = run(BASELINE, [v * 0.85 for v in BASELINE], direction="either", tolerance=0.25)
    assert within.outcome is Outcome.PASS
    assert within.reason_code is Reason.WITHIN_TOLERANCE
    assert within.details["allowed_decrease"] == pytest.approx(0.8)
    beyond = run(BASELINE, [v * 0.75 for v in BASELINE], direction="either", tolerance=0.25)
    assert beyond.outcome is Outcome.FAIL
    assert "-20.0%" in beyond.reason


def test_overlapping_samples_are_not_significant() -> None:
    canary = [100.5, 99.5, 101, 100, 98.5, 102, 100, 99, 101.5, 100]
    judgement = run(BASELINE, canary)
    assert judgement.outcome is Outcome.PASS
    assert judgement.reason_code is Reason.EVIDENCE
    assert judgement.direction is None
    assert judgement.p_value is not None and judgement.p_value >= 0.02
    assert judgement.reason.startswith("no significant difference")


def test_a_rise_from_a_zero_baseline_is_unbounded() -> None:
    judgement = run([0.0] * 8, [0.0, 0.02, 0.03, 0.01, 0.04, 0.02, 0.05, 0.03])
    assert mean_ratio(0.025, 0.0) == math.inf
    assert judgement.outcome is Outcome.FAIL
    assert judgement.effect is None and judgement.effect_interval is None
    assert "0.025 from a zero baseline" in judgement.reason


def test_counts_are_judged_as_per_interval_error_ratios() -> None:
    metric = series_metric(name="error-ratio")
    baseline = CountsData(
        np.arange(7.0), np.array([1.0, 2, 1, 0, 1, 2, 0]), np.array([100.0] * 6 + [0.0])
    )
    canary = CountsData(
        np.arange(7.0), np.array([9.0, 11, 10, 12, 8, 10, 9]), np.array([100.0] * 7)
    )
    judgement = JUDGE.judge(baseline, canary, metric, JudgeContext(alpha=0.01, min_samples=3))
    assert judgement.baseline["count"] == 6.0  # the interval without requests is NaN, removed
    assert judgement.baseline["mean"] == pytest.approx(7 / 600)
    assert judgement.outcome is Outcome.FAIL


def test_histograms_and_other_judges_are_refused() -> None:
    histogram = HistogramData(np.zeros(1), np.array([np.inf]), np.ones((1, 1)))
    context = JudgeContext(alpha=0.01, min_samples=1)
    with pytest.raises(TypeError, match="histogram"):
        JUDGE.judge(histogram, histogram, series_metric(), context)
    threshold_metric = SeriesMetric.model_validate(
        {
            "name": "m",
            "kind": "series",
            "query": "x{ {{ selector }} }",
            "judge": {"type": "threshold", "max": 1},
        }
    )
    with pytest.raises(TypeError, match="mann_whitney"):
        JUDGE.judge(series(BASELINE), series(BASELINE), threshold_metric, context)
