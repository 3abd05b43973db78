"""An oracle decider: what a test that knows the truth achieves on exactly the same data.

It is a yardstick for what is achievable on this data, not a policy: it knows each scenario's
true regression (kind, size, onset) and the simulator's noise model, and runs the likelihood-ratio
test for that kind on that kind's sufficient statistic — the true alternative against the nearest
null the default policy allows (errors x1.25, latency +5%, memory growing 20% an hour). A policy
that matches it on a row cannot do much better there; one far below it leaves power on the table.

Each test is a likelihood ratio of the true alternative against the null boundary, accumulated
minute by minute from the first minute Canarist looks at (minute 1, ``begin_after: 1m``; or the
known onset, if later: before it the truth is inside the null and adds no evidence), aborting when
it reaches 1/alpha; it never accepts early, and a run that never reaches the bound is promoted at
minute 40 (a one-sided, truncated mixture SPRT). The alternative is a mixture: the true
regression times the canary's pod-to-pod difference, which the oracle knows in distribution (the
simulator's pod factors) but not in value, cut where it would cross the null. A canary whose two
pods happen to be 3% faster really does have only a +7% regression, and a plain SPRT of +10%
against +5% would miss it. Under the null the ratio is a nonnegative martingale (a
supermartingale for anything better), so by Ville's inequality the chance of ever aborting is at
most alpha, however many looks. Minutes without a scrape of either version add nothing. The
canary's warm-up is allowed by every null (and is in every alternative): a canary without one is
only better than the null.

- errors: the canary's 5xx given the minute's 5xx of both versions are binomial with success share
  n_c rho / (n_c rho + n_b) (rho the canary/baseline rate ratio, n the requests): rho = size
  times the pods' spread against 1.25. Shared drift and bursts cancel; the pods' per-minute error
  jitter moves the share's logit by a normal of known variance; both are integrated out
  (Gauss-Hermite).
- latency (every request slower): the per-minute log ratio of mean latencies from the latency sums,
  D = log(S_c/n_c) - log(S_b/n_b), Gaussian with variance (e^(sigma^2) - 1)(1/n_c + 1/n_b) plus
  the pods' per-minute jitter, and mean log(1.05) against N(log(1 + size), pod spread): a Gaussian
  mixture, in closed form.
- tail: the canary's requests above one bucket bound given both versions' requests above it
  (binomial as for errors), with the ratio of exceedance probabilities the true tail implies
  against the one a 5% slower canary would have. The data has only bucket counts, so "the count
  above the true baseline p99 (0.256 s)" becomes the count above the bound with the most
  information per request under the true alternative (0.25 s or 0.5 s here).
- memory: d = log(canary / baseline memory) per minute, Gaussian with known noise; its mean grows
  as log(1 + size k), k the minutes since onset, against k log(1.2) / 60: growth relative to the
  baseline of 20% an hour, what the default policy's trend judge allows (``tolerance: 0.2``,
  ``horizon: 1h``; change ``NULL_MEMORY_LOG_SLOPE`` with it). The level and the warm-up's fill-up
  curve (present or not) are nuisance regressors: the ratio is that of the residuals after
  projecting both out (the maximal invariant), which keeps Ville's bound. The pods' memory
  factors only move the level, so no mixture: a plain SPRT of the true growth.

On healthy and tolerable scenarios the oracle does not know there is nothing: it runs all four
tests at alpha / 4 each against the smallest regression of each kind in the benchmark
(``WATCHED``), so its false-abort rate is measured too. Constant pod-to-pod differences, and a slow
pod that lands on a canary pod, are not noise to it: they really make this canary's traffic slower
or more erring than the baseline's, and when that exceeds the tolerance the oracle aborts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_expit, log_ndtr, logsumexp, ndtr, ndtri

from analyzer.sources.base import FloatArray
from benchmarks.latency import BUCKET_BOUNDS, Z90, Z99, LatencyShape
from benchmarks.references import ReferenceDecision
from benchmarks.simulator import (
    CANARY_PODS,
    ERROR_JITTER_SD,
    LATENCY_JITTER_SD,
    LATENCY_MEDIAN,
    LATENCY_SIGMA,
    MEMORY_NOISE,
    MINUTES,
    POD_ERROR_SD,
    POD_LATENCY_SD,
    PODS,
    WARMUP_ERRORS,
    WARMUP_LATENCY,
    WARMUP_MEMORY_FLOOR,
    WARMUP_MEMORY_TAU,
    Regression,
    SimulatedRun,
    warmup_profile,
)

ALPHA = 0.01  # the default policy's analysis.alpha
FIRST_MINUTE = 1  # the first minute Canarist looks at: begin_after 1m
NULL_ERROR_RATIO = 1.25
NULL_LATENCY_FACTOR = 1.05
NULL_MEMORY_LOG_SLOPE = math.log1p(0.20) / 60  # per minute: +20% an hour against the baseline
WATCHED = (
    Regression("errors", 1.5),
    Regression("latency", 0.10),
    Regression("tail", 1.5),
    Regression("memory", 0.01),
)
"""The alternatives tested when the oracle is told nothing is wrong: the smallest of each kind."""

_MINUTE_INDEX = np.arange(MINUTES, dtype=np.float64)
_PODS_FACTOR = 1 / CANARY_PODS + 1 / (PODS - CANARY_PODS)  # per-pod variance -> canary - baseline
_LATENCY_CV2 = math.expm1(LATENCY_SIGMA**2)  # Var / mean^2 of one request's latency
_LATENCY_JITTER = LATENCY_JITTER_SD**2 * _PODS_FACTOR
_ERROR_JITTER = ERROR_JITTER_SD**2 * _PODS_FACTOR
_MEMORY_VARIANCE = MEMORY_NOISE**2 * _PODS_FACTOR
_QUADRATURE_NODES = 20
_WARM_ERRORS = 1.0 + WARMUP_ERRORS * warmup_profile()  # the canary's error factor, per minute
_WARM_LATENCY = np.log1p(WARMUP_LATENCY * warmup_profile())  # its log latency shift


def oracle(run: SimulatedRun, truth: Regression | None) -> ReferenceDecision:
    """Abort or promote ``run``; ``truth`` is the scenario's regression, None for healthy and
    tolerable scenarios (then every kind of ``WATCHED`` is tested at alpha / 4)."""
    watched = (truth,) if truth is not None else WATCHED
    bound = math.log(len(watched) / ALPHA)
    first: tuple[int, str] | None = None
    for regression in watched:
        evidence = log_likelihood_ratio(run, regression)
        crossed = np.flatnonzero(evidence >= bound)
        if crossed.size and (first is None or crossed[0] < first[0]):
            minute = int(crossed[0])
            shown = f"{describe(regression)}: log LR {evidence[minute]:.2f} >= {bound:.2f}"
            first = (minute, shown)
    if first is None:
        return ReferenceDecision("promote", float(MINUTES), "no test reached 1/alpha")
    minute, reason = first
    return ReferenceDecision("abort", float(minute + 1), f"{reason} after minute {minute}")


def describe(regression: Regression) -> str:
    """The test in a few words, e.g. ``errors x2 vs x1.25``."""
    kind, size = regression.kind, regression.size
    allowed = f"+{NULL_LATENCY_FACTOR - 1:.0%}"
    if kind == "errors":
        return f"errors x{size:g} vs x{NULL_ERROR_RATIO:g}"
    if kind == "latency":
        return f"latency +{size:.0%} vs {allowed}"
    if kind == "tail":
        slowest = regression.slowest
        what = f"slowest {slowest:.0%} x{size:g}" if slowest else f"p99 x{size:g}"
        return f"tail {what} (above {tail_bound(regression):g} s) vs {allowed}"
    if kind == "memory":
        return f"memory +{size:.1%}/min vs +{math.expm1(NULL_MEMORY_LOG_SLOPE):.2%}/min"
    raise ValueError(f"the oracle has no test for a regression of kind {kind!r}")


def log_likelihood_ratio(run: SimulatedRun, regression: Regression) -> FloatArray:
    """The test's log likelihood ratio after each minute (0 before it starts)."""
    tests = {"errors": _errors, "latency": _latency, "tail": _tail, "memory": _memory}
    if regression.kind not in tests:
        raise ValueError(f"the oracle has no test for a regression of kind {regression.kind!r}")
    return tests[regression.kind](run, regression)


def _scraped(run: SimulatedRun) -> np.ndarray:
    """Minutes Canarist looks at in which both versions were scraped."""
    lost = run.canary.missing | run.canary.nan | run.baseline.missing | run.baseline.nan
    scraped: np.ndarray = ~lost & (_MINUTE_INDEX >= FIRST_MINUTE)
    return scraped


def _usable(run: SimulatedRun, regression: Regression) -> np.ndarray:
    """Minutes whose requests add evidence: scraped, served, and from the onset on."""
    started = regression.onset_minute <= _MINUTE_INDEX
    served = (run.canary.requests > 0) & (run.baseline.requests > 0)
    usable: np.ndarray = _scraped(run) & started & served
    return usable


def _errors(run: SimulatedRun, regression: Regression) -> FloatArray:
    canary, baseline = run.canary, run.baseline
    return _conditional_binomial(
        (canary.errors, baseline.errors),
        (canary.requests, baseline.requests),
        _usable(run, regression),
        (regression.size * _WARM_ERRORS, NULL_ERROR_RATIO * _WARM_ERRORS),
        jitter=_ERROR_JITTER,
        spread=POD_ERROR_SD**2 * _PODS_FACTOR,
    )


def _latency(run: SimulatedRun, regression: Regression) -> FloatArray:
    """Gaussian D_m with mean theta: the mixture over theta ~ N(log(1 + size), spread) cut to
    theta > log(1.05) (only alternatives: a prior below the null would reward a canary for being
    better), against theta = log(1.05); closed form from A = sum w (D - null), B = sum w."""
    canary, baseline = run.canary, run.baseline
    usable = _usable(run, regression) & (canary.latency_sum > 0) & (baseline.latency_sum > 0)
    null, shift = (
        math.log(NULL_LATENCY_FACTOR),
        math.log1p(regression.size) - math.log(NULL_LATENCY_FACTOR),
    )
    spread = POD_LATENCY_SD**2 * _PODS_FACTOR
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(canary.latency_sum / canary.requests) - np.log(
            baseline.latency_sum / baseline.requests
        )
        variance = _LATENCY_CV2 * (1.0 / canary.requests + 1.0 / baseline.requests)
        weight = np.where(usable, 1.0 / (variance + _LATENCY_JITTER), 0.0)
    excess = np.where(usable, log_ratio - _WARM_LATENCY - null, 0.0)
    evidence_a, evidence_b = np.cumsum(weight * excess), np.cumsum(weight)
    widened = 1.0 + spread * evidence_b
    scale = math.sqrt(spread)
    evidence: FloatArray = (
        (spread * evidence_a**2 + 2.0 * shift * evidence_a - shift**2 * evidence_b)
        / (2.0 * widened)
        - 0.5 * np.log(widened)
        + log_ndtr((spread * evidence_a + shift) / (scale * np.sqrt(widened)))
        - log_ndtr(shift / scale)
    )
    return evidence


def _tail(run: SimulatedRun, regression: Regression) -> FloatArray:
    bound = tail_bound(regression)
    column = BUCKET_BOUNDS.index(bound)
    canary, baseline = (
        version.buckets[:, column + 1 :].sum(axis=1) for version in (run.canary, run.baseline)
    )
    nominal = _shape()
    base = _exceedance(nominal, np.array([bound]))
    warm = bound / np.exp(_WARM_LATENCY)  # the bound as the warm canary's requests see it
    # A pod's log-median offset moves a tail share's log by the hazard rate times it.
    z = float(nominal.z_at(np.array([bound]))[0])
    hazard = math.exp(-(z**2) / 2.0) / math.sqrt(2.0 * math.pi) / float(ndtr(-z))
    per_pod = (hazard / LATENCY_SIGMA) ** 2 * _PODS_FACTOR
    return _conditional_binomial(
        (canary, baseline),
        (run.canary.requests, run.baseline.requests),
        _usable(run, regression),
        (
            _exceedance(_regressed(regression), warm) / base,
            _exceedance(nominal, warm / NULL_LATENCY_FACTOR) / base,
        ),
        jitter=per_pod * LATENCY_JITTER_SD**2,
        spread=per_pod * POD_LATENCY_SD**2,
    )


def _conditional_binomial(
    events: tuple[FloatArray, FloatArray],
    requests: tuple[FloatArray, FloatArray],
    usable: np.ndarray,
    ratios: tuple[FloatArray, FloatArray],
    *,
    jitter: float,
    spread: float,
) -> FloatArray:
    """Cumulative log LR of the canary's share of both versions' events: rate ratio per minute
    ``ratios[0]`` times exp(u), u ~ N(0, ``spread``) once per run (the alternative), against
    ``ratios[1]`` (the null).

    Given the minute's events of both versions, the canary's are binomial with success share
    n_c rho / (n_c rho + n_b); the pods' per-minute jitter moves that share's logit by a normal of
    variance ``jitter``. Both normals are integrated out by Gauss-Hermite quadrature.
    """
    canary_events, baseline_events = (np.where(usable, count, 0.0)[:, None] for count in events)
    canary_n, baseline_n = (np.where(usable, count, 1.0)[:, None] for count in requests)
    jitters, jitter_weights = _normal_nodes(jitter)

    def per_minute(ratio: FloatArray) -> FloatArray:
        """log P(canary's events | both versions' events) per minute, rate ratio ``ratio``."""
        logit = np.log(canary_n * ratio[:, None] / baseline_n) + jitters[None, :]
        terms = canary_events * log_expit(logit) + baseline_events * log_expit(-logit)
        found: FloatArray = logsumexp(terms + jitter_weights[None, :], axis=1)
        return np.where(usable, found, 0.0)

    alternative, null = ratios
    offsets, offset_weights = _normal_nodes(spread)
    # Only alternatives: the prior is cut where it would cross the null (then renormalised).
    above = np.array([bool(np.all(alternative * math.exp(u) > null)) for u in offsets])
    offsets, offset_weights = (
        offsets[above],
        offset_weights[above] - logsumexp(offset_weights[above]),
    )
    paths = np.column_stack([np.cumsum(per_minute(alternative * np.exp(u))) for u in offsets])
    evidence: FloatArray = logsumexp(paths + offset_weights[None, :], axis=1) - np.cumsum(
        per_minute(null)
    )
    return evidence


def _normal_nodes(variance: float) -> tuple[FloatArray, FloatArray]:
    """Gauss-Hermite nodes and log weights for the expectation over N(0, variance)."""
    nodes, weights = np.polynomial.hermite.hermgauss(_QUADRATURE_NODES)
    scaled: FloatArray = math.sqrt(2.0 * variance) * nodes
    log_weights: FloatArray = np.log(weights / math.sqrt(math.pi))
    return scaled, log_weights


def _memory(run: SimulatedRun, regression: Regression) -> FloatArray:
    canary, baseline = run.canary, run.baseline
    usable = _scraped(run)  # before the onset too: those minutes pin the level down
    log_ratio = np.log(canary.memory) - np.log(baseline.memory)
    since_onset = np.maximum(_MINUTE_INDEX - regression.onset_minute + 1.0, 0.0)
    alternative = np.log1p(regression.size * since_onset)
    null = NULL_MEMORY_LOG_SLOPE * since_onset
    filling = 1.0 - (1.0 - WARMUP_MEMORY_FLOOR) * np.exp(-_MINUTE_INDEX / WARMUP_MEMORY_TAU)
    nuisance = np.column_stack([np.ones(MINUTES), np.log(filling)])
    evidence = np.zeros(MINUTES)
    for minute in range(MINUTES):
        rows = np.flatnonzero(usable[: minute + 1])
        if rows.size <= nuisance.shape[1]:
            continue
        design = nuisance[rows]
        projector = np.eye(rows.size) - design @ np.linalg.pinv(design)
        alt, nul, data = (projector @ vector[rows] for vector in (alternative, null, log_ratio))
        evidence[minute] = ((alt - nul) @ data - (alt @ alt - nul @ nul) / 2.0) / _MEMORY_VARIANCE
    return evidence


def tail_bound(regression: Regression) -> float:
    """The finite bucket bound whose exceedances carry the most information per request about
    ``regression`` against the null, at the nominal 1:9 canary:baseline traffic split."""
    bounds = np.array(BUCKET_BOUNDS[:-1])
    base = _exceedance(_shape(), bounds)
    alt = _exceedance(_regressed(regression), bounds)
    null = _exceedance(_shape(), bounds / NULL_LATENCY_FACTOR)
    weight = (PODS - CANARY_PODS) / CANARY_PODS
    with np.errstate(divide="ignore", invalid="ignore"):
        share_alt, share_null = alt / (alt + weight * base), null / (null + weight * base)
        divergence = share_alt * np.log(share_alt / share_null) + (1 - share_alt) * np.log(
            (1 - share_alt) / (1 - share_null)
        )
        information = (alt + weight * base) * divergence
    informative = (share_null > 0) & (share_alt > share_null) & (share_alt < 1)
    return float(bounds[np.argmax(np.where(informative, information, -np.inf))])


def _shape(stretch: float = 0.0, threshold: float = Z90, log_factor: float = 0.0) -> LatencyShape:
    """The nominal latency distribution, no pod factor, no drift; with a tail change if given."""
    values = (math.log(LATENCY_MEDIAN), LATENCY_SIGMA, stretch, threshold, log_factor)
    return LatencyShape(*(np.asarray(value, dtype=np.float64) for value in values))


def _regressed(regression: Regression) -> LatencyShape:
    if regression.slowest:
        threshold = float(ndtri(1.0 - regression.slowest))
        return _shape(threshold=threshold, log_factor=math.log(regression.size))
    return _shape(stretch=math.log(regression.size) / (LATENCY_SIGMA * (Z99 - Z90)))


def _exceedance(shape: LatencyShape, bounds: FloatArray) -> FloatArray:
    """P(latency > bound) for each of ``bounds`` (one dimension)."""
    share: FloatArray = ndtr(-shape.z_at(bounds))
    return share
