"""Paired baseline/canary streams of one simulated 40-minute canary, minute by minute.

The power benchmark needs data whose truth is known: a healthy canary that only suffers the
nuisances of real clusters, or one with a regression of a chosen kind, size and onset. This module
draws such data per pod and per minute and keeps it both per pod (as ``sum by (pod) (…)`` and
``max by (pod) (…)`` return it; pods are named ``baseline-0`` … ``baseline-17``, ``canary-0``,
``canary-1``) and per version, the way ``sum(increase(...[1m]))`` and ``avg(...)`` would return it
from Prometheus: a version's counts are the sums over its pods, its memory their mean. Every
constant below is part of the benchmark's stated assumptions and is printed with its results.

Model (per minute m = 0..39 of the canary, 20 pods of which 2 run the canary: a 10% weight by
replica count, as Argo Rollouts sets it without a traffic router; every pod gets an equal share):

- requests per pod ~ Poisson(total rate / 20), the total rate set so that the canary gets the
  traffic level's requests per minute;
- errors per pod ~ Binomial(requests, p), p = 0.5% x a constant pod factor (lognormal, sd 0.10)
  x a per-minute pod jitter (lognormal, sd 0.20: retries and GC make errors come in clumps);
- latency per pod is lognormal (median 80 ms x a pod factor with sd 0.02, per-minute jitter sd
  0.02 on the log median, shape sigma 0.5: p99 about 260 ms), counted into Prometheus' default
  buckets 5 ms ... 10 s, +Inf (a multinomial draw per pod-minute); the pod-minute's latency sum
  (``http_request_duration_seconds_sum``) is drawn given those bucket counts from the same
  distribution (``benchmarks.latency``: exact mean and variance, a Beta per bucket);
- resident memory per pod is a gauge (400 MB x a pod factor with sd 0.05, 0.5% noise per minute);
  ``avg()`` over a version's pods is what the policy queries.

Nuisances, each present in a run with the probability its scenario gives:

- ``drift``: shared by both versions — traffic (a ±20% ramp and AR(1) wander), error rate
  (AR(1) in log space, stationary sd 0.18) and latency (sd 0.05) wander, 3% of minutes carry a
  shared burst (errors x2-8, latency x1.1-1.4: a dependency hiccup), memory of every pod creeps
  up 0.1%/min;
- ``warmup``: the canary's new pods start slow and erring (latency +50%, errors x4 at t = 0,
  decaying with a 40 s time constant, averaged per minute: minute 1, the first one Canarist looks
  at after ``begin_after: 1m``, is still +5.8% slower with x1.35 errors), and their memory starts
  at 70% of steady state (harmless for ``increase_is_bad``);
- ``slow_pod``: one of the 20 pods, chosen uniformly (so on the canary 10% of the time), sits on a
  noisy node: latency x1.25 with a wider shape (sigma +0.1), errors x2 with per-minute jitter sd
  0.6;
- ``scrape_gaps``: 1-3 episodes of 1-3 minutes in which one version (or both) was not scraped:
  its points are absent, or NaN in a third of episodes, and the requests served then are lost to
  ``increase(...[1m])``.

Regressions hit the canary's pods from ``onset_minute``: ``errors`` multiplies p; ``latency``
shifts every request by a factor; ``tail`` stretches the distribution above its 90th percentile
so that p99 is ``size`` times higher and the median unchanged, or, with ``slowest`` set, makes
that share of the slowest requests ``size`` times slower; ``memory`` grows the canary's resident
memory by ``size`` of its level per minute.

Random stream: every draw of the version-level fields happens in the order it always did; the
latency sums are drawn last, so a seed gives the same requests, errors, buckets and memory as
before they existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import ndtri

from analyzer.sources.base import FloatArray
from benchmarks.latency import Z90, Z99, LatencyShape, latency_sums

MINUTES = 40
PODS = 20
CANARY_PODS = 2
CANARY_WEIGHT = CANARY_PODS / PODS
TRAFFIC = {"low": 100, "medium": 1_000, "high": 10_000}  # requests per minute to the canary

BASE_ERROR_RATE = 0.005
POD_ERROR_SD, ERROR_JITTER_SD = 0.10, 0.20
LATENCY_MEDIAN, LATENCY_SIGMA = 0.080, 0.5
POD_LATENCY_SD, LATENCY_JITTER_SD = 0.02, 0.02
MEMORY_BYTES, POD_MEMORY_SD, MEMORY_NOISE = 400e6, 0.05, 0.005
WARMUP_TAU_MINUTES, WARMUP_LATENCY, WARMUP_ERRORS = 40 / 60, 0.5, 3.0
WARMUP_MEMORY_FLOOR, WARMUP_MEMORY_TAU = 0.7, 3.0
SLOW_POD_LATENCY, SLOW_POD_SIGMA, SLOW_POD_ERRORS, SLOW_POD_JITTER = 1.25, 0.1, 2.0, 0.6
BURST_PROBABILITY = 0.03

RegressionKind = Literal["none", "errors", "latency", "tail", "memory"]
BoolArray = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]


@dataclass(frozen=True)
class Nuisances:
    """The probability that each nuisance is present in a run (0 = never, 1 = always)."""

    drift: float = 0.0
    warmup: float = 0.0
    slow_pod: float = 0.0
    scrape_gaps: float = 0.0


@dataclass(frozen=True)
class Regression:
    """What is wrong with the canary from ``onset_minute`` on.

    ``size``: the error-rate multiplier (errors), the relative latency shift (latency), the p99
    multiplier (tail) or the memory growth per minute as a share of its level (memory).
    ``slowest`` (tail only): when set, the slowest share of requests becomes ``size`` times slower
    instead (0.1, 3.0: "10% of requests x3"), a jump rather than a stretch of the tail.
    """

    kind: RegressionKind = "none"
    size: float = 0.0
    onset_minute: int = 0
    slowest: float = 0.0


@dataclass(frozen=True)
class PodStreams:
    """One version's pods, minute by minute: what ``sum by (pod) (…)`` returns, one row a pod."""

    names: tuple[str, ...]  # "canary-0", "canary-1"; "baseline-0" … "baseline-17"
    requests: FloatArray  # (pods, MINUTES)
    errors: FloatArray  # (pods, MINUTES)
    buckets: FloatArray  # (pods, MINUTES, len(BUCKET_BOUNDS)): per bucket, not cumulative
    latency_sum: FloatArray  # (pods, MINUTES): seconds, the increase of ``…_seconds_sum``
    memory: FloatArray  # (pods, MINUTES): resident bytes


@dataclass(frozen=True)
class VersionStream:
    """One version's minutes as Prometheus would return them, before any point is dropped.

    The version-level arrays are the sums over ``pods`` (memory: the mean). A scrape gap hits
    every pod of the version: counts are 0 in its minutes, and ``missing``/``nan`` say how the
    points are (not) shown.
    """

    requests: FloatArray  # (MINUTES,)
    errors: FloatArray  # (MINUTES,)
    buckets: FloatArray  # (MINUTES, len(BUCKET_BOUNDS)): per bucket, not cumulative
    memory: FloatArray  # (MINUTES,)
    missing: BoolArray  # minutes without a scrape: no point at all
    nan: BoolArray  # minutes without a scrape, returned as NaN instead
    latency_sum: FloatArray  # (MINUTES,): seconds, the increase of ``…_seconds_sum``
    pods: PodStreams


@dataclass(frozen=True)
class SimulatedRun:
    baseline: VersionStream
    canary: VersionStream
    facts: dict[str, object] = field(default_factory=dict)  # what was drawn, for diagnosis


@dataclass(frozen=True)
class _Run:
    """What every part of one run's draw shares: who is canary, the nuisances, the regression."""

    is_canary: BoolArray  # (PODS,)
    regressed: BoolArray  # (PODS, MINUTES)
    warm: FloatArray  # (PODS, MINUTES): remaining warm-up share, 0 on baseline pods
    shared: dict[str, np.ndarray]  # traffic, errors, latency, memory multipliers; bursts
    slow: int | None  # the slow pod's index
    regression: Regression


def simulate(
    nuisances: Nuisances, regression: Regression, canary_rpm: float, rng: np.random.Generator
) -> SimulatedRun:
    """One run: both versions' per-minute streams and the nuisances that were drawn."""
    present = {name: bool(rng.random() < getattr(nuisances, name)) for name in _NUISANCE_NAMES}
    is_canary = np.arange(PODS) < CANARY_PODS
    minutes = np.arange(MINUTES, dtype=np.float64)
    warm = warmup_profile() if present["warmup"] else np.zeros(MINUTES)
    run = _Run(
        is_canary=is_canary,
        regressed=is_canary[:, None] & (minutes >= regression.onset_minute)[None, :],
        warm=np.where(is_canary[:, None], warm[None, :], 0.0),
        shared=_shared_drift(rng) if present["drift"] else _no_drift(),
        slow=int(rng.integers(PODS)) if present["slow_pod"] else None,
        regression=regression,
    )
    rate = canary_rpm / CANARY_WEIGHT / PODS * run.shared["traffic"]
    requests = rng.poisson(np.broadcast_to(rate, (PODS, MINUTES)))
    errors, error_factor = _errors(run, requests, rng)
    buckets, pod_latency, shape = _latency(run, requests, rng)
    memory = _memory(run, present["warmup"], rng)
    gaps = _scrape_gaps(rng) if present["scrape_gaps"] else _no_gaps()
    sums = latency_sums(shape, buckets, rng)  # last: the draws above keep their stream
    streams = {}
    for version, pods in (("baseline", ~is_canary), ("canary", is_canary)):
        missing, nan = gaps[version]
        lost = missing | nan
        per_pod = PodStreams(
            names=POD_NAMES[version],
            requests=np.where(lost, 0.0, requests[pods].astype(np.float64)),
            errors=np.where(lost, 0.0, errors[pods].astype(np.float64)),
            buckets=np.where(lost[:, None], 0.0, buckets[pods]),
            latency_sum=np.where(lost, 0.0, sums[pods]),
            memory=memory[pods],
        )
        streams[version] = VersionStream(
            requests=np.where(lost, 0.0, requests[pods].sum(axis=0).astype(np.float64)),
            errors=np.where(lost, 0.0, errors[pods].sum(axis=0).astype(np.float64)),
            buckets=np.where(lost[:, None], 0.0, buckets[pods].sum(axis=0)),
            memory=memory[pods].mean(axis=0),
            missing=missing,
            nan=nan,
            latency_sum=per_pod.latency_sum.sum(axis=0),
            pods=per_pod,
        )
    slow = run.slow
    facts: dict[str, object] = {
        **present,
        "slow_pod_on": None if slow is None else ("canary" if is_canary[slow] else "baseline"),
        "slow_pod_name": None if slow is None else _POD_ORDER[slow],
        "burst_minutes": int(run.shared["bursts"].sum()),
        "gap_minutes_canary": int((gaps["canary"][0] | gaps["canary"][1]).sum()),
        "gap_minutes_baseline": int((gaps["baseline"][0] | gaps["baseline"][1]).sum()),
        # Constant pod-to-pod differences the canary was dealt (1.0 = like the baseline).
        "pod_error_ratio": float(error_factor[is_canary].mean() / error_factor[~is_canary].mean()),
        "pod_latency_ratio": float(
            np.exp(pod_latency[is_canary]).mean() / np.exp(pod_latency[~is_canary]).mean()
        ),
    }
    return SimulatedRun(streams["baseline"], streams["canary"], facts)


def _errors(
    run: _Run, requests: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, FloatArray]:
    """5xx per pod-minute, and each pod's constant error factor."""
    error_factor = np.exp(rng.normal(0.0, POD_ERROR_SD, PODS))
    jitter_sd = np.full(PODS, ERROR_JITTER_SD)
    if run.slow is not None:
        error_factor[run.slow] *= SLOW_POD_ERRORS
        jitter_sd[run.slow] = SLOW_POD_JITTER
    jitter = np.exp(rng.normal(0.0, 1.0, (PODS, MINUTES)) * jitter_sd[:, None])
    jitter /= np.exp(jitter_sd[:, None] ** 2 / 2)  # mean 1: jitter adds spread, not errors
    error_rate = BASE_ERROR_RATE * error_factor[:, None] * jitter * run.shared["errors"]
    error_rate *= 1.0 + WARMUP_ERRORS * run.warm
    if run.regression.kind == "errors":
        error_rate = np.where(run.regressed, error_rate * run.regression.size, error_rate)
    return rng.binomial(requests, np.clip(error_rate, 0.0, 1.0)), error_factor


def _latency(
    run: _Run, requests: np.ndarray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, LatencyShape]:
    """Bucket counts per pod-minute, each pod's constant log-latency offset, the distribution."""
    pod_latency = rng.normal(0.0, POD_LATENCY_SD, PODS)
    sigma = np.full((PODS, MINUTES), LATENCY_SIGMA)
    if run.slow is not None:
        pod_latency[run.slow] += np.log(SLOW_POD_LATENCY)
        sigma[run.slow] += SLOW_POD_SIGMA
    log_median = np.log(LATENCY_MEDIAN) + pod_latency[:, None]
    log_median = log_median + rng.normal(0.0, LATENCY_JITTER_SD, (PODS, MINUTES))
    log_median = log_median + np.log(run.shared["latency"]) + np.log1p(WARMUP_LATENCY * run.warm)
    regression = run.regression
    if regression.kind == "latency":
        log_median = np.where(run.regressed, log_median + np.log1p(regression.size), log_median)
    stretch = np.zeros((PODS, MINUTES))
    threshold = np.full((PODS, MINUTES), Z90)
    log_factor = np.zeros((PODS, MINUTES))
    if regression.kind == "tail" and regression.slowest > 0:
        threshold[:] = ndtri(1.0 - regression.slowest)
        log_factor = np.where(run.regressed, np.log(regression.size), 0.0)
    elif regression.kind == "tail":
        stretch = np.where(run.regressed, np.log(regression.size) / (sigma * (Z99 - Z90)), 0.0)
    shape = LatencyShape(log_median, sigma, stretch, threshold, log_factor)
    probabilities = shape.bucket_probabilities()
    buckets: FloatArray = rng.multinomial(requests, probabilities).astype(np.float64)
    return buckets, pod_latency, shape


def _memory(run: _Run, warmup: bool, rng: np.random.Generator) -> FloatArray:
    """Resident bytes per pod-minute."""
    minutes = np.arange(MINUTES, dtype=np.float64)
    memory_factor = np.exp(rng.normal(0.0, POD_MEMORY_SD, PODS))
    memory = MEMORY_BYTES * memory_factor[:, None] * run.shared["memory"][None, :]
    memory = memory * (1.0 + rng.normal(0.0, MEMORY_NOISE, (PODS, MINUTES)))
    if warmup:
        filling = 1.0 - (1.0 - WARMUP_MEMORY_FLOOR) * np.exp(-minutes / WARMUP_MEMORY_TAU)
        memory = np.where(run.is_canary[:, None], memory * filling[None, :], memory)
    if run.regression.kind == "memory":
        onset = run.regression.onset_minute
        growth = 1.0 + run.regression.size * np.maximum(minutes - onset + 1, 0.0)
        memory = np.where(run.regressed, memory * growth[None, :], memory)
    result: FloatArray = memory
    return result


_NUISANCE_NAMES = ("drift", "warmup", "slow_pod", "scrape_gaps")


def warmup_profile() -> FloatArray:
    """exp(-t/tau) averaged over each minute: the warm-up's remaining share, per minute."""
    start = np.arange(MINUTES, dtype=np.float64)
    tau = WARMUP_TAU_MINUTES
    profile: FloatArray = tau * (np.exp(-start / tau) - np.exp(-(start + 1.0) / tau))
    return profile


def _ar1(rng: np.random.Generator, phi: float, sd: float) -> FloatArray:
    values = np.zeros(MINUTES)
    for minute in range(1, MINUTES):
        values[minute] = phi * values[minute - 1] + rng.normal(0.0, sd)
    return values


def _shared_drift(rng: np.random.Generator) -> dict[str, np.ndarray]:
    minutes = np.arange(MINUTES, dtype=np.float64)
    bursts = rng.random(MINUTES) < BURST_PROBABILITY
    burst_errors = np.where(bursts, rng.uniform(2.0, 8.0, MINUTES), 1.0)
    burst_latency = np.where(bursts, rng.uniform(1.1, 1.4, MINUTES), 1.0)
    ramp = rng.uniform(-0.2, 0.2) * minutes / MINUTES  # traffic rising or falling, diurnal
    return {
        "traffic": np.exp(ramp + _ar1(rng, 0.95, 0.05)),
        "errors": np.exp(_ar1(rng, 0.9, 0.08)) * burst_errors,
        "latency": np.exp(_ar1(rng, 0.9, 0.02)) * burst_latency,
        "memory": 1.0 + 0.001 * minutes,
        "bursts": bursts,
    }


def _no_drift() -> dict[str, np.ndarray]:
    ones = np.ones(MINUTES)
    return {"traffic": ones, "errors": ones, "latency": ones, "memory": ones, "bursts": ones < 0}


def _scrape_gaps(rng: np.random.Generator) -> dict[str, tuple[BoolArray, BoolArray]]:
    gaps: dict[str, tuple[BoolArray, BoolArray]] = {
        version: (np.zeros(MINUTES, bool), np.zeros(MINUTES, bool)) for version in _VERSIONS
    }
    for _ in range(int(rng.integers(1, 4))):
        begin, length = int(rng.integers(1, MINUTES)), int(rng.integers(1, 4))
        where = rng.choice(["canary", "baseline", "both"], p=[0.4, 0.4, 0.2])
        as_nan = bool(rng.random() < 1 / 3)
        for version in _VERSIONS if where == "both" else (str(where),):
            gaps[version][int(as_nan)][begin : begin + length] = True
    for absent, shown_nan in gaps.values():
        shown_nan[absent] = False  # absent wins where episodes overlap
    return gaps


def _no_gaps() -> dict[str, tuple[BoolArray, BoolArray]]:
    return {version: (np.zeros(MINUTES, bool), np.zeros(MINUTES, bool)) for version in _VERSIONS}


_VERSIONS = ("baseline", "canary")
# Pod i of the draw: the canary's pods come first (is_canary), each version numbers its own.
_POD_ORDER = tuple(
    f"canary-{i}" if i < CANARY_PODS else f"baseline-{i - CANARY_PODS}" for i in range(PODS)
)
POD_NAMES = {
    "canary": _POD_ORDER[:CANARY_PODS],
    "baseline": _POD_ORDER[CANARY_PODS:],
}
