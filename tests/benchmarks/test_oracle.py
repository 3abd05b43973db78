"""The oracle on data whose truth is known: it detects clear regressions of every kind, waits for a
late onset, and keeps false aborts near alpha on healthy canaries. Not timed; generous bounds."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.oracle import ALPHA, WATCHED, describe, log_likelihood_ratio, oracle, tail_bound
from benchmarks.runner import Task, simulate_task
from benchmarks.scenarios import by_name
from benchmarks.simulator import (
    BASE_ERROR_RATE,
    CANARY_PODS,
    LATENCY_JITTER_SD,
    LATENCY_SIGMA,
    PODS,
    Nuisances,
    Regression,
    SimulatedRun,
    simulate,
)

SEED = 20260105


def runs(scenario: str, traffic: str, count: int) -> list[SimulatedRun]:
    return [simulate_task(Task(scenario, traffic, index, SEED)) for index in range(count)]


@pytest.mark.parametrize(
    ("scenario", "traffic"),
    [
        ("errors x4", "high"),
        ("latency +25%", "medium"),
        ("tail only: p99 x1.5", "medium"),
        ("tail only: slowest 10% x3", "low"),
        ("memory +1%/min", "low"),
    ],
)
def test_a_clear_regression_is_detected(scenario: str, traffic: str) -> None:
    truth = by_name(scenario).regression
    decisions = [oracle(run, truth) for run in runs(scenario, traffic, 20)]
    aborted = [d for d in decisions if d.decision == "abort"]
    assert len(aborted) >= 19, [d.reason for d in decisions if d.decision != "abort"]
    assert all(truth.kind in d.reason for d in aborted)
    assert np.median([d.decided_at_minutes for d in aborted]) <= 12


def test_a_late_regression_is_never_flagged_before_its_onset() -> None:
    scenario = by_name("late errors x2 @20m")
    for run in runs(scenario.name, "high", 20):
        evidence = log_likelihood_ratio(run, scenario.regression)
        assert not evidence[: scenario.onset_minute].any()
        decision = oracle(run, scenario.regression)
        assert decision.decision == "promote" or decision.decided_at_minutes > 20


def test_false_aborts_stay_near_alpha_on_healthy_canaries() -> None:
    """200 healthy canaries with drift, bursts, warm-up and scrape gaps (no slow pod: that one
    really makes the canary worse than the tolerance), every kind watched at alpha / 4."""
    rng = np.random.default_rng(SEED)
    nuisances = Nuisances(drift=1.0, warmup=1.0, scrape_gaps=0.5)
    aborted = 0
    for index in range(200):
        traffic = (100, 1_000, 10_000)[index % 3]
        run = simulate(nuisances, Regression(), traffic, rng)
        aborted += oracle(run, None).decision == "abort"
    assert aborted <= 8  # 4% of 200; alpha is 1%


def test_a_regression_inside_the_tolerance_is_rarely_aborted() -> None:
    """At x1.1 the errors null (x1.25) holds with room: the SPRT of x2 against it stays quiet."""
    rng = np.random.default_rng(SEED + 1)
    truth = Regression("errors", 2.0)
    aborted = sum(
        oracle(simulate(Nuisances(), Regression("errors", 1.1), 10_000, rng), truth).decision
        == "abort"
        for _ in range(100)
    )
    assert aborted <= 4


def test_the_tests_hold_alpha_on_data_drawn_at_the_null_boundary() -> None:
    """Synthetic minutes exactly at the nulls (latency +5%, errors x1.25) under the tests' own
    noise model: the mixture ratios may cross 1/alpha in at most about alpha of the runs."""
    rng = np.random.default_rng(SEED + 2)
    template = simulate(Nuisances(), Regression(), 1_000, rng)
    canary, baseline = template.canary, template.baseline
    jitter = LATENCY_JITTER_SD**2 * (1 / CANARY_PODS + 1 / (PODS - CANARY_PODS))
    spread = math.expm1(LATENCY_SIGMA**2) * (1 / canary.requests + 1 / baseline.requests)
    baseline_mean = baseline.latency_sum / baseline.requests
    bound = math.log(1 / ALPHA)
    crossed = {"latency": 0, "errors": 0}
    for _ in range(400):
        log_ratio = math.log(1.05) + rng.normal(0.0, np.sqrt(spread + jitter))
        sums = canary.requests * baseline_mean * np.exp(log_ratio)
        run = replace(template, canary=replace(canary, latency_sum=sums))
        evidence = log_likelihood_ratio(run, Regression("latency", 0.10))
        crossed["latency"] += bool(evidence.max() >= bound)
        errors = rng.poisson(canary.requests * BASE_ERROR_RATE * 1.25).astype(np.float64)
        baseline_errors = rng.poisson(baseline.requests * BASE_ERROR_RATE).astype(np.float64)
        run = replace(
            template,
            canary=replace(canary, errors=errors),
            baseline=replace(baseline, errors=baseline_errors),
        )
        crossed["errors"] += bool(
            log_likelihood_ratio(run, Regression("errors", 2.0)).max() >= bound
        )
    assert crossed["latency"] <= 12 and crossed["errors"] <= 12, crossed  # alpha: 4 of 400


def test_every_kind_is_watched_with_a_bound_of_alpha_over_four() -> None:
    assert sorted(r.kind for r in WATCHED) == ["errors", "latency", "memory", "tail"]
    run = runs("errors x4", "high", 1)[0]
    decision = oracle(run, None)  # told nothing: the x1.5 test at alpha / 4 still fires
    assert decision.decision == "abort" and "errors x1.5" in decision.reason
    assert f"{np.log(4 / ALPHA):.2f}" in decision.reason


def test_the_tail_tests_count_above_the_bound_nearest_the_changed_tail() -> None:
    assert tail_bound(Regression("tail", 1.5)) in (0.25, 0.5)
    assert tail_bound(Regression("tail", 3.0, slowest=0.10)) in (0.25, 0.5)
    assert "slowest 10% x3" in describe(Regression("tail", 3.0, slowest=0.10))
    with pytest.raises(ValueError, match="no test"):
        describe(Regression("none"))
