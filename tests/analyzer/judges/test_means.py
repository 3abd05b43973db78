"""The histogram judge's mean row (``_sum``/``_count``): power where Prometheus' default buckets
have none, calibration on healthy canaries, and what it reports."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from analyzer.judges.base import HistogramData, JudgeContext
from analyzer.judges.means import CV2_CEILING, CV2_FLOOR, latency_cv2, mean_row
from analyzer.judges.sequential import SequentialHistogramJudge
from analyzer.policy.metrics import HistogramMetric
from analyzer.verdict import Outcome

BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, np.inf])
SIGMA = 0.5  # lognormal shape: p99 about 3.2 times the median
JUDGE = SequentialHistogramJudge()
CONTEXT = JudgeContext(alpha=0.0035, min_samples=5)  # the default policy's latency share
METRIC = HistogramMetric.model_validate(
    {"name": "latency", "kind": "histogram", "buckets": "sum by (le) (b)", "sum": "sum(s)",
     "count": "sum(c)", "tolerance": 0.05}
)  # fmt: skip


def version(
    rng: np.random.Generator, requests: float, pods: int, scale: float, minutes: int = 30
) -> HistogramData:
    """Buckets, latency sums and counts of one version: median 80 ms times ``scale``, each pod
    2% apart, each pod-minute jittered 2% (what real services show), Poisson traffic."""
    counts = np.zeros((minutes, BOUNDS.size))
    sums, observed = np.zeros(minutes), np.zeros(minutes)
    factors = np.exp(rng.normal(0, 0.02, pods))
    for minute in range(minutes):
        for factor in factors:
            median = 0.08 * scale * factor * math.exp(rng.normal(0, 0.02))
            n = rng.poisson(requests / pods)
            cdf = ndtr((np.log(BOUNDS[:-1]) - math.log(median)) / SIGMA)
            counts[minute] += rng.multinomial(n, np.diff(np.r_[0.0, cdf, 1.0]))
            mean = median * math.exp(SIGMA**2 / 2)
            spread = mean * math.sqrt(math.expm1(SIGMA**2))
            sums[minute] += max(0.0, rng.normal(n * mean, spread * math.sqrt(n)))
            observed[minute] += n
    stamps = np.arange(minutes) * 60.0
    return HistogramData(stamps, BOUNDS, counts, sums, observed)


def pair(
    rng: np.random.Generator, canary_requests: float, slower: float
) -> tuple[HistogramData, HistogramData]:
    """A 10% canary on 2 pods beside a baseline on 18, the canary ``slower`` by that share."""
    return (
        version(rng, 9 * canary_requests, 18, 1.0),
        version(rng, canary_requests, 2, 1.0 + slower),
    )


def first_fail(baseline: HistogramData, canary: HistogramData) -> int | None:
    for looks in range(1, baseline.timestamps.size + 1):
        head = [
            HistogramData(
                d.timestamps[:looks], d.upper_bounds, d.counts[:looks],
                None if d.sums is None else d.sums[:looks],
                None if d.observations is None else d.observations[:looks],
            )
            for d in (baseline, canary)
        ]  # fmt: skip
        if JUDGE.judge(head[0], head[1], METRIC, CONTEXT).outcome is Outcome.FAIL:
            return looks
    return None


def without_sums(data: HistogramData) -> HistogramData:
    return HistogramData(data.timestamps, data.upper_bounds, data.counts)


def test_a_ten_percent_slowdown_between_default_buckets_is_caught_by_the_mean() -> None:
    rng = np.random.default_rng(3)
    runs = [pair(rng, 1000, 0.10) for _ in range(12)]
    with_means = [first_fail(*run) for run in runs]
    buckets_only = [first_fail(*(without_sums(data) for data in run)) for run in runs]
    assert sum(at is not None for at in with_means) >= 11
    assert float(np.median([at for at in with_means if at is not None])) <= 12
    assert sum(at is not None for at in buckets_only) < sum(at is not None for at in with_means)


def test_healthy_canaries_and_slowdowns_within_tolerance_do_not_fail() -> None:
    rng = np.random.default_rng(4)
    healthy = [first_fail(*pair(rng, 1000, 0.0)) for _ in range(40)]
    tolerable = [first_fail(*pair(rng, 1000, 0.02)) for _ in range(40)]
    assert healthy.count(None) == 40
    assert tolerable.count(None) >= 39


def test_the_mean_is_reported_in_milliseconds_with_its_interval() -> None:
    rng = np.random.default_rng(5)
    baseline, canary = pair(rng, 10_000, 0.25)
    judgement = JUDGE.judge(baseline, canary, METRIC, CONTEXT)
    assert judgement.outcome is Outcome.FAIL
    assert judgement.reason.startswith("latency mean +") and " ms vs baseline " in judgement.reason
    assert judgement.details["tested"] == "mean"
    assert judgement.effect is not None and 0.18 < judgement.effect < 0.32
    low, high = judgement.effect_interval or (math.nan, math.nan)
    assert low < judgement.effect < high
    assert judgement.canary["mean"] > judgement.baseline["mean"]


def test_without_sums_or_with_an_interval_missing_its_sum_the_buckets_decide_alone() -> None:
    rng = np.random.default_rng(6)
    baseline, canary = pair(rng, 1000, 0.0)
    joint = np.ones(baseline.timestamps.size, dtype=bool)
    assert mean_row(without_sums(baseline), canary, joint) is None
    assert canary.sums is not None
    gap = canary.sums.copy()
    gap[3] = np.nan
    holed = HistogramData(canary.timestamps, BOUNDS, canary.counts, gap, canary.observations)
    assert mean_row(baseline, holed, joint) is None


def test_the_latency_spread_read_from_the_buckets_is_near_the_truth_and_bounded() -> None:
    rng = np.random.default_rng(7)
    baseline = version(rng, 10_000, 18, 1.0)
    assert baseline.sums is not None and baseline.observations is not None
    mean = float(baseline.sums.sum() / baseline.observations.sum())
    truth = math.expm1(SIGMA**2)  # 0.28 for a lognormal of shape 0.5
    assert truth / 1.5 < latency_cv2(baseline, mean) < truth * 1.5
    for absurd in (mean * 10, mean / 100):  # a mean the buckets cannot have: bounded, not wild
        assert CV2_FLOOR <= latency_cv2(baseline, absurd) <= CV2_CEILING
