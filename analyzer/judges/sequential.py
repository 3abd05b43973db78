"""The default judge for counts and histograms: anytime-valid, so it may look at every interval.

Each analysis pass hands the judge every interval since the window began. A fixed-horizon test
repeated that often would abort healthy canaries far more often than ``alpha``; an e-process does
not (Ville's inequality: a nonnegative supermartingale that starts at 1 ever reaches ``1/alpha``
with probability at most ``alpha``). This module holds the judges; the method lives beside them:

- ``analyzer.judges.evalues``: the e-values. Counts are compared by conditioning each interval on
  its error total (a binomial in the rate ratio θ, free of the baseline rate), mixing the
  likelihood ratio over a log-θ grid, and tempering and winsorising intervals against bursts.
- ``analyzer.judges.tails``: histograms. Every finite bucket boundary is two rows of the counts
  test (above b, at or below b) against a null from the baseline's pooled tail, bounded where
  the buckets are coarse; ``histogram_quantile`` for the reported percentiles.
- ``analyzer.judges.onset``: late onset. A FAIL e-value mixes copies of the window's e-process
  restarted at every interval a regression may have begun (fixed weights summing to 1, so still
  an e-process for "never beyond the tolerance"): clean intervals before a late regression no
  longer dilute it. Early PASS keeps the window's e-process.
- ``analyzer.judges.decisions``: the bar, the ``min_samples``/``min_events`` gates, early PASS
  and the reason text.

The histogram judge averages the e-processes of all rows with fixed equal weights, an e-process
however the boundaries depend on one another. A tail-only regression (p99 up, median unchanged)
shows at the high boundaries, a whole shift at all of them. Early PASS needs every boundary
between the pooled 1st and 99th percentiles to pass (the mean of its two rows; an
intersection-union test).

Validity: exact under the conditional Poisson model for counts and for histograms with
``tolerance: 0``; approximate for histogram tolerances (a plug-in, see ``tails``), under bursts
(see ``evalues``), and because ``increase()`` returns non-integers, used as given.
``effect`` and ``effect_interval`` (an anytime-valid (1 - alpha) confidence sequence, for
histograms translated into latency at the boundary shown) describe the whole window; a FAIL
driven by a later start says "since interval k", for counts with the ratio since then.

Measured at alpha = 0.05, judged at every one of 60 looks, weight 5% -> 25% -> 50%, errors x1.2
allowed; bad intervals seen when it failed, median/90th percentile, the window's e-process alone
-> with the start times: errors x3 from interval 17, 18/25 -> 4/5; x2, 31/37 -> 10/13; x6, 5/8
-> 2/2; x3 from interval 40, 20 with 23% never -> 4/5; latency x1.5 from interval 17 (Prometheus
buckets, 10% allowed), 19/21 -> 6/7. From the first interval: x2 at 1,000 requests a minute (10%
weight) failed at look 4.7 -> 5.1 on average. False aborts at exactly the tolerance: Poisson
0.2% -> 0.1%; 2 canary pods bursting by 50% (CV) every minute, 4.3% -> 3.8%, by 100%, 5.4% ->
5.3%; histograms 0% -> 0%; healthy, then at the tolerance from interval 17, 0 of 150 runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer.errors import JudgeError
from analyzer.judges.base import (
    CountsData,
    HistogramData,
    JudgeContext,
    JudgeData,
    on_common_buckets,
)
from analyzer.judges.decisions import (
    TIMES,
    Evidence,
    SequentialDecision,
    allowance,
    decide,
    judgement,
    milliseconds,
    no_data,
    percent,
    quiet,
    ratio_with_interval,
    sequential_spec,
    since,
)
from analyzer.judges.evalues import INTERVAL_CAP, BoolArray, RateRatioFit, fit_rate_ratio, logsumexp
from analyzer.judges.means import MeanTest, mean_test
from analyzer.judges.onset import tolerance_evidence
from analyzer.judges.tails import CleanHistogram, TailCurve, boundary_log_e_values, split_rows
from analyzer.policy.metrics import MetricBase
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement, Outcome, Reason

PASS_QUANTILES = (0.01, 0.99)  # boundaries inside these pooled quantiles must pass for early PASS


# --- counts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanCounts:
    errors: FloatArray
    totals: FloatArray
    has_data: BoolArray

    @staticmethod
    def of(data: CountsData) -> CleanCounts:
        totals = np.asarray(data.totals, dtype=float)
        errors = np.asarray(data.errors, dtype=float)
        if totals.ndim != 1 or errors.shape != totals.shape:
            raise JudgeError("counts need one error and one total per interval")
        has_data = np.isfinite(totals) & (totals > 0)
        served = np.where(has_data, totals, 0.0)
        # No error series where requests were served means no errors (Prometheus returns nothing
        # for a counter that never moved); dropping those intervals would keep only the ones in
        # which the canary erred and bias the test towards FAIL.
        clean = np.clip(np.nan_to_num(errors, nan=0.0, posinf=0.0, neginf=0.0), 0.0, served)
        return CleanCounts(clean, served, has_data)

    def summary(self) -> dict[str, float]:
        requests, errors = float(self.totals.sum()), float(self.errors.sum())
        summary = {"requests": requests, "errors": errors, "intervals": float(self.has_data.sum())}
        if requests > 0:
            summary["error_ratio"] = errors / requests
        return summary


class SequentialCountsJudge:
    """Anytime-valid rate-ratio test of errors over requests."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        spec = sequential_spec(metric)
        if not isinstance(baseline, CountsData) or not isinstance(canary, CountsData):
            raise TypeError("the sequential counts judge needs CountsData for both versions")
        base, can = CleanCounts.of(baseline), CleanCounts.of(canary)
        if base.totals.shape != can.totals.shape:
            raise JudgeError("baseline and canary counts are not on the same intervals")
        sides = (base.summary(), can.summary())
        missing = no_data(metric.name, sides)
        if missing is not None:
            return missing
        joint = base.has_data & can.has_data
        if sides[0]["errors"] == 0 and sides[1]["errors"] == 0:
            code = Reason.EVIDENCE if joint.sum() >= context.min_samples else Reason.TOO_FEW_SAMPLES
            reason = (
                f"no errors yet in either version ({sides[1]['requests']:.0f} canary, "
                f"{sides[0]['requests']:.0f} baseline requests)"
            )
            return quiet(Outcome.INCONCLUSIVE, code, reason, sides)
        fit = fit_rate_ratio(
            can.errors[joint][None, :],
            base.errors[joint][None, :],
            can.totals[joint],
            base.totals[joint],
        )
        # against high and against low from any start; that it is not high, not low, throughout
        onset = tolerance_evidence(fit, metric.tolerance, context.alpha)
        log_e = onset.log_e
        evidence = Evidence(
            log_e_high=float(log_e[0]),
            log_e_low=float(log_e[1]),
            log_pass_high=float(log_e[2]),
            log_pass_low=float(log_e[3]),
            samples=int(joint.sum()),
            events=float(fit.pooled_hits.sum()),
        )
        decision = decide(evidence, metric.direction, spec, context)
        start = int(onset.start[0 if decision.direction == "high" else 1])
        if start > 0:
            since_ratio = float(fit.ratio_estimate(since=start)[0])
            note = f" ({TIMES}{since_ratio:.3g} since)" if math.isfinite(since_ratio) else ""
            decision = since(decision, int(np.flatnonzero(joint)[start]) + 1, note)
        ratio = float(fit.ratio_estimate()[0])
        lower, upper = fit.confidence_sequence(0, context.alpha)
        # The ratio is estimated interval by interval (weights and traffic change), so the
        # baseline figure beside it is the baseline's at the canary's times, not pooled over
        # the window: the two figures and the ratio then tell one story.
        at_canary_times = _rate_at(base, can, joint)
        subject = (
            f"{metric.name} {ratio_with_interval(ratio, lower, upper)} (canary "
            f"{percent(sides[1]['error_ratio'])} vs baseline {percent(at_canary_times)} at the "
            f"same times), {allowance(metric.direction, metric.tolerance)}"
        )
        effect = ratio - 1 if math.isfinite(ratio) else None
        details: dict[str, object] = {
            "e_value_high": math.exp(evidence.log_e_high),
            "e_value_low": math.exp(evidence.log_e_low),
            "dispersion": float(fit.dispersion()[0]),
            "intervals_compared": evidence.samples,
            "events": evidence.events,
        }
        return judgement(
            decision,
            subject=subject,
            context=context,
            sides=sides,
            effect=(effect, (lower - 1, upper - 1)),
            details=details,
        )


def _rate_at(base: CleanCounts, can: CleanCounts, joint: BoolArray) -> float:
    """The baseline's error ratio weighted by the canary's requests per interval."""
    weights = can.totals[joint]
    per_interval = base.errors[joint] / np.maximum(base.totals[joint], 1e-12)
    return float((weights * per_interval).sum() / weights.sum()) if weights.sum() > 0 else math.nan


# --- histograms -------------------------------------------------------------------------------


class SequentialHistogramJudge:
    """Anytime-valid comparison of latency histograms, tested at every bucket boundary."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        spec = sequential_spec(metric)
        if not isinstance(baseline, HistogramData) or not isinstance(canary, HistogramData):
            raise TypeError("the sequential histogram judge needs HistogramData for both versions")
        baseline, canary = on_common_buckets(baseline, canary)
        bounds = np.asarray(baseline.upper_bounds, dtype=float)
        if bounds.size == 0:
            empty = [side.upper_bounds.size == 0 for side in (baseline, canary)]
            which = " and ".join(v for v, e in zip(("baseline", "canary"), empty, strict=True) if e)
            reason = f"no buckets for {metric.name} from {which or 'both versions in common'}"
            return quiet(Outcome.INCONCLUSIVE, Reason.NO_DATA, reason, ({}, {}))
        base, can = CleanHistogram.of(baseline), CleanHistogram.of(canary)
        if base.counts.shape != can.counts.shape:
            raise JudgeError("baseline and canary histograms are not on the same intervals")
        sides = (base.summary(bounds), can.summary(bounds))
        missing = no_data(metric.name, sides)
        if missing is not None:
            return missing
        joint = base.has_data & can.has_data
        count = bounds.size - 1  # finite boundaries; the last bucket is +Inf
        if count == 0:
            reason = f"{metric.name} has a single bucket: nothing to compare"
            return quiet(Outcome.INCONCLUSIVE, Reason.EVIDENCE, reason, sides)
        can_rows, base_rows = (
            split_rows(can.counts[joint], count),
            split_rows(base.counts[joint], count),
        )
        fit = fit_rate_ratio(
            can_rows, base_rows, can.counts[joint].sum(axis=1), base.counts[joint].sum(axis=1)
        )
        curve = TailCurve.of(bounds[:count], base.counts[base.has_data].sum(axis=0))
        exposure = fit.canary_exposure.sum() + fit.baseline_exposure.sum()
        at_or_below = fit.pooled_hits[count:].sum(axis=1) / max(exposure, 1.0)
        low_q, high_q = PASS_QUANTILES
        required = (at_or_below >= low_q) & (at_or_below <= high_q)
        boundaries = boundary_log_e_values(
            fit,
            curve,
            metric.tolerance,
            metric.direction,
            pass_rows=np.tile(required, 2) if spec.early_pass else None,
            log_cap=INTERVAL_CAP * math.log(1 / context.alpha),
        )
        e_slower, e_faster, pass_slower, pass_faster = boundaries.log_e
        halves = math.log(2.0)
        pass_high = np.logaddexp(pass_slower[:count], pass_slower[count:]) - halves
        pass_low = np.logaddexp(pass_faster[:count], pass_faster[count:]) - halves
        rows = math.log(2.0 * count)
        evidence = Evidence(
            log_e_high=float(logsumexp(e_slower[None, :])[0] - rows),
            log_e_low=float(logsumexp(e_faster[None, :])[0] - rows),
            log_pass_high=float(pass_high[required].min()) if required.any() else -math.inf,
            log_pass_low=float(pass_low[required].min()) if required.any() else -math.inf,
            samples=int(joint.sum()),
            events=float(exposure),
        )
        means = mean_test(baseline, canary, joint, metric.tolerance, context)
        tails, evidence = evidence, means.combined(evidence) if means else evidence
        decision = decide(evidence, metric.direction, spec, context)
        if means is not None and means.leads(decision, tails):
            return means.judgement(decision, sides, metric, context)
        if decision.outcome is Outcome.PASS:
            # the boundary closest to failing the certificate, on its rarer side
            binding = {"increase_is_bad": pass_high, "decrease_is_bad": pass_low}.get(
                metric.direction, np.minimum(pass_high, pass_low)
            )
            boundary = int(np.argmin(np.where(required, binding, np.inf)))
            row = boundary if at_or_below[boundary] >= 0.5 else boundary + count
        else:
            # Where the canary looks worst; short of a FAIL only among boundaries with data on
            # both sides (not an empty far tail); with no evidence at all, near the p99.
            family = e_slower if decision.direction == "high" else e_faster
            if decision.outcome is not Outcome.FAIL:
                family = np.where(np.tile(required, 2), family, -np.inf)
            watched = int(np.flatnonzero(required).max(initial=0))
            row = int(np.argmax(family)) if family.max() > 0 else watched
            start = int(boundaries.start[0 if decision.direction == "high" else 1, row])
            if start > 0:
                decision = since(decision, int(np.flatnonzero(joint)[start]) + 1)
        return with_mean_ratio(
            self._judgement(
                fit,
                curve=curve,
                row=row,
                bounds=bounds,
                decision=decision,
                evidence=evidence,
                sides=sides,
                metric=metric,
                context=context,
            ),
            means,
        )

    @staticmethod
    def _judgement(
        fit: RateRatioFit,
        *,
        curve: TailCurve,
        row: int,
        bounds: FloatArray,
        decision: SequentialDecision,
        evidence: Evidence,
        sides: tuple[dict[str, float], dict[str, float]],
        metric: MetricBase,
        context: JudgeContext,
    ) -> Judgement:
        count = bounds.size - 1
        ratio = float(fit.ratio_estimate()[row])
        lower, upper = fit.confidence_sequence(row, context.alpha)
        latency = curve.latency_ratio(row, ratio, clamp=True)
        ends = sorted(
            (curve.latency_ratio(row, lower, False), curve.latency_ratio(row, upper, False))
        )
        canary_share = float(fit.canary_hits[row].sum() / max(fit.canary_exposure.sum(), 1.0))
        baseline_hits = fit.pooled_hits[row] - fit.canary_hits[row]
        baseline_share = float(baseline_hits.sum() / max(fit.baseline_exposure.sum(), 1.0))
        above = row < count
        level = 1 - canary_share if above else canary_share
        where = "above" if above else "at or below"
        bound = float(bounds[row % count])
        allowed = allowance(metric.direction, metric.tolerance)
        if math.isfinite(latency):
            subject = (
                f"{metric.name} p{100 * level:.3g} {100 * (latency - 1):+.3g}% (canary "
                f"{percent(canary_share)} vs baseline {percent(baseline_share)} of requests "
                f"{where} {milliseconds(bound)}), {allowed}"
            )
        else:
            subject = (
                f"{metric.name} p99 {milliseconds(sides[1].get('p99', math.nan))} vs baseline "
                f"{milliseconds(sides[0].get('p99', math.nan))}, {allowed}"
            )
        effect = latency - 1 if math.isfinite(latency) else None
        interval = (ends[0] - 1, ends[1] - 1) if effect is not None else None
        details: dict[str, object] = {
            "boundary": bound,
            "side": where,
            "quantile": level,
            "tail_ratio": ratio,
            "dispersion": float(fit.dispersion()[row]),
            "intervals_compared": evidence.samples,
            "events": evidence.events,
        }
        if metric.direction != "decrease_is_bad":
            details["e_value_high"] = math.exp(evidence.log_e_high)
        if metric.direction != "increase_is_bad":
            details["e_value_low"] = math.exp(evidence.log_e_low)
        return judgement(
            decision,
            subject=subject,
            context=context,
            sides=sides,
            effect=(effect, interval),
            details=details,
        )


def with_mean_ratio(judgement: Judgement, means: MeanTest | None) -> Judgement:
    """A tail's judgement with the mean ratio beside it, when the policy queries the mean: one
    pod's tail that looks worst is a maximum over boundaries; its mean is what pods.py holds
    against the tolerance."""
    if means is None:
        return judgement
    ratio = float(means.fit.ratio_estimate()[0])
    return judgement.model_copy(update={"details": {**judgement.details, "mean_ratio": ratio}})


class SequentialJudge:
    """``type: sequential`` as the registry knows it: counts or histograms, by the data given."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        if isinstance(canary, HistogramData):
            return SequentialHistogramJudge().judge(baseline, canary, metric, context)
        if isinstance(canary, CountsData):
            return SequentialCountsJudge().judge(baseline, canary, metric, context)
        raise TypeError("the sequential judge compares counts or histograms, not series")
