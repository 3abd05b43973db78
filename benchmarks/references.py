"""Two reference deciders, configured the way teams usually configure the tools they imitate.

Both read the same per-minute data Canarist's source serves (the canary's and the baseline's
``increase(...[1m])`` values and memory gauge, with the same scrape gaps), so all the deciders
are compared on identical runs.

Argo-style (an AnalysisTemplate with absolute conditions on the canary alone): every minute after
an ``initialDelay`` of 1m, two measurements of the last minute — the 5xx ratio must be ≤ 1% (twice
the service's nominal 0.5%) and ``histogram_quantile(0.99, …)`` ≤ 0.4 s (about 1.4x the nominal
p99 a dashboard shows, 0.28 s). A metric whose failed measurements exceed ``failureLimit: 3``
aborts the rollout (the 4th failure), as does ``consecutiveErrorLimit: 4`` exceeded. A minute
without a scrape (absent or NaN points) is an Error measurement, as an empty result is in Argo;
a NaN ratio (no requests) fails the condition, as govaluate compares NaN.

Kayenta-style (Spinnaker's canary stage with the NetflixACAJudge): every 10 minutes, over the
cumulative window since ``beginCanaryAnalysisAfterMins: 1``, a Mann-Whitney test (confidence 0.98)
on the per-minute values of each metric — error ratio (critical, weight 50), p99 latency
(``histogram_quantile``, weight 35) and resident memory (weight 15) — with effect-size
allowances equal to the default policy's tolerances (x1.25, x1.05, x1.2). Scoring follows
Kayenta: a failing critical metric scores 0; otherwise the score is the weight of passing metrics
over the weight of metrics with data. An intermediate run below ``marginal`` (75) aborts; the last
run (minute 40) must reach ``pass`` (95). The rank test is ``analyzer.judges.mannwhitney``, which
follows Kayenta's MannWhitneyClassifier (its documented departures do not matter here: no
constant samples, NaN removed, no outlier removal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.judges.base import JudgeContext, SeriesData
from analyzer.judges.mannwhitney import MannWhitneyJudge
from analyzer.policy.judges import MannWhitneySpec
from analyzer.policy.metrics import SeriesMetric
from analyzer.sources.base import FloatArray
from analyzer.verdict import Outcome, Reason
from benchmarks.latency import BUCKET_BOUNDS
from benchmarks.simulator import MINUTES, SimulatedRun, VersionStream


@dataclass(frozen=True)
class ReferenceDecision:
    """A reference decider's answer for one run: abort or promote, when, and why."""

    decision: str  # "abort" or "promote"
    decided_at_minutes: float
    reason: str


ARGO_MAX_ERROR_RATIO = 0.01
ARGO_MAX_P99_SECONDS = 0.4
ARGO_FAILURE_LIMIT = 3
ARGO_CONSECUTIVE_ERROR_LIMIT = 4
ARGO_INITIAL_DELAY_MINUTES = 1


def argo_style(run: SimulatedRun) -> ReferenceDecision:
    """Per-minute absolute thresholds on the canary, with failureLimit and consecutiveErrorLimit."""
    canary = run.canary
    with np.errstate(divide="ignore", invalid="ignore"):
        error_ratio = np.where(canary.requests > 0, canary.errors / canary.requests, np.nan)
    measured = {
        "error-ratio": (error_ratio, ARGO_MAX_ERROR_RATIO),
        "p99-latency": (
            histogram_quantile(0.99, np.cumsum(canary.buckets, axis=1)),
            ARGO_MAX_P99_SECONDS,
        ),
    }
    failed = dict.fromkeys(measured, 0)
    errors_in_a_row = dict.fromkeys(measured, 0)
    for minute in range(ARGO_INITIAL_DELAY_MINUTES, MINUTES):
        at = float(minute + 1)
        for name, (values, bound) in measured.items():
            if canary.missing[minute] or canary.nan[minute]:  # empty: result[0] does not exist
                errors_in_a_row[name] += 1
                if errors_in_a_row[name] > ARGO_CONSECUTIVE_ERROR_LIMIT:
                    return ReferenceDecision("abort", at, f"{name}: more than 4 consecutive errors")
                continue
            errors_in_a_row[name] = 0
            value = float(values[minute])
            if not value <= bound:  # NaN fails the condition, as govaluate compares it
                failed[name] += 1
                if failed[name] > ARGO_FAILURE_LIMIT:
                    return ReferenceDecision(
                        "abort", at, f"{name}: {failed[name]} failed measurements"
                    )
    return ReferenceDecision("promote", float(MINUTES), "no metric exceeded its failureLimit")


KAYENTA_INTERVAL_MINUTES = 10
KAYENTA_BEGIN_AFTER_MINUTES = 1
KAYENTA_CONFIDENCE = 0.98
KAYENTA_PASS, KAYENTA_MARGINAL = 95.0, 75.0


@dataclass(frozen=True)
class KayentaMetric:
    spec: SeriesMetric
    critical: bool


def _kayenta_metric(name: str, tolerance: float, weight: float) -> SeriesMetric:
    return SeriesMetric(
        name=name,
        kind="series",
        query="kayenta_reference{ {{ selector }} }",
        tolerance=tolerance,
        weight=weight,
        judge=MannWhitneySpec(confidence=KAYENTA_CONFIDENCE),
    )


KAYENTA_METRICS = (
    KayentaMetric(_kayenta_metric("error-ratio", 0.25, 50.0), critical=True),
    KayentaMetric(_kayenta_metric("p99-latency", 0.05, 35.0), critical=False),
    KayentaMetric(_kayenta_metric("memory", 0.2, 15.0), critical=False),
)
_JUDGE = MannWhitneyJudge()
_CONTEXT = JudgeContext(alpha=1.0 - KAYENTA_CONFIDENCE, min_samples=3)


def kayenta_style(run: SimulatedRun) -> ReferenceDecision:
    """Fixed-interval Mann-Whitney on per-minute values, Kayenta's scoring, abort on a bad score."""
    baseline, canary = _kayenta_values(run.baseline), _kayenta_values(run.canary)
    score, reason = 100.0, "no analysis ran"
    for end in range(KAYENTA_INTERVAL_MINUTES, MINUTES + 1, KAYENTA_INTERVAL_MINUTES):
        window = slice(KAYENTA_BEGIN_AFTER_MINUTES, end)
        score, reason = _kayenta_score(baseline, canary, window)
        final = end == MINUTES
        if score < (KAYENTA_PASS if final else KAYENTA_MARGINAL):
            return ReferenceDecision(
                "abort", float(end), f"score {score:g} at minute {end}: {reason}"
            )
    return ReferenceDecision("promote", float(MINUTES), f"score {score:g}: {reason}")


def _kayenta_values(stream: VersionStream) -> dict[str, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        error_ratio = np.where(stream.requests > 0, stream.errors / stream.requests, np.nan)
    values = {
        "error-ratio": error_ratio,
        "p99-latency": histogram_quantile(0.99, np.cumsum(stream.buckets, axis=1)),
        "memory": stream.memory.copy(),
    }
    lost = stream.missing | stream.nan
    return {name: np.where(lost, np.nan, series) for name, series in values.items()}


def _kayenta_score(
    baseline: dict[str, FloatArray], canary: dict[str, FloatArray], window: slice
) -> tuple[float, str]:
    passed = weighed = 0.0
    failing: list[str] = []
    for metric in KAYENTA_METRICS:
        name = metric.spec.name
        judgement = _JUDGE.judge(
            _series(baseline[name][window]), _series(canary[name][window]), metric.spec, _CONTEXT
        )
        if judgement.reason_code in (Reason.NO_DATA, Reason.TOO_FEW_SAMPLES):
            continue  # Kayenta's NoData: left out of the group's denominator
        if judgement.outcome is Outcome.FAIL and metric.critical:
            return 0.0, f"{name} (critical) failed: {judgement.reason}"
        weighed += metric.spec.weight or 0.0
        if judgement.outcome is Outcome.FAIL:
            failing.append(f"{name}: {judgement.reason}")
        else:
            passed += metric.spec.weight or 0.0
    score = round(100.0 * passed / weighed, 2) if weighed else 0.0
    return score, "; ".join(failing) or "every metric passed"


def _series(values: FloatArray) -> SeriesData:
    return SeriesData(timestamps=np.arange(values.size, dtype=np.float64), values=values)


def histogram_quantile(quantile: float, cumulative: FloatArray) -> FloatArray:
    """Prometheus' ``histogram_quantile`` per row of cumulative bucket counts (``le`` ascending).

    Linear interpolation inside the bucket holding the rank, from 0 for the first bucket; a rank in
    the +Inf bucket returns the largest finite bound; no observations give NaN.
    """
    bounds = np.array(BUCKET_BOUNDS)
    total = cumulative[:, -1]
    rank = quantile * total
    index = np.minimum((cumulative < rank[:, None]).sum(axis=1), bounds.size - 1)
    rows = np.arange(cumulative.shape[0])
    below = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0.0)
    inside = cumulative[rows, index] - below
    lower = np.where(index > 0, bounds[np.maximum(index - 1, 0)], 0.0)
    upper = bounds[index]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = lower + (upper - lower) * np.where(inside > 0, (rank - below) / inside, 1.0)
    value = np.where(np.isinf(upper), bounds[-2], value)
    result: FloatArray = np.where(total > 0, value, np.nan)
    return result
