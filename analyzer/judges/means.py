"""Mean latency from a histogram's ``_sum`` and ``_count``: the test the buckets cannot do.

Bucket tails see a latency shift only where it moves observations across a boundary, and
Prometheus' default buckets are far apart (50, 100, 250 ms): a +10% shift hides between them
(see ``tails``). The same histogram's ``_sum`` and ``_count`` give each version's exact mean per
interval, whatever the buckets. This module turns them into one more row of the rate-ratio test
of ``evalues``, so the histogram judge can bet on the mean beside the tails, under the same
alpha and the same defences (conditioning, burst tempering, winsorising, late onset).

Conditioning. In interval t the versions served ``n_c`` and ``n_b`` requests (the counts) with
latency sums ``S_c`` and ``S_b``. Given the counts, ``S_c / (S_c + S_b)`` has mean
``n_c θ / (n_c θ + n_b)`` with θ the ratio of mean latencies: load and drift shared by both
versions cancel, as for errors. Its variance, a compound of ``n`` independent latencies, is that
of a binomial share over ``k = (n_c + n_b) / CV²`` pseudo-events, ``CV²`` being a request
latency's variance over its squared mean. So each interval's sums are expressed in units of
``u = mean * CV²`` (``S / u`` pseudo-events) and tested as counts:
``tolerance`` then bounds the mean ratio, "at most 5% slower on average".

``CV²`` comes from the baseline's pooled buckets over the window: the lognormal with the
baseline's exact mean (from its sums) that best matches the buckets, a plug-in like the tail
bounds of ``tails``, clipped to ``[CV2_FLOOR, CV2_CEILING]``. Extra variance it misses (pod-to-
pod jitter, a heavier tail than the buckets show) is what the burst tempering measures and
discounts. Validity is approximate, as for the tolerance of the tails; measured in the
benchmark (README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtr

from analyzer.judges.base import HistogramData, JudgeContext
from analyzer.judges.decisions import (
    Evidence,
    SequentialDecision,
    allowance,
    judgement,
    milliseconds,
    since,
)
from analyzer.judges.evalues import BoolArray, IntArray, RateRatioFit, fit_rate_ratio
from analyzer.judges.onset import tolerance_evidence
from analyzer.policy.metrics import MetricBase
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement, Outcome

CV2_FLOOR, CV2_CEILING, CV2_DEFAULT = 0.05, 4.0, 0.5
MEAN_RESIDUAL_CAP = 9.0
"""Squared residuals beyond 3 SD count as 3 SD when the mean row estimates its burst noise
(errors: 4 SD). A new version's first analysed minute often carries what is left of its warm-up
(a few percent slower), and counted in full it inflates the noise for the rest of the window.
Any predictable tempering keeps the e-process valid; this only sets how much evidence a noisy
canary is allowed (measured in the benchmark: +10% latency caught about a minute sooner at
1,000 and 10,000 requests a minute, healthy and +3% canaries unchanged)."""
MEAN_BURST_PRIOR = 2 * 0.03**2
"""κ0 for the mean row: per-interval noise of a version's mean latency of 3% (a CV), against
the 10% that error counts start from. Means over many requests move far less from minute to
minute than error counts do; starting from 10% would discount the first intervals ~25-fold."""


@dataclass(frozen=True)
class MeanRow:
    """Pseudo-event counts of each version's latency sums, on the intervals compared."""

    canary_hits: FloatArray
    baseline_hits: FloatArray
    canary_requests: FloatArray
    baseline_requests: FloatArray
    cv2: float
    canary_mean: float  # pooled over the window, in the histogram's unit (seconds)
    baseline_mean: float


def mean_row(baseline: HistogramData, canary: HistogramData, joint: BoolArray) -> MeanRow | None:
    """The row on the intervals in ``joint`` that have sums and counts for both versions, or
    None when the policy queries no sums (or no interval has them)."""
    parts = (baseline.sums, baseline.observations, canary.sums, canary.observations)
    if any(part is None for part in parts):
        return None
    base_sum, base_count, can_sum, can_count = (
        np.asarray(part, dtype=float)[joint] for part in parts
    )
    usable = (
        np.isfinite(base_sum)
        & np.isfinite(can_sum)
        & (base_count > 0)
        & (can_count > 0)
        & (base_sum >= 0)
        & (can_sum >= 0)
    )
    if not usable.all() or not usable.any():
        return None  # every interval the buckets compare must have a mean, or none is used
    baseline_mean = float(base_sum.sum() / base_count.sum())
    canary_mean = float(can_sum.sum() / can_count.sum())
    if not baseline_mean > 0:
        return None
    cv2 = latency_cv2(baseline, baseline_mean)
    unit = (base_sum + can_sum) / (base_count + can_count) * cv2
    unit = np.where(unit > 0, unit, 1.0)
    return MeanRow(
        canary_hits=can_sum / unit,
        baseline_hits=base_sum / unit,
        canary_requests=can_count,
        baseline_requests=base_count,
        cv2=cv2,
        canary_mean=canary_mean,
        baseline_mean=baseline_mean,
    )


def latency_cv2(data: HistogramData, mean: float) -> float:
    """A request latency's squared coefficient of variation, read from the pooled buckets and
    the exact ``mean``: the lognormal with that mean whose distribution function best matches
    the buckets' (least squares at the finite boundaries, over shapes 0.05 to 2.5). Latencies
    are close to lognormal in most services; where they are not, the fit still follows the
    buckets' spread. Clipped to ``[CV2_FLOOR, CV2_CEILING]``."""
    counts = np.nan_to_num(np.asarray(data.counts, dtype=float)).clip(min=0).sum(axis=0)
    bounds = np.asarray(data.upper_bounds, dtype=float)
    total = counts.sum()
    finite = np.isfinite(bounds) & (bounds > 0)
    if total <= 0 or not finite.any() or not mean > 0:
        return CV2_DEFAULT
    observed = (np.cumsum(counts) / total)[finite]
    log_bounds = np.log(bounds[finite])
    shapes = _SHAPES[:, None]
    log_median = math.log(mean) - shapes**2 / 2  # a lognormal's mean is exp(mu + sigma^2 / 2)
    fitted = ndtr((log_bounds[None, :] - log_median) / shapes)
    best = float(_SHAPES[int(np.argmin(((fitted - observed[None, :]) ** 2).sum(axis=1)))])
    cv2 = math.expm1(best**2)
    return float(np.clip(cv2, CV2_FLOOR, CV2_CEILING))


_SHAPES: FloatArray = np.linspace(0.05, 2.5, 246)


@dataclass(frozen=True)
class MeanTest:
    """The mean row's e-values (against slower, against faster, that it is not slower, that it
    is not faster), and what its judgement reports."""

    row: MeanRow
    fit: RateRatioFit
    log_e: FloatArray  # (4,)
    start: IntArray  # (4,): where the late-onset mixture weighs most
    joint: BoolArray

    def combined(self, tails: Evidence) -> Evidence:
        """The histogram's evidence with this row beside the tails: FAIL e-values averaged
        (half each: an average of e-processes is one), PASS only when both pass."""
        half = math.log(2.0)
        high, low, pass_high, pass_low = (float(value) for value in self.log_e)
        return replace(
            tails,
            log_e_high=float(np.logaddexp(tails.log_e_high, high) - half),
            log_e_low=float(np.logaddexp(tails.log_e_low, low) - half),
            log_pass_high=min(tails.log_pass_high, pass_high),
            log_pass_low=min(tails.log_pass_low, pass_low),
        )

    def leads(self, decision: SequentialDecision, tails: Evidence) -> bool:
        """Whether the mean, rather than a bucket tail, is what the judgement should report: a
        PASS (both passed; the mean reads plainest), else when it weighs more on the decided
        side."""
        if decision.outcome is Outcome.PASS:
            return True
        mine = self.log_e[0] if decision.direction == "high" else self.log_e[1]
        theirs = tails.log_e_high if decision.direction == "high" else tails.log_e_low
        return bool(mine >= theirs)

    def judgement(
        self,
        decision: SequentialDecision,
        sides: tuple[dict[str, float], dict[str, float]],
        metric: MetricBase,
        context: JudgeContext,
    ) -> Judgement:
        row = self.row
        start = int(self.start[0 if decision.direction == "high" else 1])
        if start > 0:
            decision = since(decision, int(np.flatnonzero(self.joint)[start]) + 1)
        ratio = float(self.fit.ratio_estimate()[0])
        lower, upper = self.fit.confidence_sequence(0, context.alpha)
        subject = (
            f"{metric.name} mean {_change(ratio)} (canary {milliseconds(row.canary_mean)} vs "
            f"baseline {milliseconds(row.baseline_mean)}), "
            f"{allowance(metric.direction, metric.tolerance)}"
        )
        sides = (
            {**sides[0], "mean": row.baseline_mean},
            {**sides[1], "mean": row.canary_mean},
        )
        details: dict[str, object] = {
            "tested": "mean",
            "mean_ratio": ratio,
            "latency_cv2": row.cv2,
            "dispersion": float(self.fit.dispersion()[0]),
            "intervals_compared": int(self.joint.sum()),
        }
        if metric.direction != "decrease_is_bad":
            details["e_value_high"] = math.exp(min(decision.log_e_value, 700.0))
        return judgement(
            decision,
            subject=subject,
            context=context,
            sides=sides,
            effect=(ratio - 1 if math.isfinite(ratio) else None, (lower - 1, upper - 1)),
            details=details,
        )


def mean_test(
    baseline: HistogramData,
    canary: HistogramData,
    joint: BoolArray,
    tolerance: float,
    context: JudgeContext,
) -> MeanTest | None:
    """The mean row tested like the counts judge tests errors, or None without sums."""
    row = mean_row(baseline, canary, joint)
    if row is None:
        return None
    fit = fit_rate_ratio(
        row.canary_hits[None, :],
        row.baseline_hits[None, :],
        row.canary_requests,
        row.baseline_requests,
        burst_prior=MEAN_BURST_PRIOR,
        residual_cap=MEAN_RESIDUAL_CAP,
    )
    onset = tolerance_evidence(fit, tolerance, context.alpha)
    return MeanTest(row, fit, onset.log_e, onset.start, joint)


def _change(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "no baseline"
    return f"{100 * (ratio - 1):+.3g}%"
