"""The latency distribution of one pod-minute, from which its histogram buckets and ``_sum`` draw.

Latency = exp(log_median + sigma h(z)) with z standard normal and h monotone: the identity up to a
threshold z_t, and above it

    h(z) = z + stretch (z - z_t) + log_factor / sigma

``stretch`` widens the tail continuously (the ``tail`` regression that makes p99 ``size`` times
higher, z_t = z90); ``log_factor`` makes every request above the threshold ``exp(log_factor)``
times slower (the ``tail`` regression of "the slowest 10% of requests x3", z_t = z90), which
leaves no request between the old p90 and ``size`` times it. Both are 0 for a plain lognormal.

Because log-latency is piecewise linear in z, every partial moment E[L^r; z in (a, b]] has a
closed form (below), so each bucket's conditional mean and variance are exact. The latency sum of
a pod-minute is drawn *given its bucket counts*, as Prometheus' ``_sum`` and ``_bucket`` come
from the same requests: the n_b requests of bucket b add up to a value in [n_b lo_b, n_b hi_b],
drawn from a Beta distribution on that range with the exact mean n_b E[L | b] and variance
n_b Var[L | b]. The Beta is an approximation of the n_b-fold convolution (exact in its first two
moments, bounded like the real sum); summed over buckets the total has the exact mean n E[L] and
variance n Var[L]. The +Inf bucket, which none of the simulator's distributions reaches in
practice, contributes n_b E[L | b] without noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from analyzer.sources.base import FloatArray

BUCKET_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
Z90, Z99 = float(ndtri(0.90)), float(ndtri(0.99))
_BETA_MAX_CONCENTRATION = 1e8  # a Beta this concentrated is a point mass at float precision
_BETA_MIN_CONCENTRATION = 1e-3  # two requests at the bucket's ends: still a valid Beta


@dataclass(frozen=True)
class LatencyShape:
    """Per pod-minute parameters of h; arrays broadcast together (scalars are fine)."""

    log_median: FloatArray
    sigma: FloatArray
    stretch: FloatArray
    threshold: FloatArray  # z_t
    log_factor: FloatArray

    def z_at(self, bounds: FloatArray) -> FloatArray:
        """h^-1 of each bound's standardised log: P(latency <= bound) = Phi(z_at(bound)).

        A bound inside the gap that ``log_factor`` opens maps to z_t: no request lies there.
        """
        shape = self._expanded()
        y = (np.log(bounds) - shape.log_median) / shape.sigma
        above = y > shape.threshold
        beyond = np.maximum(y - shape.threshold - shape.log_factor / shape.sigma, 0.0)
        z: FloatArray = np.where(above, shape.threshold + beyond / (1.0 + shape.stretch), y)
        return z

    def bucket_probabilities(self) -> FloatArray:
        """P(latency in each of ``BUCKET_BOUNDS``' buckets), on a new last axis."""
        cumulative = ndtr(self.z_at(np.array(BUCKET_BOUNDS[:-1])))
        cumulative = np.concatenate([cumulative, np.ones((*cumulative.shape[:-1], 1))], axis=-1)
        probabilities: FloatArray = np.diff(cumulative, axis=-1, prepend=0.0)
        return np.clip(probabilities, 0.0, 1.0)

    def partial_moment(self, power: int, lower_z: FloatArray, upper_z: FloatArray) -> FloatArray:
        """E[latency^power; lower_z < z <= upper_z], in closed form piece by piece."""
        shape = self._expanded()
        below = _lognormal_piece(
            power,
            shape.log_median,
            shape.sigma,
            np.minimum(lower_z, shape.threshold),
            np.minimum(upper_z, shape.threshold),
        )
        # Above z_t: log L = log_median + log_factor - sigma stretch z_t + sigma (1 + stretch) z.
        offset = shape.log_median + shape.log_factor - shape.sigma * shape.stretch * shape.threshold
        above = _lognormal_piece(
            power,
            offset,
            shape.sigma * (1.0 + shape.stretch),
            np.maximum(lower_z, shape.threshold),
            np.maximum(upper_z, shape.threshold),
        )
        moment: FloatArray = below + above
        return moment

    def moments(self) -> tuple[FloatArray, FloatArray]:
        """Mean and variance of one request's latency."""
        low, high = np.array(-np.inf), np.array(np.inf)
        mean = self.partial_moment(1, low, high)[..., 0]
        second = self.partial_moment(2, low, high)[..., 0]
        return mean, np.maximum(second - mean**2, 0.0)

    def _expanded(self) -> LatencyShape:
        """Each parameter with a trailing axis, so that it broadcasts against bucket bounds."""
        return LatencyShape(
            *(np.asarray(value, dtype=np.float64)[..., None] for value in self._values())
        )

    def _values(self) -> tuple[FloatArray, ...]:
        return (self.log_median, self.sigma, self.stretch, self.threshold, self.log_factor)


def _lognormal_piece(
    power: int, offset: FloatArray, scale: FloatArray, lower_z: FloatArray, upper_z: FloatArray
) -> FloatArray:
    """E[exp(power (offset + scale z)); lower_z < z <= upper_z] for z standard normal."""
    tilt = power * scale
    mass = _normal_mass(lower_z - tilt, upper_z - tilt)
    piece: FloatArray = np.exp(power * offset + tilt**2 / 2.0) * mass
    return piece


def _normal_mass(lower: FloatArray, upper: FloatArray) -> FloatArray:
    """Phi(upper) - Phi(lower), from the nearer tail so that far tails keep their precision."""
    upper = np.maximum(upper, lower)
    mass: FloatArray = np.where(lower > 0.0, ndtr(-lower) - ndtr(-upper), ndtr(upper) - ndtr(lower))
    return np.maximum(mass, 0.0)


def latency_sums(shape: LatencyShape, buckets: FloatArray, rng: np.random.Generator) -> FloatArray:
    """The sum of latencies (seconds) of each pod-minute, given its per-bucket counts."""
    bounds = np.array((0.0, *BUCKET_BOUNDS))
    edges_z = np.concatenate(
        [
            np.full((*buckets.shape[:-1], 1), -np.inf),
            shape.z_at(bounds[1:-1]),
            np.full((*buckets.shape[:-1], 1), np.inf),
        ],
        axis=-1,
    )
    lower_z, upper_z = edges_z[..., :-1], edges_z[..., 1:]
    mass = _normal_mass(lower_z, upper_z)
    lower, upper = bounds[:-1], bounds[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = shape.partial_moment(1, lower_z, upper_z) / mass
        second = shape.partial_moment(2, lower_z, upper_z) / mass
    # Where a bucket's mass underflows, its moments are noise: fall back to the bucket's middle.
    finite_upper = np.where(np.isinf(upper), lower, upper)
    middle = (lower + finite_upper) / 2.0
    mean = np.clip(np.where(np.isfinite(mean), mean, middle), lower, upper)
    variance = np.where(np.isfinite(second), second - mean**2, 0.0)
    variance = np.clip(variance, 0.0, (mean - lower) * np.maximum(finite_upper - mean, 0.0))
    width = finite_upper - lower
    counted = buckets > 0
    safe_width = np.where(width > 0, width, 1.0)
    share = np.clip((mean - lower) / safe_width, 1e-12, 1.0 - 1e-12)
    spread = variance / np.where(counted, buckets, 1.0) / safe_width**2  # of the bucket's mean
    with np.errstate(divide="ignore"):
        concentration = np.where(spread > 0, share * (1.0 - share) / spread - 1.0, np.inf)
    concentration = np.clip(concentration, _BETA_MIN_CONCENTRATION, _BETA_MAX_CONCENTRATION)
    draws = rng.beta(share * concentration, (1.0 - share) * concentration)
    within = np.where(width > 0, lower + width * draws, mean)
    sums: FloatArray = (buckets * within).sum(axis=-1)
    return sums
