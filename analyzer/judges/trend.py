"""The trend judge: a gauge that grows in the canary and not in the baseline is a leak.

A memory leak does not show as a level first: at +1% a minute a canary is still within a 20%
tolerance for twenty minutes, and a level test (Kayenta's Mann-Whitney) lets it through that
long. Its signature is growth. So this judge looks at ``d_t = log(canary_t / baseline_t)`` per
interval: growth shared by both versions (traffic, caches, the node) cancels, and what is left
is the canary's own trend. It FAILs when

- the canary is already above the baseline by more than half its tolerance: the level fitted
  (on a parabola, so a bend is followed) to the recent intervals before the latest one. This
  gate decides whether the growth is tested at all;
- and, at a look the gate lets through, the recent slope of ``d`` (least squares over the last
  ``RECENT`` intervals with data) is above the allowed growth, ``log(1 + tolerance)`` per
  ``horizon`` (20% an hour by default: 0.3% a minute), by a one-sided t-test.

The level gate is what keeps a new version's warm-up from reading as a leak: a warm-up climbs
from below the baseline towards it, fast at first and slower and slower, so by the time its
recent slope is small it has not crossed half the tolerance, while a leak keeps its slope as
it climbs past it. The recent window (not the whole one) lets the warm-up's early growth fall
out of the estimate. A version that simply uses more memory (a level within tolerance, no
growth) never fails; one beyond its tolerance and still growing does.

Error control: the j-th look whose growth is tested is held to ``alpha_j = alpha / (j (j + 1))``,
and the ``alpha_j`` add up to ``alpha`` (a union bound over the tested looks). Which looks are
tested depends on the past only, but the test at a look shares most of its data with the gate
that chose it, so this is an approximation, not a proof: the bound that holds without it,
``alpha / (k (k + 1))`` for the k-th interval of the window, would cost a leak several minutes.
What it gives is measured in the power benchmark (README: healthy canaries aborted on memory).
The noise is the residuals' about a parabola fitted to the same points (a warm-up's bend is
trend, not noise), with Student's t at their degrees of freedom: exact for independent Gaussian
noise. A gauge with strongly autocorrelated noise (a sawtooth of garbage collections slower than
the interval) is noisier than its residuals say, so query it at an interval longer than its
cycle.

PASS: the slope's upper bound over the whole window is within the allowance and the level's
upper bound within half the tolerance, each at ``alpha / (k (k + 1))`` for the k-th interval of
the window (the rigorous bound: an early PASS lets the canary through): not growing, not high.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analyzer.judges.base import JudgeContext, JudgeData, SeriesData
from analyzer.judges.decisions import no_data, quiet
from analyzer.policy.judges import TrendSpec
from analyzer.policy.metrics import MetricBase
from analyzer.sources.base import FloatArray
from analyzer.verdict import Judgement, Outcome, Reason

RECENT = 10  # intervals the recent slope and the current level are fitted on
MIN_POINTS = 4  # intervals with data in both versions before anything is decided
NOISE_FLOOR = 1e-4  # log-ratio noise is never taken as below 0.01% per interval


@dataclass(frozen=True)
class Fit:
    """A least-squares line ``level + slope * (t - t_end)``, its residual noise, and the
    standard errors that noise gives the slope and the level."""

    slope: float  # per second
    level: float  # the line's value at the last point
    now: float  # the parabola's value at the last point: where the curve is, bent or not
    sigma: float  # residual standard deviation per point
    slope_se: float
    level_se: float
    freedom: int  # of the residual noise


def line(times: FloatArray, values: FloatArray) -> Fit:
    """Fit on ``times`` (seconds); the noise is the residuals' (``NOISE_FLOOR`` at least)."""
    centred = times - times.mean()
    spread = float((centred**2).sum())
    slope = float((centred * (values - values.mean())).sum() / spread)
    end = float(times[-1] - times.mean())
    level = float(values.mean() + slope * end)
    # The noise about a parabola, not the line: a warm-up's bend is a trend, not noise, and
    # counting it as noise would hide a leak behind it. The line's slope is what is tested.
    freedom = max(1, times.size - 3)
    scaled = centred / max(float(np.abs(centred).max()), 1.0)
    design = np.vstack((np.ones_like(scaled), scaled, scaled**2)).T
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    fitted = design @ coefficients
    residuals = values - fitted
    sigma = max(math.sqrt(float((residuals**2).sum()) / freedom), NOISE_FLOOR)
    slope_se = sigma / math.sqrt(spread)
    level_se = sigma * math.sqrt(1 / times.size + end**2 / spread)
    return Fit(slope, level, float(fitted[-1]), sigma, slope_se, level_se, freedom)


def gated(times: FloatArray, ratio: FloatArray, gate: float) -> bool:
    """Whether the growth is tested at the latest look: the level fitted on the looks before
    it is above ``gate``. It depends on the past only, so which looks are tested does not
    spend any of alpha: the union bound runs over the tested looks."""
    if times.size < MIN_POINTS + 1:
        return False
    # the curve's own value, not the line's: a line through a warm-up's bend overshoots its end
    return line(times[:-1][-RECENT:], ratio[:-1][-RECENT:]).now >= gate


def tests_so_far(times: FloatArray, ratio: FloatArray, gate: float, first: int) -> int:
    """How many looks up to the latest tested the growth: the index of this one's test."""
    return sum(
        gated(times[:end], ratio[:end], gate)
        for end in range(max(first, MIN_POINTS + 1), times.size + 1)
    )


def critical_value(alpha: float, freedom: int) -> float:
    """Student's t bar at level ``alpha`` for a noise estimated with ``freedom`` degrees."""
    return float(stats.t.isf(alpha, df=freedom))


class TrendJudge:
    """``type: trend`` for series metrics; see the module docstring."""

    def judge(
        self, baseline: JudgeData, canary: JudgeData, metric: MetricBase, context: JudgeContext
    ) -> Judgement:
        spec = getattr(metric, "judge", None)
        if not isinstance(spec, TrendSpec) or not isinstance(baseline, SeriesData):
            raise TypeError(f"metric {metric.name!r} is not a series judged by trend")
        if not isinstance(canary, SeriesData):
            raise TypeError("the trend judge compares two series")
        base, can = np.asarray(baseline.values, float), np.asarray(canary.values, float)
        usable = np.isfinite(base) & np.isfinite(can) & (base > 0) & (can > 0)
        sides = (_side(base), _side(can))
        missing = no_data(metric.name, sides)
        if missing is not None:
            return missing
        points = int(usable.sum())
        if points < max(MIN_POINTS, context.min_samples):
            reason = f"{points} of {max(MIN_POINTS, context.min_samples)} intervals so far"
            return quiet(Outcome.INCONCLUSIVE, Reason.TOO_FEW_SAMPLES, reason, sides)
        times = np.asarray(canary.timestamps, float)[usable]
        ratio = np.log(can[usable]) - np.log(base[usable])
        allowed_slope = math.log1p(metric.tolerance) / spec.horizon.total_seconds()
        gate = math.log1p(metric.tolerance / 2)
        recent, whole = line(times[-RECENT:], ratio[-RECENT:]), line(times, ratio)
        growing = (recent.slope - allowed_slope) / recent.slope_se
        tests = tests_so_far(times, ratio, gate, max(MIN_POINTS, context.min_samples))
        alpha_j = context.alpha / (max(tests, 1) * (max(tests, 1) + 1))
        critical = critical_value(alpha_j, recent.freedom)
        per_hour = 3600 * recent.slope
        subject = (
            f"{metric.name} {_signed(math.expm1(recent.level))} vs baseline and growing "
            f"{_per_hour(per_hour)} against it (allowed {_per_hour(3600 * allowed_slope)}, "
            f"a leak once above {_signed(metric.tolerance / 2)})"
        )
        looks = base.size
        bar = critical_value(context.alpha / (looks * (looks + 1)), whole.freedom)
        if tests and gated(times, ratio, gate) and growing >= critical:
            outcome, code = Outcome.FAIL, Reason.EVIDENCE
            tail = f"growth t {growing:.3g} ≥ {critical:.3g} (test {tests}), a leak"
        elif (whole.slope - allowed_slope) / whole.slope_se <= -bar and (
            whole.level - gate
        ) / whole.level_se <= -bar:
            outcome, code = Outcome.PASS, Reason.EVIDENCE
            tail = "neither growing beyond the allowance nor above half the tolerance, pass"
        elif not gated(times, ratio, gate):
            outcome, code = Outcome.INCONCLUSIVE, Reason.EVIDENCE
            tail = "below half the tolerance: growth not tested, no leak shown"
        else:
            outcome, code = Outcome.INCONCLUSIVE, Reason.EVIDENCE
            tail = f"growth t {growing:.3g} < {critical:.3g} (test {tests}), no leak shown"
        margin = critical * recent.level_se
        lower, upper = recent.level - margin, recent.level + margin
        return Judgement(
            outcome=outcome,
            reason=f"{subject}: {tail}",
            reason_code=code,
            direction="high" if outcome is Outcome.FAIL else None,
            baseline=sides[0],
            canary=sides[1],
            effect=math.expm1(recent.level),
            effect_interval=(math.expm1(lower), math.expm1(upper)),
            p_value=float(stats.t.sf(growing, df=recent.freedom)),
            threshold=alpha_j,
            details={
                "regression_detected": outcome is Outcome.FAIL,
                "growth_per_hour": math.expm1(per_hour),
                "growing_beyond_allowance": bool(recent.slope > allowed_slope),
                "allowed_growth_per_hour": math.expm1(3600 * allowed_slope),
                "level": math.expm1(recent.level),
                "level_gate": metric.tolerance / 2,
                "noise_per_interval": recent.sigma,
                "intervals_compared": points,
            },
        )


def _side(values: FloatArray) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    summary = {"intervals": float(finite.size)}
    if finite.size:
        summary |= {"mean": float(finite.mean()), "last": float(finite[-1])}
    return summary


def _signed(change: float) -> str:
    return f"{100 * change:+.3g}%"


def _per_hour(log_slope: float) -> str:
    """Growth per hour for people: a percentage, or a factor when it more than doubles."""
    factor = math.exp(min(log_slope, 50.0))
    return f"{100 * (factor - 1):+.3g}%/h" if factor < 2 else f"x{factor:.3g}/h"
