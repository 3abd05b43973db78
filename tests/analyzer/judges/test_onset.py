"""The mixture over start times: its weights, the starts it computes, and that each restart is
the window's e-process applied to the intervals from its start on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer.judges.evalues import LOG_RATIO_GRID, RateRatioFit, burst_weights, fit_rate_ratio
from analyzer.judges.onset import (
    RESTART_DISPERSION_CAP,
    RESTART_RESIDUAL_CAP,
    evaluated_starts,
    log_e_values_any_start,
    start_weights,
)
from analyzer.sources.base import FloatArray

LOG_CAP = math.log(20.0)


@pytest.mark.parametrize("count", [1, 2, 17, 60, 1000])
def test_start_weights_sum_to_one_whatever_the_window(count: int) -> None:
    weights, later = start_weights(count)
    assert weights.size == count
    assert weights[0] == 0.5
    assert weights.sum() + later == pytest.approx(1.0)
    assert np.all(np.diff(weights) < 0)
    assert later >= 0


def test_the_price_of_a_late_start() -> None:
    weights, _ = start_weights(60)
    # nats paid by a regression starting at interval 2, 17, 60
    assert -np.log(weights[[1, 16, 59]]) == pytest.approx([1.65, 5.81, 7.77], abs=0.01)


@pytest.mark.parametrize("count", [1, 5, 16, 17, 30, 60, 120, 480])
def test_every_recent_start_is_computed_and_old_ones_more_sparsely(count: int) -> None:
    starts = evaluated_starts(count)
    assert starts[0] == 0
    assert starts[-1] == count - 1
    assert np.all(np.diff(starts) > 0)
    assert np.isin(np.arange(max(count - 16, 0), count), starts).all()
    gaps = np.diff(np.r_[starts, count])
    ages = count - starts
    assert np.all(gaps[ages > 16] <= np.maximum(ages[ages > 16] // 8, 1))


def test_thinning_bounds_the_work() -> None:
    assert evaluated_starts(60).size == 32
    assert evaluated_starts(120).size == 40
    assert evaluated_starts(480).size <= 60


def late_step(
    intervals: int, onset: int, ratio: float, seed: int = 1
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Poisson errors at 1%, the canary ``ratio`` times worse from interval ``onset`` (0-based)."""
    rng = np.random.default_rng(seed)
    canary_requests = rng.poisson(2000, intervals).astype(float)
    baseline_requests = rng.poisson(18000, intervals).astype(float)
    factor = np.where(np.arange(intervals) >= onset, ratio, 1.0)
    canary_errors = rng.poisson(canary_requests * 0.01 * factor).astype(float)
    baseline_errors = rng.poisson(baseline_requests * 0.01).astype(float)
    return canary_errors, baseline_errors, canary_requests, baseline_requests


def restarted_log_e(fit: RateRatioFit, log_null: float, above: bool, start: int) -> float:
    """E(start) by its definition: the tempered, winsorised log-likelihood ratio summed over the
    intervals from ``start`` on, the first of them capped as a lone interval, mixed over the
    prior on the grid; tempered as restarts are."""
    tempering = burst_weights(
        fit.canary_hits,
        fit.pooled_hits,
        fit.canary_exposure,
        fit.baseline_exposure,
        residual_cap=RESTART_RESIDUAL_CAP,
        dispersion_cap=RESTART_DISPERSION_CAP,
    )
    bets = fit.bets(np.array([log_null]), np.array([above]), log_cap=LOG_CAP, weights=tempering)
    counts = bets.capped[0].copy()
    counts[start] = bets.lone[0][start]
    kept = slice(start, None)
    per_interval = bets.weights[0][kept, None] * (
        counts[kept, None] * (LOG_RATIO_GRID - log_null)
        - bets.pooled[0][kept, None]
        * (fit.exposure_terms[kept] - bets.log_null_exposure[0][kept, None])
    )
    with np.errstate(divide="ignore"):
        return float(np.logaddexp.reduce(np.log(bets.prior[0]) + per_interval.sum(axis=0)))


@pytest.mark.parametrize(("log_null", "above"), [(math.log(1.2), True), (-math.log(1.2), False)])
def test_the_mixture_is_the_weighted_sum_of_restarted_e_processes(
    log_null: float, above: bool
) -> None:
    canary, baseline, canary_requests, baseline_requests = late_step(40, onset=17, ratio=2.5)
    fit = fit_rate_ratio(canary[None], baseline[None], canary_requests, baseline_requests)
    each = np.array([restarted_log_e(fit, log_null, above, start) for start in range(40)])
    # the first start is the window's own e-process, with the window's tempering
    whole = fit.log_e_values(np.array([log_null]), np.array([above]), log_cap=LOG_CAP)
    each[0] = whole[0]
    weights, later = start_weights(40)
    starts = evaluated_starts(40)
    expected = np.logaddexp.reduce(np.r_[each[starts] + np.log(weights[starts]), np.log(later)])
    onset = log_e_values_any_start(fit, np.array([log_null]), np.array([above]), log_cap=LOG_CAP)
    assert onset.log_e[0] == pytest.approx(expected, abs=1e-9)
    if above:
        assert onset.log_e[0] > math.log(1 / 0.05) > whole[0]
        assert onset.start[0] in (17, 18)


def test_hypotheses_not_restarted_keep_the_window_e_value() -> None:
    canary, baseline, canary_requests, baseline_requests = late_step(40, onset=17, ratio=2.5)
    fit = fit_rate_ratio(canary[None], baseline[None], canary_requests, baseline_requests)
    nulls, above = np.full(4, math.log(1.2)), np.array([True, False, True, False])
    onset = log_e_values_any_start(
        fit, nulls, above, np.zeros(4, np.intp), LOG_CAP, np.array([True, True, False, False])
    )
    whole = fit.log_e_values(nulls, above, np.zeros(4, np.intp), LOG_CAP)
    assert onset.log_e[2:] == pytest.approx(whole[2:])
    assert list(onset.start[2:]) == [0, 0]
    assert onset.log_e[0] > whole[0] + 5  # the late regression, seen from its start


@pytest.mark.parametrize("intervals", [0, 1])
def test_without_a_second_interval_it_is_the_window_e_value(intervals: int) -> None:
    canary, baseline, canary_requests, baseline_requests = late_step(intervals, onset=0, ratio=3)
    fit = fit_rate_ratio(canary[None], baseline[None], canary_requests, baseline_requests)
    nulls, above, rows = np.array([0.1, -0.1]), np.array([True, False]), np.zeros(2, np.intp)
    onset = log_e_values_any_start(fit, nulls, above, rows, log_cap=LOG_CAP)
    assert onset.log_e == pytest.approx(fit.log_e_values(nulls, above, rows, log_cap=LOG_CAP))
    assert list(onset.start) == [0, 0]


def test_a_row_that_cannot_bet_stays_at_one() -> None:
    canary, baseline, canary_requests, baseline_requests = late_step(10, onset=3, ratio=3.0)
    fit = fit_rate_ratio(
        np.vstack((canary, np.zeros(10))),
        np.vstack((baseline, np.zeros(10))),
        canary_requests,
        baseline_requests,
    )
    onset = log_e_values_any_start(
        fit,
        np.array([0.1, math.nan, 0.1]),
        np.array([True, True, True]),
        np.array([1, 0, 0]),
        log_cap=LOG_CAP,
    )
    assert onset.log_e[:2] == pytest.approx([0.0, 0.0])
    assert onset.log_e[2] > 0
