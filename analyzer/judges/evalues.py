"""The e-value engine behind the sequential judge: rate-ratio mixture likelihood ratios.

It lives apart from the judges because the counts judge and every bucket boundary of the
histogram judge run the same test, and because its validity argument is the part that needs
reviewing on its own. We follow Lindon & Malek, "Anytime-valid inference for multinomial count
data" (NeurIPS 2022) and Lindon, Sanden & Shirikian, "Rapid regression detection in software
deployments through sequential testing" (KDD 2022): mixture likelihood ratios.

Conditioning. In interval t the versions serve ``n_c``, ``n_b`` requests and fail ``y_c``, ``y_b``.
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
tolerance, even one varying between intervals, does not abort. The alternative below a null
mirrors it.

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
Measured for this e-process at alpha = 0.05 on canaries exactly at the tolerance, with 2 canary
pods whose error rates burst by 50-100% (CV) every minute: about 4-5% false aborts, against
58-77% with neither defence and 12-19% with tempering alone; on Poisson data both cost about one
interval of delay. Constant pod-to-pod differences are not corrected: if the one canary pod sits
on a slow node its users are worse off, and ``tolerance`` is the allowance for that. Strong
version-level noise on the baseline itself biases the conditional share (E[1/noise] > 1: 11%
false aborts at a 45% CV on both versions); a baseline spread over many pods averages it out.

Confidence sequence. ``RateRatioFit.confidence_sequence`` is the set of θ whose likelihood ratio
against the two-sided mixture has not reached ``1/alpha``, widened to the neighbouring grid points:
anytime-valid at level 1 - alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer.sources.base import FloatArray

BoolArray = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
IntArray = np.ndarray[tuple[int, ...], np.dtype[np.intp]]

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
LOG_E_CAP = 700.0  # exp(700) is still a finite float


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


def logsumexp(values: FloatArray) -> FloatArray:
    """Row-wise log(sum(exp)), -inf for an all -inf row."""
    peak = values.max(axis=1)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        total: FloatArray = safe + np.log(np.exp(values - safe[:, None]).sum(axis=1))
    return total


@dataclass(frozen=True)
class Bets:
    """The hypotheses that bet, prepared: one per row of each array, intervals along axis 1."""

    index: IntArray  # (bets,): position among the hypotheses asked about
    rows: IntArray  # (bets,): the row each tests
    log_null: FloatArray  # (bets,)
    above: BoolArray  # (bets,): alternative above the null, else below
    prior: FloatArray  # (bets, grid): mixture weights, zero on the null's side
    hits: FloatArray  # (bets, intervals): the canary's counts as observed
    pooled: FloatArray  # (bets, intervals)
    weights: FloatArray  # (bets, intervals): burst tempering
    log_null_exposure: FloatArray  # (bets, intervals): log(θ0 n_c + n_b)
    capped: FloatArray  # (bets, intervals): winsorised, lone intervals only
    lone: FloatArray  # (bets, intervals): winsorised as if each interval came first


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
    burst_prior: float  # κ0, the burst noise assumed before any interval is seen
    exposure_terms: FloatArray  # (intervals, grid): log(θ n_c + n_b)
    log_likelihood: FloatArray  # (rows, grid): tempered, up to a constant per row
    peak: FloatArray  # (rows,): its maximum over the grid
    shape: FloatArray  # (rows, grid): exp(log_likelihood - peak), in [0, 1]

    def bets(
        self,
        log_null: FloatArray,
        above: BoolArray,
        rows: IntArray | None = None,
        log_cap: float = math.inf,
        weights: FloatArray | None = None,
    ) -> Bets:
        """The hypotheses that bet, with what every e-value of them needs (see ``Bets``).

        Hypothesis h tests row ``rows[h]`` (default: row h); ``above`` says its alternative is
        θ > null, else θ < null. A NaN null (a margin that could not be estimated), a null with
        no grid point beyond it and a row without hits (a flat likelihood) do not bet: their
        e-value is exactly 1. ``weights`` replaces the fit's burst weights (rows, intervals).
        """
        rows = np.arange(log_null.size) if rows is None else rows
        size = LOG_RATIO_GRID.size
        testable = np.isfinite(log_null)
        null = np.where(testable, log_null, 0.0)
        first_above = np.searchsorted(LOG_RATIO_GRID, null, side="right")
        last_below = np.searchsorted(LOG_RATIO_GRID, null, side="left") - 1
        has_alternative = np.where(above, first_above < size, last_below >= 0)
        index = np.flatnonzero(
            testable & has_alternative & (self.pooled_hits.sum(axis=1) > 0)[rows]
        )
        tested = rows[index]
        prior = _PRIOR_ONE_SIDED[np.where(above, first_above, size + last_below)[index]]
        null, above = null[index], above[index]
        hits, pooled = self.canary_hits[tested], self.pooled_hits[tested]
        weights = (self.weights if weights is None else weights)[tested]
        canary_part = np.exp(null)[:, None] * self.canary_exposure
        null_share = canary_part / (canary_part + self.baseline_exposure)
        capped, lone = _winsorised(hits, pooled, weights, null_share, above=above, log_cap=log_cap)
        return Bets(
            index=index,
            rows=tested,
            log_null=null,
            above=above,
            prior=prior,
            hits=hits,
            pooled=pooled,
            weights=weights,
            log_null_exposure=np.log(canary_part + self.baseline_exposure),
            capped=capped,
            lone=lone,
        )

    def log_e_values(
        self,
        log_null: FloatArray,
        above: BoolArray,
        rows: IntArray | None = None,
        log_cap: float = math.inf,
    ) -> FloatArray:
        """Mixture log e-value against ``θ = exp(log_null)`` over the whole window, one per
        hypothesis (see ``bets``). With ``log_cap``, no single interval may raise the log e-value
        by much more than that (see ``_winsorised``).
        """
        bets = self.bets(log_null, above, rows, log_cap)
        log_e = np.zeros(log_null.size)
        if bets.index.size == 0:
            return log_e
        tested, prior, null = bets.rows, bets.prior, bets.log_null
        hits, pooled, weights = bets.hits, bets.pooled, bets.weights
        # y log θ - k log(θ n_c + n_b) at the null, per interval, up to a θ-free constant
        null_terms = hits * null[:, None] - pooled * bets.log_null_exposure
        # Winsorised counts (see _winsorised): only the canary's count changes, so the
        # log-likelihood tilts by -(θ - null) * (count removed).
        removed = (weights * (hits - bets.capped)).sum(axis=1)
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
                log_mass[tiny] = logsumexp(np.log(prior[tiny]) + relative + tilt)
        values = self.peak[tested] - (weights * null_terms).sum(axis=1) + log_mass
        log_e[bets.index] = np.clip(values, -LOG_E_CAP, LOG_E_CAP)
        return log_e

    def ratio_estimate(self, since: int = 0) -> FloatArray:
        """Mantel-Haenszel rate ratio per row, from interval ``since`` on: consistent under drift
        and changing weights."""
        kept = slice(since, None)
        total = self.canary_exposure[kept] + self.baseline_exposure[kept]
        canary = (self.canary_hits[:, kept] * self.baseline_exposure[kept] / total).sum(axis=1)
        against = self.pooled_hits[:, kept] - self.canary_hits[:, kept]
        baseline = (against * self.canary_exposure[kept] / total).sum(axis=1)
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


def _winsorised(
    hits: FloatArray,
    pooled: FloatArray,
    weights: FloatArray,
    null_share: FloatArray,
    *,
    above: BoolArray,
    log_cap: float,
) -> tuple[FloatArray, FloatArray]:
    """Canary counts winsorised so that a lone interval moves the log e-value by little more
    than ``log_cap``: at ``√(2 log_cap / w)`` standard deviations from the null's expected count,
    towards the alternative only, unless the interval before was beyond that too. Returned twice:
    with that exception, and without it (every interval capped, as the first of an e-process
    restarted there would be).

    For an alternative above the null every component's likelihood ratio grows with the
    canary's count, so lowering a count lowers every factor; the cap depends only on the
    interval's total, the past and the null. Each component therefore stays a supermartingale:
    validity is exact. A single burst, or one bad scrape, cannot abort on its own; a second bad
    interval in a row counts in full, so a regression that persists is not held back.
    """
    if not math.isfinite(log_cap):
        return hits, hits
    expected = pooled * null_share
    spread = np.sqrt(2 * log_cap * expected * (1 - null_share) / weights)
    outside = np.where(above[:, None], hits > expected + spread, hits < expected - spread)
    follows = np.zeros_like(outside)
    follows[:, 1:] = outside[:, :-1]
    limited: FloatArray = np.where(
        above[:, None], np.minimum(hits, expected + spread), np.maximum(hits, expected - spread)
    )
    capped: FloatArray = np.where(follows, hits, limited)
    return capped, limited


def burst_weights(
    canary_hits: FloatArray,
    pooled_hits: FloatArray,
    canary_exposure: FloatArray,
    baseline_exposure: FloatArray,
    *,
    residual_cap: float = BURST_RESIDUAL_CAP,
    dispersion_cap: float = DISPERSION_CAP,
    prior: float = BURST_PRIOR,
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
            np.minimum((canary_hits - pooled_hits * share) ** 2 / information, residual_cap)
            - 1
            - information / past_information,
            0.0,
        )
    counted = np.where(usable, information, 0.0)
    seen_excess = np.cumsum(excess, axis=1) - excess
    seen_information = np.cumsum(counted, axis=1) - counted
    burst = np.maximum(
        (prior * BURST_PRIOR_INFORMATION + seen_excess)
        / (BURST_PRIOR_INFORMATION + seen_information),
        0.0,
    )
    weights: FloatArray = 1 / np.minimum(1 + burst * information, dispersion_cap)
    return weights


def fit_rate_ratio(
    canary_hits: FloatArray,
    baseline_hits: FloatArray,
    canary_exposure: FloatArray,
    baseline_exposure: FloatArray,
    *,
    burst_prior: float = BURST_PRIOR,
    residual_cap: float = BURST_RESIDUAL_CAP,
) -> RateRatioFit:
    """Tempered log-likelihood of θ on the grid for each row; exposures must be > 0.
    ``burst_prior`` and ``residual_cap``: those of ``burst_weights``."""
    pooled = canary_hits + baseline_hits
    weights = burst_weights(
        canary_hits,
        pooled,
        canary_exposure,
        baseline_exposure,
        prior=burst_prior,
        residual_cap=residual_cap,
    )
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
        burst_prior=burst_prior,
        exposure_terms=terms,
        log_likelihood=log_likelihood,
        peak=peak,
        shape=np.exp(log_likelihood - peak[:, None]),
    )
