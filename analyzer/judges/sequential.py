"""The default judge for counts and histograms: anytime-valid, so it may look at every interval.

Each analysis pass hands the judge every interval since the window began. A fixed-horizon test
repeated that often would abort healthy canaries far more often than ``alpha``; an e-process does
not (Ville's inequality: a nonnegative supermartingale that starts at 1 ever reaches ``1/alpha``
with probability at most ``alpha``). We follow Lindon & Malek, "Anytime-valid inference for
multinomial count data" (NeurIPS 2022) and Lindon, Sanden & Shirikian, "Rapid regression detection
in software deployments through sequential testing" (KDD 2022): mixture likelihood ratios.

Counts. In interval t the versions serve ``n_c``, ``n_b`` requests and fail ``y_c``, ``y_b``.
Conditioning on the interval's error total ``k = y_c + y_b`` gives
``y_c ~ Binomial(k, n_c θ / (n_c θ + n_b))`` with ``θ = p_canary / p_baseline``: exact when each
version's errors are Poisson with exposure proportional to its requests (the rare-error limit).
Given the realised request counts the exact law is Fisher's noncentral hypergeometric in the odds
ratio, which the binomial matches when errors are rare and otherwise over-disperses, erring on the
conservative side. Conditioning removes the baseline rate, so load, time of day and outages that
hit both versions cannot fake a regression, and the canary weight (5% -> 25% -> 50%) enters as
``n_c / n_b`` per interval. The test of "canary higher than allowed" mixes ``L(θ) / L(θ0)`` over a
prior on ``θ > θ0 = 1 + tolerance``. Each component is a supermartingale under every ``θ <= θ0``,
not only at θ0: per interval its expectation ``[π π1/π0 + (1 - π)(1 - π1)/(1 - π0)]^k`` is linear
in the true share π, is 1 at π0 and grows with π, and π grows with θ. So a regression inside the
tolerance, even one varying between intervals, does not abort. ``decrease_is_bad`` mirrors it
about ``1 / (1 + tolerance)``; ``either`` averages the two e-processes (valid under the band
between them, and never weaker than two tests at ``alpha / 2``). Early PASS tests the mirror null
(``θ >= θ0`` against ``θ < θ0``) at the same bar; with ``either`` both sides must pass.

The prior is a grid of 201 values of log θ (0.02 apart within ±1, 0.1 apart out to ±6), weighted
∝ 1/(u + 0.02) in the distance u from the null: close to scale-free, it costs a few nats against
the best single alternative whether the regression is x1.05 under heavy traffic or x50.

Overdispersion. Bursts shared by both versions cancel in the conditioning. Bursts in one version
(a bad pod, a GC pause, a retry storm) make its counts vary more than Poisson, and two defences
keep the test exact under the Poisson null while bounding the damage otherwise:
- tempering: interval t's log-likelihood ratio is multiplied by ``1 / (1 + κ v_t)``, where
  ``v_t = k π (1 - π)`` is its binomial information and κ the burst noise (extra variance
  ``κ v_t²``, as from a per-version random rate multiplier; κ = 2 CV²). κ is estimated from the
  intervals before t only, shrunk towards 0.02 (a 10% CV), so the weight is predictable and
  Jensen keeps every factor's expectation at most 1. Under real bursts this is the
  quasi-likelihood correction, right to second order.
- winsorising: an interval's canary count is pulled back to at most ``√(2c / w)`` standard
  deviations beyond the null's expectation, ``c = log(1/alpha)``, unless the interval before was
  beyond that as well. A lone interval then multiplies an e-value by about ``1/alpha`` at most,
  which with the prior's spread cannot reach the bar: one burst or one corrupt scrape never
  aborts, two bad intervals in a row can. Lowering a count lowers every component's ratio, and
  the cap depends on the past only, so this too is valid.
Measured at alpha = 0.05 on canaries exactly at the tolerance, with 2 canary pods whose error rates
burst by 50-100% (CV) every minute: about 4% false aborts, against 58-77% with neither defence and
12-19% with tempering alone; on Poisson data both cost about one interval of delay. Constant
pod-to-pod differences are not corrected: if the one canary pod sits on a slow node its users are
worse off, and ``tolerance`` is the allowance for that. Strong version-level noise on the baseline
itself biases the conditional share (E[1/noise] > 1: 11% false aborts at a 45% CV on both
versions); a baseline spread over many pods averages it out. The mixture is over one θ for the
whole window, so a regression that starts late is diluted by the clean intervals before it (x3 from
interval 17 fails about ten intervals later); a mixture over start times (an e-detector) would fix
that.

Histograms. At every finite bucket boundary b the counts test runs twice, on the observations
above b and on those at or below it (each version's observations are its exposure).
``tolerance`` scales latency: "canary may be up to 5% slower" means canary <= baseline * 1.05 in
distribution, i.e. at every b the canary's tail is at most the baseline's tail at b / 1.05. The
null ratio is ``S(b / 1.05) / S(b)`` above b and ``F(b / 1.05) / F(b)`` (alternative reversed)
below it, from the baseline's pooled histogram, which usually has far more data: a plug-in. Only
the tails at the boundaries are observed, so the judge uses bounds: where log S and log F look
concave in log latency (true of every log-concave density on the log scale: lognormal, gamma,
Weibull) the chord and the extended neighbouring secants bound them, elsewhere (a bimodal
latency) plain monotonicity does. A FAIL tests the lenient end and a PASS the strict end; coarse
buckets widen the gap between them (an interpolating estimate, PCHIP, was measurably liberal at
the boundary with Prometheus' default buckets). The e-processes of all rows are averaged with
fixed equal weights, an e-process however the boundaries depend on one another; a row whose
margin cannot be estimated bets nothing. A tail-only regression (p99 up, median unchanged) shows
at the high boundaries, a whole shift at all of them. Early PASS needs every boundary between the
pooled 1st and 99th percentiles to pass (the mean of its two rows; an intersection-union test).
The reported p50/p90/p99 interpolate linearly in a bucket, as ``histogram_quantile`` does.

Validity: exact under the conditional Poisson model for counts and for histograms with
``tolerance: 0`` (stochastic dominance at the boundaries: no plug-in); approximate for histogram
tolerances (the bounds assume the pooled baseline shape holds across the window, and its sampling
error), under bursts (see above), and because ``increase()`` returns non-integers, used as given.

Decisions. FAIL when the e-value reaches ``1/alpha`` once ``min_events`` events (errors; for
histograms, observations) were seen in both versions together. Before ``min_samples`` intervals
carry data in both versions the judge is INCONCLUSIVE (TOO_FEW_SAMPLES) unless the e-value
reaches ``(1/alpha)²``, a canary failing everything need not wait; any bar of at least ``1/alpha``
keeps validity. The judge is stateless: it evaluates the e-process at the latest interval, and
Ville's inequality covers stopping at the first pass that crosses. ``effect_interval`` is an
anytime-valid (1 - alpha) confidence sequence (the θ whose mixture likelihood ratio has not
reached ``1/alpha``, widened to the neighbouring grid points), for histograms translated into
latency at the boundary shown, by log-log interpolation of the baseline's tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analyzer.judges.base import (
    CountsData,
    HistogramData,
    JudgeContext,
    JudgeData,
    on_common_buckets,
)
from analyzer.policy.judges import SequentialJudge as SequentialSpec
from analyzer.policy.metrics import MetricBase
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement, Outcome, Reason

BoolArray = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
IntArray = np.ndarray[tuple[int, ...], np.dtype[np.intp]]
Bounds = tuple[FloatArray, FloatArray]

LOG_RATIO_GRID: FloatArray = np.concatenate(
    (np.linspace(-6.0, -1.0, 51)[:-1], np.linspace(-1.0, 1.0, 101), np.linspace(1.0, 6.0, 51)[1:])
)
_RATIOS = np.exp(LOG_RATIO_GRID)
_PRIOR_OFFSET = 0.02  # the prior's 1/(u + offset): one grid step near the null
BURST_PRIOR = 0.02  # κ0: prior burst noise, as from a per-version, per-interval rate CV of 10%
BURST_PRIOR_INFORMATION = 100.0  # how much binomial information that prior is worth
DISPERSION_CAP = 25.0  # no interval's evidence is discounted more than this
BURST_RESIDUAL_CAP = 16.0  # squared residuals beyond 4 SD count as 4 SD when estimating κ
INTERVAL_CAP = 1.0  # one interval multiplies an e-value by about (1/alpha) ** INTERVAL_CAP at most
PLUGIN_MIN_COUNT = 10  # baseline observations on a side of a boundary before its margin is used
PASS_QUANTILES = (0.01, 0.99)  # boundaries inside these pooled quantiles must pass for early PASS
_LOG_E_CAP = 700.0  # exp(700) is still a finite float
TIMES = "\u00d7"  # the multiplication sign of "x2.1" in reasons


def _prior_tables() -> tuple[FloatArray, FloatArray]:
    """Prior weights over the grid for every place a null can sit, and the two-sided prior.

    Row j of the table is the alternative above a null just below grid point j; row G + j the
    alternative below a null just above grid point j. Weights ∝ width / (distance + offset).
    """
    width = np.gradient(LOG_RATIO_GRID)
    offset = LOG_RATIO_GRID[None, :] - LOG_RATIO_GRID[:, None]  # [j, g] = grid[g] - grid[j]
    density = width / (np.abs(offset) + _PRIOR_OFFSET)
    above, below = np.where(offset >= 0, density, 0.0), np.where(offset <= 0, density, 0.0)
    table = np.concatenate(
        (above / above.sum(axis=1, keepdims=True), below / below.sum(axis=1, keepdims=True))
    )
    both = width / (np.abs(LOG_RATIO_GRID) + _PRIOR_OFFSET)
    return table, both / both.sum()


_PRIOR_ONE_SIDED, _PRIOR_TWO_SIDED = _prior_tables()


def _logsumexp(values: FloatArray) -> FloatArray:
    """Row-wise log(sum(exp)), -inf for an all -inf row."""
    peak = values.max(axis=1)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        total: FloatArray = safe + np.log(np.exp(values - safe[:, None]).sum(axis=1))
    return total


@dataclass(frozen=True)
class RateRatioFit:
    """Rate-ratio likelihoods of one or more tests ("rows") sharing per-interval exposures.

    Row r compares ``canary_hits[r]`` with the baseline's hits (e.g. errors, or observations
    above one bucket boundary); the exposures are each version's requests per interval. Each
    interval's log-likelihood is tempered by ``weights`` (see ``burst_weights``).
    """

    canary_hits: FloatArray  # (rows, intervals)
    pooled_hits: FloatArray  # (rows, intervals): both versions
    canary_exposure: FloatArray  # (intervals,)
    baseline_exposure: FloatArray  # (intervals,)
    weights: FloatArray  # (rows, intervals), in (0, 1]
    log_likelihood: FloatArray  # (rows, grid): tempered, up to a constant per row
    peak: FloatArray  # (rows,): its maximum over the grid
    shape: FloatArray  # (rows, grid): exp(log_likelihood - peak), in [0, 1]

    def log_e_values(
        self,
        log_null: FloatArray,
        above: BoolArray,
        rows: IntArray | None = None,
        log_cap: float = math.inf,
    ) -> FloatArray:
        """Mixture log e-value against ``θ = exp(log_null)``, one per hypothesis.

        Hypothesis h tests row ``rows[h]`` (default: row h); ``above`` says its alternative is
        θ > null, else θ < null. A NaN null (a margin that could not be estimated) bets nothing.
        With ``log_cap``, no single interval may raise the log e-value by much more than that
        (see ``_capped_hits``).
        """
        rows = np.arange(log_null.size) if rows is None else rows
        size = LOG_RATIO_GRID.size
        testable = np.isfinite(log_null)
        null = np.where(testable, log_null, 0.0)
        first_above = np.searchsorted(LOG_RATIO_GRID, null, side="right")
        last_below = np.searchsorted(LOG_RATIO_GRID, null, side="left") - 1
        has_alternative = np.where(above, first_above < size, last_below >= 0)
        # A row without hits has a flat likelihood: its e-value is exactly 1.
        bets = np.flatnonzero(testable & has_alternative & (self.pooled_hits.sum(axis=1) > 0)[rows])
        log_e = np.zeros(log_null.size)
        if bets.size == 0:
            return log_e
        tested = rows[bets]
        prior = _PRIOR_ONE_SIDED[np.where(above, first_above, size + last_below)[bets]]
        null, above = null[bets], above[bets]
        hits, pooled, weights = (
            self.canary_hits[tested],
            self.pooled_hits[tested],
            self.weights[tested],
        )
        canary_part = np.exp(null)[:, None] * self.canary_exposure
        null_share = canary_part / (canary_part + self.baseline_exposure)
        # y log θ - k log(θ n_c + n_b) at the null, per interval, up to a θ-free constant
        null_terms = hits * null[:, None] - pooled * np.log(canary_part + self.baseline_exposure)
        # Winsorise each interval's canary count towards the null (see _capped_hits): only the
        # canary's count changes, so the log-likelihood tilts by -(θ - null) * (count removed).
        capped = _capped_hits(hits, pooled, weights, null_share, above=above, log_cap=log_cap)
        removed = (weights * (hits - capped)).sum(axis=1)
        shape = self.shape[tested]
        tilted = np.flatnonzero(removed)
        if tilted.size:
            tilt = np.minimum(-removed[tilted, None] * (LOG_RATIO_GRID - null[tilted, None]), 0)
            shape[tilted] *= np.exp(tilt)
        mass = np.einsum("hg,hg->h", prior, shape)
        tiny = np.flatnonzero(mass < 1e-250)
        with np.errstate(divide="ignore"):
            log_mass = np.log(mass)
            if tiny.size:  # far from the likelihood's peak: redo in log space, no underflow
                relative = self.log_likelihood[tested[tiny]] - self.peak[tested[tiny]][:, None]
                tilt = np.minimum(-removed[tiny, None] * (LOG_RATIO_GRID - null[tiny, None]), 0)
                log_mass[tiny] = _logsumexp(np.log(prior[tiny]) + relative + tilt)
        values = self.peak[tested] - (weights * null_terms).sum(axis=1) + log_mass
        log_e[bets] = np.clip(values, -_LOG_E_CAP, _LOG_E_CAP)
        return log_e

    def ratio_estimate(self) -> FloatArray:
        """Mantel-Haenszel rate ratio per row: consistent under drift and changing weights."""
        total = self.canary_exposure + self.baseline_exposure
        canary = (self.canary_hits * self.baseline_exposure / total).sum(axis=1)
        baseline = ((self.pooled_hits - self.canary_hits) * self.canary_exposure / total).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate: FloatArray = canary / baseline
        return estimate

    def dispersion(self) -> FloatArray:
        """Per row, by how much the bursts discounted the evidence overall (1 = not at all)."""
        hits = self.pooled_hits.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio: FloatArray = hits / (self.weights * self.pooled_hits).sum(axis=1)
        return np.where(hits > 0, ratio, 1.0)

    def confidence_sequence(self, row: int, alpha: float) -> tuple[float, float]:
        """(1 - alpha) anytime-valid bounds on θ for one row (0 and inf when unbounded)."""
        log_marginal = self.peak[row] + math.log(float(_PRIOR_TWO_SIDED @ self.shape[row]))
        inside = np.flatnonzero(log_marginal - self.log_likelihood[row] < math.log(1.0 / alpha))
        first, last = int(inside[0]), int(inside[-1])
        lower = float(_RATIOS[first - 1]) if first > 0 else 0.0
        upper = float(_RATIOS[last + 1]) if last + 1 < _RATIOS.size else math.inf
        return lower, upper


def _capped_hits(
    hits: FloatArray,
    pooled: FloatArray,
    weights: FloatArray,
    null_share: FloatArray,
    *,
    above: BoolArray,
    log_cap: float,
) -> FloatArray:
    """Canary counts winsorised so that a lone interval moves the log e-value by little more
    than ``log_cap``: at ``√(2 log_cap / w)`` standard deviations from the null's expected count,
    towards the alternative only, unless the interval before was beyond that too.

    For an alternative above the null every component's likelihood ratio grows with the
    canary's count, so lowering a count lowers every factor; the cap depends only on the
    interval's total, the past and the null. Each component therefore stays a supermartingale:
    validity is exact. A single burst, or one bad scrape, cannot abort on its own; a second bad
    interval in a row counts in full, so a regression that persists is not held back.
    """
    if not math.isfinite(log_cap):
        return hits
    expected = pooled * null_share
    spread = np.sqrt(2 * log_cap * expected * (1 - null_share) / weights)
    outside = np.where(above[:, None], hits > expected + spread, hits < expected - spread)
    follows = np.zeros_like(outside)
    follows[:, 1:] = outside[:, :-1]
    limited = np.where(
        above[:, None], np.minimum(hits, expected + spread), np.maximum(hits, expected - spread)
    )
    capped: FloatArray = np.where(follows, hits, limited)
    return capped


def burst_weights(
    canary_hits: FloatArray,
    pooled_hits: FloatArray,
    canary_exposure: FloatArray,
    baseline_exposure: FloatArray,
) -> FloatArray:
    """Per row and interval, ``1 / (1 + κ v_t)``: the share of interval t's evidence to count.

    ``v_t = k π (1 - π)`` is the interval's binomial information. Bursts that hit one version
    and not the other add ``κ v_t²`` to the variance: no interval tells much more than ``1/κ``.
    κ is estimated from the intervals before t only (one-step-ahead residuals at the ratio
    estimated from those intervals, shrunk towards ``BURST_PRIOR``): a predictable weight, so
    the tempered product stays an exact supermartingale under the Poisson null.
    """
    total = canary_exposure + baseline_exposure
    agree = canary_hits * baseline_exposure / total
    against = (pooled_hits - canary_hits) * canary_exposure / total
    # Mantel-Haenszel ratio of the intervals before t (a cumulative sum less interval t itself),
    # with one pseudo-event per side
    ratio = (np.cumsum(agree, axis=1) - agree + 1) / (np.cumsum(against, axis=1) - against + 1)
    share = ratio * canary_exposure / (ratio * canary_exposure + baseline_exposure)
    information = pooled_hits * share * (1 - share)
    past_information = np.cumsum(information, axis=1) - information
    # E[r²] = 1 + κ v_t + v_t / I_(t-1): the last term is the error of the ratio estimated so
    # far. An interval with nothing before it says nothing about κ.
    usable = (information > 0) & (past_information > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(
            usable,
            np.minimum((canary_hits - pooled_hits * share) ** 2 / information, BURST_RESIDUAL_CAP)
            - 1
            - information / past_information,
            0.0,
        )
    counted = np.where(usable, information, 0.0)
    seen_excess = np.cumsum(excess, axis=1) - excess
    seen_information = np.cumsum(counted, axis=1) - counted
    burst = np.maximum(
        (BURST_PRIOR * BURST_PRIOR_INFORMATION + seen_excess)
        / (BURST_PRIOR_INFORMATION + seen_information),
        0.0,
    )
    weights: FloatArray = 1 / np.minimum(1 + burst * information, DISPERSION_CAP)
    return weights


def fit_rate_ratio(
    canary_hits: FloatArray,
    baseline_hits: FloatArray,
    canary_exposure: FloatArray,
    baseline_exposure: FloatArray,
) -> RateRatioFit:
    """Tempered log-likelihood of θ on the grid for each row; exposures must be > 0."""
    pooled = canary_hits + baseline_hits
    weights = burst_weights(canary_hits, pooled, canary_exposure, baseline_exposure)
    terms = np.log(np.outer(canary_exposure, _RATIOS) + baseline_exposure[:, None])
    log_likelihood = (
        np.outer((weights * canary_hits).sum(axis=1), LOG_RATIO_GRID) - (weights * pooled) @ terms
    )
    peak = log_likelihood.max(axis=1)
    return RateRatioFit(
        canary_hits=canary_hits,
        pooled_hits=pooled,
        canary_exposure=canary_exposure,
        baseline_exposure=baseline_exposure,
        weights=weights,
        log_likelihood=log_likelihood,
        peak=peak,
        shape=np.exp(log_likelihood - peak[:, None]),
    )


@dataclass(frozen=True)
class Evidence:
    """The four log e-values a decision needs, and the gates around them."""

    log_e_high: float  # against "canary higher than allowed"
    log_e_low: float  # against "canary lower than allowed"
    log_pass_high: float  # that the canary is not higher than allowed
    log_pass_low: float
    samples: int  # intervals with data in both versions
    events: float  # errors, or observations, in both versions


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason_code: Reason
    direction: Literal["high", "low"]
    log_e_value: float
    log_pass_value: float
    tail: str  # the end of the reason sentence


def decide(
    evidence: Evidence, direction: str, spec: SequentialSpec, context: JudgeContext
) -> Decision:
    """Apply the bar, the ``min_samples``/``min_events`` gates and early PASS to the e-values."""
    bar = math.log(1.0 / context.alpha)
    high, low = evidence.log_e_high, evidence.log_e_low
    side: Literal["high", "low"] = "high" if direction == "increase_is_bad" else "low"
    if direction == "increase_is_bad":
        log_e, log_pass = high, evidence.log_pass_high
    elif direction == "decrease_is_bad":
        log_e, log_pass = low, evidence.log_pass_low
    else:
        log_e = float(np.logaddexp(high, low) - math.log(2.0))
        side = "high" if high >= low else "low"
        log_pass = min(evidence.log_pass_high, evidence.log_pass_low)
    enough = evidence.samples >= context.min_samples
    shown, bar_shown = f"e-value {format_e(log_e)}", format_e(bar)

    def decision(outcome: Outcome, code: Reason, tail: str) -> Decision:
        return Decision(outcome, code, side, log_e, log_pass, tail)

    if log_e >= (bar if enough else 2 * bar) and evidence.events >= spec.min_events:
        if enough:
            return decision(Outcome.FAIL, Reason.EVIDENCE, f"{shown} ≥ {bar_shown}, regression")
        early = f"{shown} ≥ {format_e(2 * bar)} within {evidence.samples} intervals, regression"
        return decision(Outcome.FAIL, Reason.EVIDENCE, early)
    if not enough:
        short = f"{shown}, only {evidence.samples} of {context.min_samples} intervals so far"
        return decision(Outcome.INCONCLUSIVE, Reason.TOO_FEW_SAMPLES, short)
    if log_e >= bar:
        held = (
            f"{shown} ≥ {bar_shown} but {evidence.events:.0f} of {spec.min_events} events "
            "needed before a FAIL"
        )
        return decision(Outcome.INCONCLUSIVE, Reason.EVIDENCE, held)
    if spec.early_pass and log_pass >= bar:
        passed = f"e-value {format_e(log_pass)} ≥ {bar_shown} that it is within tolerance, pass"
        return decision(Outcome.PASS, Reason.EVIDENCE, passed)
    return decision(Outcome.INCONCLUSIVE, Reason.EVIDENCE, f"{shown} < {bar_shown}, no verdict yet")


def format_e(log_e: float) -> str:
    value = math.exp(min(log_e, _LOG_E_CAP))
    if value < 10:
        return f"{value:.2g}"
    return f"{value:,.0f}" if value < 1e6 else f"{value:.1e}"


def _percent(ratio: float) -> str:
    return f"{100 * ratio:.3g}%"


def _spec(metric: MetricBase) -> SequentialSpec:
    spec = getattr(metric, "judge", None)
    if not isinstance(spec, SequentialSpec):
        raise TypeError(f"metric {metric.name!r} is not configured for the sequential judge")
    return spec


def judgement(
    decision: Decision,
    *,
    subject: str,
    context: JudgeContext,
    sides: tuple[dict[str, float], dict[str, float]],
    effect: tuple[float | None, tuple[float, float] | None],
    details: dict[str, object],
) -> Judgement:
    """Assemble the Judgement with the evidence both judges report."""
    failed = decision.outcome is Outcome.FAIL
    return Judgement(
        outcome=decision.outcome,
        reason=f"{subject}: {decision.tail}",
        reason_code=decision.reason_code,
        direction=decision.direction if failed else None,
        baseline=sides[0],
        canary=sides[1],
        effect=effect[0],
        effect_interval=effect[1],
        e_value=math.exp(min(decision.log_e_value, _LOG_E_CAP)),
        threshold=1.0 / context.alpha,
        details={
            "regression_detected": failed,
            "log_e_value": decision.log_e_value,
            "pass_e_value": math.exp(min(decision.log_pass_value, _LOG_E_CAP)),
            **details,
        },
    )


def _quiet(
    outcome: Outcome, code: Reason, reason: str, sides: tuple[dict[str, float], dict[str, float]]
) -> Judgement:
    """A judgement without a test: no data, or nothing the test could use."""
    return Judgement(
        outcome=outcome,
        reason=reason,
        reason_code=code,
        baseline=sides[0],
        canary=sides[1],
        details={"regression_detected": False},
    )


def _no_data(name: str, sides: tuple[dict[str, float], dict[str, float]]) -> Judgement | None:
    empty = [
        version
        for version, side in zip(("baseline", "canary"), sides, strict=True)
        if not side["intervals"]
    ]
    if not empty:
        return None
    which = " and ".join(empty)
    return _quiet(Outcome.INCONCLUSIVE, Reason.NO_DATA, f"no data for {name} from {which}", sides)


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
            raise ValueError("counts need one error and one total per interval")
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


def _allowed(direction: str, tolerance: float) -> str:
    up, down = f"{TIMES}{1 + tolerance:.3g}", f"{TIMES}{1 / (1 + tolerance):.3g}"
    if direction == "increase_is_bad":
        return f"allowed {up}"
    return f"allowed down to {down}" if direction == "decrease_is_bad" else f"allowed {down}-{up}"


class SequentialCountsJudge:
    """Anytime-valid rate-ratio test of errors over requests."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        spec = _spec(metric)
        if not isinstance(baseline, CountsData) or not isinstance(canary, CountsData):
            raise TypeError("the sequential counts judge needs CountsData for both versions")
        base, can = CleanCounts.of(baseline), CleanCounts.of(canary)
        if base.totals.shape != can.totals.shape:
            raise ValueError("baseline and canary counts are not on the same intervals")
        sides = (base.summary(), can.summary())
        missing = _no_data(metric.name, sides)
        if missing is not None:
            return missing
        joint = base.has_data & can.has_data
        if sides[0]["errors"] == 0 and sides[1]["errors"] == 0:
            code = Reason.EVIDENCE if joint.sum() >= context.min_samples else Reason.TOO_FEW_SAMPLES
            reason = (
                f"no errors yet in either version ({sides[1]['requests']:.0f} canary, "
                f"{sides[0]['requests']:.0f} baseline requests)"
            )
            return _quiet(Outcome.INCONCLUSIVE, code, reason, sides)
        fit = fit_rate_ratio(
            can.errors[joint][None, :],
            base.errors[joint][None, :],
            can.totals[joint],
            base.totals[joint],
        )
        margin = math.log1p(metric.tolerance)
        # against high, against low, pass high, pass low: all on the one row
        log_e = fit.log_e_values(
            np.array([margin, -margin, margin, -margin]),
            np.array([True, False, False, True]),
            np.zeros(4, dtype=np.intp),
            log_cap=INTERVAL_CAP * math.log(1 / context.alpha),
        )
        evidence = Evidence(
            log_e_high=float(log_e[0]),
            log_e_low=float(log_e[1]),
            log_pass_high=float(log_e[2]),
            log_pass_low=float(log_e[3]),
            samples=int(joint.sum()),
            events=float(fit.pooled_hits.sum()),
        )
        decision = decide(evidence, metric.direction, spec, context)
        ratio = float(fit.ratio_estimate()[0])
        lower, upper = fit.confidence_sequence(0, context.alpha)
        shown = f"{TIMES}{ratio:.3g}" if math.isfinite(ratio) else "baseline had no errors"
        subject = (
            f"canary {metric.name} ratio {_percent(sides[1]['error_ratio'])} vs baseline "
            f"{_percent(sides[0]['error_ratio'])} ({shown}, "
            f"{_allowed(metric.direction, metric.tolerance)})"
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


# --- histograms -------------------------------------------------------------------------------


def histogram_quantile(quantile: float, upper_bounds: FloatArray, counts: FloatArray) -> float:
    """Prometheus' ``histogram_quantile`` on one set of bucket counts (linear inside a bucket)."""
    cumulative = np.cumsum(counts)
    if cumulative.size == 0 or cumulative[-1] <= 0:
        return math.nan
    rank = quantile * cumulative[-1]
    bucket = min(int(np.searchsorted(cumulative, rank, side="left")), cumulative.size - 1)
    if bucket == cumulative.size - 1 and math.isinf(upper_bounds[-1]):
        return float(upper_bounds[-2]) if upper_bounds.size > 1 else math.nan
    if bucket == 0 and upper_bounds[0] <= 0:
        return float(upper_bounds[0])
    lower = float(upper_bounds[bucket - 1]) if bucket > 0 else 0.0
    below = float(cumulative[bucket - 1]) if bucket > 0 else 0.0
    inside = float(counts[bucket])
    fraction = (rank - below) / inside if inside > 0 else 1.0
    return lower + (float(upper_bounds[bucket]) - lower) * fraction


@dataclass(frozen=True)
class CleanHistogram:
    counts: FloatArray  # (intervals, buckets), zero where an interval has no data
    has_data: BoolArray

    @staticmethod
    def of(data: HistogramData) -> CleanHistogram:
        counts = np.asarray(data.counts, dtype=float)
        if counts.ndim != 2 or counts.shape[1] != np.asarray(data.upper_bounds).size:
            raise ValueError("histogram counts must be (intervals, buckets) with one bound each")
        complete = np.isfinite(counts).all(axis=1)
        clean = np.where(complete[:, None], np.maximum(np.nan_to_num(counts), 0.0), 0.0)
        return CleanHistogram(clean, complete & (clean.sum(axis=1) > 0))

    def summary(self, upper_bounds: FloatArray) -> dict[str, float]:
        pooled = self.counts.sum(axis=0)
        summary = {"observations": float(pooled.sum()), "intervals": float(self.has_data.sum())}
        if summary["observations"] > 0:
            for name, level in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
                summary[name] = histogram_quantile(level, upper_bounds, pooled)
        return summary


@dataclass(frozen=True)
class TailCurve:
    """The baseline's pooled tails at the bucket boundaries: the plug-in behind ``tolerance``.

    Between boundaries only bounds are known. If log S and log F are concave in log latency (true
    for every log-concave density on the log scale: lognormal, gamma, Weibull, ...) the chord is a
    lower bound and the neighbouring secants, extended, an upper bound. Where the empirical
    values are not concave (a bimodal latency) only monotonicity is used: between the two
    boundaries' values. A FAIL uses the lenient end of the bounds and a PASS the strict end.
    """

    log_bounds: FloatArray  # (boundaries,), NaN where a bound is not positive
    log_tails: FloatArray  # (2 * boundaries,): log S(b) for each b, then log F(b)
    usable: BoolArray  # (2 * boundaries,): enough baseline observations on that side of b

    @staticmethod
    def of(boundaries: FloatArray, pooled_counts: FloatArray) -> TailCurve:
        total = pooled_counts.sum()
        below = np.cumsum(pooled_counts)[: boundaries.size]
        above = np.cumsum(pooled_counts[::-1])[::-1][1 : boundaries.size + 1]
        tails = np.concatenate((above, below))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_bounds = np.where(boundaries > 0, np.log(boundaries), np.nan)
            log_tails = np.log(tails / total)
        return TailCurve(log_bounds, log_tails, tails >= PLUGIN_MIN_COUNT)

    def _points(self, side: int) -> tuple[FloatArray, FloatArray]:
        count = self.log_bounds.size
        values = self.log_tails[side * count : (side + 1) * count]
        valid = np.isfinite(self.log_bounds) & np.isfinite(values)
        return self.log_bounds[valid], values[valid]

    def log_margins(self, log_scale: float) -> tuple[Bounds, Bounds]:
        """Per row, bounds on log(tail at b / exp(log_scale) / tail at b), then at b * exp(...):
        ``((lower, upper) slower, (lower, upper) faster)``."""
        count = self.log_bounds.size
        shifted = np.concatenate((self.log_bounds - log_scale, self.log_bounds + log_scale))
        keep = self.usable & np.isfinite(self.log_tails)
        lower, upper = np.empty((2, 2 * count)), np.empty((2, 2 * count))
        for side in (0, 1):
            x, y = self._points(side)
            low, high = _concave_bounds(x, y, shifted)
            tail = self.log_tails[side * count : (side + 1) * count]
            lower[:, side * count : (side + 1) * count] = low.reshape(2, count) - tail
            upper[:, side * count : (side + 1) * count] = high.reshape(2, count) - tail
        lower[:, ~keep], upper[:, ~keep] = np.nan, np.nan
        return (lower[0], upper[0]), (lower[1], upper[1])

    def latency_ratio(self, row: int, tail_ratio: float, clamp: bool) -> float:
        """Latency at b over the baseline's latency where its tail is ``tail_ratio`` times larger:
        the canary's relative change at that quantile (log-log linear between boundaries).
        Beyond the boundaries it is clamped for an estimate, left open (0, inf) for a bound."""
        count = self.log_bounds.size
        above = row < count
        x, y = self._points(0 if above else 1)
        log_bound, tail = self.log_bounds[row % count], self.log_tails[row]
        if x.size < 2 or not (np.isfinite(log_bound) and np.isfinite(tail)):
            return math.nan
        if tail_ratio <= 0 or math.isinf(tail_ratio):
            return math.inf if (tail_ratio > 0) == above else 0.0
        target = tail + math.log(tail_ratio)
        # S falls with latency, F rises: order the points by tail value for np.interp
        order = np.argsort(y, kind="stable")
        open_ends = (math.inf, -math.inf) if above else (-math.inf, math.inf)
        ends = (None, None) if clamp else open_ends
        log_latency = float(np.interp(target, y[order], x[order], left=ends[0], right=ends[1]))
        return math.exp(log_bound - log_latency)


def _concave_bounds(
    x: FloatArray, y: FloatArray, targets: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Bounds on a monotone function known at ``(x, y)``, tighter where it looks concave."""
    if x.size < 2:
        nothing = np.full(targets.shape, np.nan)
        return nothing, nothing
    last = x.size - 2
    index = np.clip(np.searchsorted(x, targets, side="right") - 1, 0, last)
    secant = np.diff(y) / np.diff(x)
    offset = targets - x[index]
    chord = y[index] + secant[index] * offset
    before = np.where(index >= 1, secant[np.maximum(index - 1, 0)], np.inf)
    after = np.where(index < last, secant[np.minimum(index + 1, last)], -np.inf)
    from_left = y[index] + before * offset
    from_right = y[index + 1] - after * (x[index + 1] - targets)
    low_end, high_end = np.minimum(y[index], y[index + 1]), np.maximum(y[index], y[index + 1])
    concave = (before >= secant[index]) & (secant[index] >= after) & (index.size > 0) & (last > 0)
    with np.errstate(invalid="ignore"):
        ceiling = np.minimum(
            np.where(index >= 1, from_left, np.inf), np.where(index < last, from_right, np.inf)
        )
        upper = np.where(concave, np.clip(ceiling, chord, high_end), high_end)
        lower = np.where(concave, chord, low_end)
    inside = (targets >= x[0]) & (targets <= x[-1])
    return np.where(inside, lower, np.nan), np.where(inside, upper, np.nan)


class SequentialHistogramJudge:
    """Anytime-valid comparison of latency histograms, tested at every bucket boundary."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        spec = _spec(metric)
        if not isinstance(baseline, HistogramData) or not isinstance(canary, HistogramData):
            raise TypeError("the sequential histogram judge needs HistogramData for both versions")
        baseline, canary = on_common_buckets(baseline, canary)
        bounds = np.asarray(baseline.upper_bounds, dtype=float)
        if bounds.size == 0:
            empty = [side.upper_bounds.size == 0 for side in (baseline, canary)]
            which = " and ".join(v for v, e in zip(("baseline", "canary"), empty, strict=True) if e)
            reason = f"no buckets for {metric.name} from {which or 'both versions in common'}"
            return _quiet(Outcome.INCONCLUSIVE, Reason.NO_DATA, reason, ({}, {}))
        base, can = CleanHistogram.of(baseline), CleanHistogram.of(canary)
        if base.counts.shape != can.counts.shape:
            raise ValueError("baseline and canary histograms are not on the same intervals")
        sides = (base.summary(bounds), can.summary(bounds))
        missing = _no_data(metric.name, sides)
        if missing is not None:
            return missing
        joint = base.has_data & can.has_data
        count = bounds.size - 1  # finite boundaries; the last bucket is +Inf
        if count == 0:
            reason = f"{metric.name} has a single bucket: nothing to compare"
            return _quiet(Outcome.INCONCLUSIVE, Reason.EVIDENCE, reason, sides)
        can_rows, base_rows = _split(can.counts[joint], count), _split(base.counts[joint], count)
        fit = fit_rate_ratio(
            can_rows, base_rows, can.counts[joint].sum(axis=1), base.counts[joint].sum(axis=1)
        )
        curve = TailCurve.of(bounds[:count], base.counts[base.has_data].sum(axis=0))
        exposure = fit.canary_exposure.sum() + fit.baseline_exposure.sum()
        at_or_below = fit.pooled_hits[count:].sum(axis=1) / max(exposure, 1.0)
        low_q, high_q = PASS_QUANTILES
        required = (at_or_below >= low_q) & (at_or_below <= high_q)
        e_slower, e_faster, pass_slower, pass_faster = boundary_log_e_values(
            fit,
            curve,
            metric.tolerance,
            metric.direction,
            pass_rows=np.tile(required, 2) if spec.early_pass else None,
            log_cap=INTERVAL_CAP * math.log(1 / context.alpha),
        )
        halves = math.log(2.0)
        pass_high = np.logaddexp(pass_slower[:count], pass_slower[count:]) - halves
        pass_low = np.logaddexp(pass_faster[:count], pass_faster[count:]) - halves
        rows = math.log(2.0 * count)
        evidence = Evidence(
            log_e_high=float(_logsumexp(e_slower[None, :])[0] - rows),
            log_e_low=float(_logsumexp(e_faster[None, :])[0] - rows),
            log_pass_high=float(pass_high[required].min()) if required.any() else -math.inf,
            log_pass_low=float(pass_low[required].min()) if required.any() else -math.inf,
            samples=int(joint.sum()),
            events=float(exposure),
        )
        decision = decide(evidence, metric.direction, spec, context)
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
        return self._judgement(
            fit,
            curve=curve,
            row=row,
            bounds=bounds,
            decision=decision,
            evidence=evidence,
            sides=sides,
            metric=metric,
            context=context,
        )

    @staticmethod
    def _judgement(
        fit: RateRatioFit,
        *,
        curve: TailCurve,
        row: int,
        bounds: FloatArray,
        decision: Decision,
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
        allowed = _allowed(metric.direction, metric.tolerance)
        if math.isfinite(latency):
            change = f"{abs(latency - 1):.1%} {'slower' if latency >= 1 else 'faster'}"
            subject = (
                f"canary {metric.name} {change} around p{100 * level:.3g} "
                f"({_percent(canary_share)} vs {_percent(baseline_share)} of observations {where} "
                f"{bound:.3g}, {allowed} latency)"
            )
        else:
            subject = (
                f"canary {metric.name} p99 {sides[1].get('p99', math.nan):.3g} vs baseline "
                f"{sides[0].get('p99', math.nan):.3g} ({allowed} latency)"
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


def boundary_log_e_values(
    fit: RateRatioFit,
    curve: TailCurve,
    tolerance: float,
    direction: str,
    *,
    pass_rows: BoolArray | None,
    log_cap: float,
) -> FloatArray:
    """Per row, log e-values against slower, against faster, that it is not slower, that it is
    not faster: shape (4, rows). Families the direction does not need, and the PASS families
    outside ``pass_rows`` (None: no early PASS), stay at 0 (e-value 1)."""
    rows = fit.canary_hits.shape[0]
    above = np.arange(rows) < rows // 2
    if tolerance > 0:
        (slow_low, slow_high), (fast_low, fast_high) = curve.log_margins(math.log1p(tolerance))
    else:  # every margin is exactly 1: no plug-in
        slow_low = slow_high = fast_low = fast_high = np.zeros(rows)
    # Above b the lenient null is the larger ratio, at or below b the smaller one. A FAIL tests
    # the lenient null, a PASS the strict one.
    families = (
        (np.where(above, slow_high, slow_low), above),
        (np.where(above, fast_low, fast_high), ~above),
        (np.where(above, slow_low, slow_high), ~above),
        (np.where(above, fast_high, fast_low), above),
    )
    every, passing = np.arange(rows), np.flatnonzero(pass_rows if pass_rows is not None else [])
    wanted = (
        (0, every) if direction != "decrease_is_bad" else None,
        (1, every) if direction != "increase_is_bad" else None,
        (2, passing) if direction != "decrease_is_bad" else None,
        (3, passing) if direction != "increase_is_bad" else None,
    )
    chosen = [(family, subset) for family, subset in filter(None, wanted) if subset.size]
    log_e = np.zeros((4, rows))
    if not chosen:
        return log_e
    values = fit.log_e_values(
        np.concatenate([families[family][0][subset] for family, subset in chosen]),
        np.concatenate([families[family][1][subset] for family, subset in chosen]),
        np.concatenate([subset for _, subset in chosen]),
        log_cap=log_cap,
    )
    offset = 0
    for family, subset in chosen:
        log_e[family, subset] = values[offset : offset + subset.size]
        offset += subset.size
    return log_e


def _split(counts: FloatArray, boundaries: int) -> FloatArray:
    """Rows ``[above b_0 .. above b_{B-1}, at-or-below b_0 .. b_{B-1}]`` by interval."""
    below = np.cumsum(counts, axis=1)[:, :boundaries]
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1 : boundaries + 1]
    stacked: FloatArray = np.concatenate((above.T, below.T))
    return stacked


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
