"""Late onset: the FAIL e-value as a mixture over the interval at which a regression began.

The window's e-process (``RateRatioFit.log_e_values``) bets on one θ for every interval since the
window began, so the clean intervals before a late regression dilute it: x3 from interval 17 of a
5%-weight canary failed a median 18 intervals after it began, x2 after 31. Here every start s also
gets a copy of that e-process restarted at s, and the FAIL e-value is their average under a prior
over s fixed in advance. Early PASS keeps the window's e-process: it certifies the whole window.

Construction. For a start s >= 2 let ``E(s)_t`` be 1 before interval s and, from s on, the
θ-mixture (the same prior over the log-θ grid) of ``Π_{i=s..t} (L_i(θ) / L_i(θ0))^{w_i}``: the
window's e-process applied to intervals s..t only, winsorised alike, interval s capped as a lone
interval (as a window's first is). ``E(1)`` is the window's e-process itself. The FAIL e-value is
``M_t = Σ_s q(s) E(s)_t`` with ``q(1) = 1/2`` and ``q(s) = (s - 1)^(-3/2) / (2 ζ(3/2))`` for
s >= 2; starts after t are still at 1 and count with their weight, so the weights sum to exactly
1 over all s >= 1, whatever the window's length. Intervals are those compared (with data in both
versions), counted from 1.

Tempering. A restart has no long clean past to dilute a run of bursts, so its burst weights
``w_i`` may discount more than the window's: squared residuals count up to 6 SD (the window's 4)
and an interval up to 100-fold (the window's 25), the window's limits keeping one corrupt scrape
from costing it much power. With the window's limits restarts caught x3 at interval 17 one
interval sooner, but false aborts under 100%-CV bursts on 2 canary pods rose from 5% to 9%.

Validity. Under the null (θ_i <= θ0 at every interval, constant or not, under the conditional
Poisson model) each ``E(s)`` is a nonnegative supermartingale in the intervals compared, starting
at 1: constant before s, and from s on each factor has conditional expectation at most 1 given
the past, because its tempering weight and winsorising cap depend on earlier intervals only (the
argument of ``analyzer.judges.evalues``; they may use intervals before s, which are past too). An
average of such supermartingales with fixed weights summing to 1 is one too (conditional
expectation is linear, and monotone convergence takes it through the countable sum), starting at
1, so Ville's inequality gives ``P(M_t >= 1/alpha for some t) <= alpha`` over an unbounded
horizon: a false abort, with the judge called at every interval of an analysis window of any
length, has probability at most alpha. This is not an e-detector in the average-run-length sense.
The Shiryaev-Roberts sum (every start at weight 1) pays nothing for a late start but only
controls the mean time to a false alarm: for a crossing within N intervals its bound is N·alpha
(Doob; its mean at t is t). Here a start at s costs ``log(1/q(s))`` nats instead: 1.7 at s = 2,
5.8 at s = 17, 7.8 at s = 60, and a regression from the first interval pays ``log 2``, well
under an interval of delay. At the latest of t intervals only the starts of
``evaluated_starts(t)`` are computed: the first, each of the latest 16, older ones at spacing 2
for ages 16-31, 4 for 32-63 and so on (32 starts at t = 60, 40 at t = 120). Leaving terms out of
a nonnegative sum lowers it, and a lower bound of M cannot reach 1/alpha unless M does, so the
bound holds as stated; so does evaluating at the latest interval only (the judge is stateless).
The bursts defences stay approximate, as in ``evalues``; measured figures in ``sequential``.

Cost: per bet, start and grid point on the alternative's side, one sum over intervals, computed
as a matrix product: about 1 ms for the 22 rows of 12 Prometheus buckets at 60 intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import zeta

from analyzer.judges.evalues import (
    INTERVAL_CAP,
    LOG_E_CAP,
    LOG_RATIO_GRID,
    Bets,
    BoolArray,
    IntArray,
    RateRatioFit,
    burst_weights,
    logsumexp,
)
from analyzer.sources.base import FloatArray

WHOLE_WINDOW_WEIGHT = 0.5  # q(1): the e-process that starts with the window
START_DECAY = 1.5  # q(s) ∝ (s - 1) ** -START_DECAY for later starts: summable, with a heavy tail
_LATER_NORMALISER = float(zeta(START_DECAY))
DENSE_AGES = 16  # every start among the latest this many intervals is evaluated
RESTART_RESIDUAL_CAP = 36.0  # squared residuals beyond 6 SD count as 6 SD when estimating κ
RESTART_DISPERSION_CAP = 100.0  # no interval of a restart is discounted more than this


@cache
def start_weights(count: int) -> tuple[FloatArray, float]:
    """q(1) .. q(count), and the weight of all starts after ``count`` (still at e-value 1)."""
    later = np.arange(1, max(count, 1), dtype=float) ** -START_DECAY
    later *= (1 - WHOLE_WINDOW_WEIGHT) / _LATER_NORMALISER
    weights = np.concatenate(([WHOLE_WINDOW_WEIGHT], later))[:count]
    weights.setflags(write=False)
    return weights, max(1.0 - float(weights.sum()), 0.0)


@cache
def evaluated_starts(count: int) -> IntArray:
    """The starts (0-based) worth computing at the latest of ``count`` intervals: the window's
    first, every one of the latest ``DENSE_AGES``, and older ones ever more sparsely, about
    ``DENSE_AGES / 2`` per doubling of their age."""
    ages = np.arange(max(count - 1, 0))
    octave = np.floor(np.log2(np.maximum(ages, 1))).astype(np.intp)
    step = 2 ** np.maximum(octave - int(math.log2(DENSE_AGES)) + 1, 0)
    kept = (ages < DENSE_AGES) | (ages % step == 0)
    starts: IntArray = np.unique(np.concatenate(([0], count - 1 - ages[kept])))
    starts.setflags(write=False)
    return starts


@dataclass(frozen=True)
class _Schedule:
    """What the latest of ``count`` intervals needs of the starts: computed once per count."""

    restarts: IntArray  # evaluated starts after the first
    from_start: FloatArray  # (restarts, intervals): 1 where an interval counts for a restart
    log_weights: FloatArray  # (1 + restarts + 1,): the first start, the restarts, those to come
    labels: IntArray  # (1 + restarts,): the starts the log_weights before the last stand for

    @staticmethod
    @cache
    def of(count: int) -> _Schedule:
        restarts = evaluated_starts(count)[1:]
        weights, later = start_weights(count)
        labels = np.r_[0, restarts]
        with np.errstate(divide="ignore"):
            log_weights = np.log(np.r_[weights[labels], later])
        from_start = (np.arange(count) >= restarts[:, None]).astype(float)
        for array in (restarts, from_start, log_weights, labels):
            array.setflags(write=False)
        return _Schedule(restarts, from_start, log_weights, labels)


@dataclass(frozen=True)
class OnsetEvidence:
    log_e: FloatArray  # (hypotheses,): log of the mixture over starts, or the window's e-value
    start: IntArray  # (hypotheses,): the interval (0-based) whose restart weighs most


def tolerance_evidence(fit: RateRatioFit, tolerance: float, alpha: float) -> OnsetEvidence:
    """The four hypotheses a one-row test decides on, in this order: the canary is above the
    tolerance, below it (each from any start), not above it, not below it (the window's
    e-values, for an early PASS). ``INTERVAL_CAP`` bounds each interval's bet at alpha."""
    margin = math.log1p(tolerance)
    return log_e_values_any_start(
        fit,
        np.array([margin, -margin, margin, -margin]),
        np.array([True, False, False, True]),
        np.zeros(4, dtype=np.intp),
        log_cap=INTERVAL_CAP * math.log(1 / alpha),
        restart=np.array([True, True, False, False]),
    )


def log_e_values_any_start(
    fit: RateRatioFit,
    log_null: FloatArray,
    above: BoolArray,
    rows: IntArray | None = None,
    log_cap: float = math.inf,
    restart: BoolArray | None = None,
) -> OnsetEvidence:
    """The mixture over starts of ``fit.log_e_values(log_null, above, rows, log_cap)``: the
    window's own e-process, and the restarts of ``evaluated_starts`` (a lower bound). Hypotheses
    outside ``restart`` (default: none outside) keep the window's e-value."""
    rows = np.arange(log_null.size) if rows is None else rows
    whole = fit.log_e_values(log_null, above, rows, log_cap)
    log_e, start = whole.copy(), np.zeros(log_null.size, dtype=np.intp)
    asked = np.flatnonzero(restart) if restart is not None else np.arange(log_null.size)
    if fit.canary_exposure.size < 2 or asked.size == 0:  # no start after the first yet
        return OnsetEvidence(log_e, start)
    schedule = _Schedule.of(fit.canary_exposure.size)
    tempering = burst_weights(
        fit.canary_hits,
        fit.pooled_hits,
        fit.canary_exposure,
        fit.baseline_exposure,
        residual_cap=RESTART_RESIDUAL_CAP,
        dispersion_cap=RESTART_DISPERSION_CAP,
        prior=fit.burst_prior,
    )
    bets = fit.bets(log_null[asked], above[asked], rows[asked], log_cap, weights=tempering)
    # Bets on one row share its likelihood: one pass over the grid. Else one per side, each
    # over the grid points beyond its nulls only.
    if np.unique(bets.rows).size <= 1:
        groups = [np.arange(bets.index.size)]
    else:
        groups = [np.flatnonzero(bets.above), np.flatnonzero(~bets.above)]
    for chosen in filter(len, groups):
        index = asked[bets.index[chosen]]
        weighted = np.hstack(
            (
                whole[index, None],
                _log_e_by_start(fit, bets, chosen, schedule, tempering),
                np.zeros((chosen.size, 1)),
            )
        )
        weighted += schedule.log_weights
        log_e[index] = np.clip(logsumexp(weighted), -LOG_E_CAP, LOG_E_CAP)
        start[index] = schedule.labels[np.argmax(weighted[:, :-1], axis=1)]
    return OnsetEvidence(log_e, start)


def _log_e_by_start(
    fit: RateRatioFit, bets: Bets, chosen: IntArray, schedule: _Schedule, tempering: FloatArray
) -> FloatArray:
    """log E(s) at the latest interval for the bets ``chosen``, for each restart s of the
    schedule, tempered by ``tempering`` (rows, intervals): shape (chosen, restarts)."""
    starts = schedule.restarts
    prior = bets.prior[chosen]
    # only the grid points that some of them bet on
    support = np.flatnonzero(prior.any(axis=0))
    columns = slice(int(support[0]), int(support[-1]) + 1)
    null, weights, capped = bets.log_null[chosen], bets.weights[chosen], bets.capped[chosen]
    # From each start s to the latest interval, the sum of each interval's tempered
    # log-likelihood ratio, in parts: w y (λ - λ0) - w k log(θ n_c + n_b) + w k log(θ0 n_c + n_b)
    counted = _from_each_start(weights * capped, starts)
    # at its own start, an interval is capped as a lone interval
    counted += (weights * (bets.lone[chosen] - capped))[:, starts]
    at_null = _from_each_start(
        weights * bets.pooled[chosen] * bets.log_null_exposure[chosen], starts
    )
    # The θ-dependent part, Σ_{i >= s} w k log(θ n_c + n_b): the same for all bets on a row.
    rows, inverse = np.unique(bets.rows[chosen], return_inverse=True)
    row_weights = tempering[rows] * fit.pooled_hits[rows]
    cube = np.matmul(schedule.from_start * row_weights[:, None, :], fit.exposure_terms[:, columns])
    if rows.size != chosen.size or np.any(inverse.ravel() != np.arange(rows.size)):
        cube = cube[inverse.ravel()]
    with np.errstate(divide="ignore"):
        np.subtract(np.log(prior[:, None, columns]), cube, out=cube)
    cube += counted[:, :, None] * LOG_RATIO_GRID[columns]
    # log Σ_θ, shifted by the peak: no overflow, and the largest term cannot underflow
    peak = cube.max(axis=2, keepdims=True)
    cube -= peak
    np.exp(cube, out=cube)
    by_start: FloatArray = peak[:, :, 0] + np.log(cube.sum(axis=2))
    return by_start - counted * null[:, None] + at_null


def _from_each_start(values: FloatArray, starts: IntArray) -> FloatArray:
    """Along axis 1, the sums from each of ``starts`` to the end."""
    prefix = np.cumsum(values, axis=1)
    suffix: FloatArray = prefix[:, -1:] - prefix + values
    return suffix[:, starts]
