"""The simulator's per-pod streams and latency sums: consistent with the version arrays, unbiased,
and carrying a slow pod in that pod's own stream. Not timed; the statistical bounds are generous.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.latency import BUCKET_BOUNDS
from benchmarks.runner import Task, simulate_task
from benchmarks.simulator import (
    LATENCY_JITTER_SD,
    LATENCY_MEDIAN,
    LATENCY_SIGMA,
    POD_LATENCY_SD,
    SLOW_POD_LATENCY,
    SLOW_POD_SIGMA,
    SimulatedRun,
)

SEED = 20260105


def run_of(scenario: str, traffic: str = "medium", index: int = 0) -> SimulatedRun:
    return simulate_task(Task(scenario, traffic, index, SEED))


@pytest.mark.parametrize(
    ("scenario", "traffic"),
    [("realistic mix", "low"), ("scrape gaps", "medium"), ("tail only: slowest 10% x3", "high")],
)
def test_the_version_arrays_are_the_sums_of_their_pods(scenario: str, traffic: str) -> None:
    for index in range(3):
        run = run_of(scenario, traffic, index)
        for stream in (run.baseline, run.canary):
            pods = stream.pods
            np.testing.assert_array_equal(pods.requests.sum(axis=0), stream.requests)
            np.testing.assert_array_equal(pods.errors.sum(axis=0), stream.errors)
            np.testing.assert_array_equal(pods.buckets.sum(axis=0), stream.buckets)
            np.testing.assert_allclose(pods.latency_sum.sum(axis=0), stream.latency_sum)
            np.testing.assert_allclose(pods.memory.mean(axis=0), stream.memory)
            # Every request is in exactly one bucket, per pod as per version.
            np.testing.assert_array_equal(pods.buckets.sum(axis=2), pods.requests)


def test_pods_are_named_stably_per_version() -> None:
    run = run_of("realistic mix")
    assert run.canary.pods.names == ("canary-0", "canary-1")
    assert run.baseline.pods.names == tuple(f"baseline-{i}" for i in range(18))
    assert run_of("realistic mix", index=1).canary.pods.names == run.canary.pods.names


def test_a_scrape_gap_empties_every_pod_of_its_version() -> None:
    run = run_of("scrape gaps", "medium", 0)
    lost_anywhere = False
    for stream in (run.baseline, run.canary):
        lost = stream.missing | stream.nan
        lost_anywhere |= bool(lost.any())
        pods = stream.pods
        for counts in (pods.requests, pods.errors, pods.latency_sum):
            assert not counts[:, lost].any()
            assert counts[:, ~lost].sum() > 0
        assert not pods.buckets[:, lost].any()
    assert lost_anywhere


def test_the_old_fields_keep_their_numbers_for_a_seed() -> None:
    """Computed with the simulator before per-pod streams existed: the new draws come last."""
    expected = {
        ("realistic mix", "medium"): [
            (286404.0, 2428.0, 1199640.0, 16062538801.93165),
            (32587.0, 307.0, 136859.0, 15133759872.243526),
        ],
        ("tail only: p99 x1.5", "low"): [
            (36800.0, 228.0, 151541.0, 16594484067.903854),
            (4068.0, 19.0, 16907.0, 16130306608.374783),
        ],
        ("memory +1%/min", "high"): [
            (3870028.0, 19215.0, 16091148.0, 16254714853.7025),
            (430813.0, 2400.0, 1792247.0, 19043014688.536064),
        ],
    }
    for (scenario, traffic), versions in expected.items():
        run = run_of(scenario, traffic, 3)
        for stream, (requests, errors, bucket_moment, memory) in zip(
            (run.baseline, run.canary), versions, strict=True
        ):
            assert stream.requests.sum() == requests
            assert stream.errors.sum() == errors
            assert (stream.buckets * np.arange(len(BUCKET_BOUNDS))).sum() == bucket_moment
            assert stream.memory.sum() == pytest.approx(memory, rel=1e-12)


def test_latency_sums_have_the_distributions_mean_over_many_runs() -> None:
    # Pod spread only: each pod's log median is off by N(0, 0.02^2) and each minute's by another
    # N(0, 0.02^2), so the mean latency is the lognormal's mean times exp of half those variances.
    expected = LATENCY_MEDIAN * np.exp(
        (LATENCY_SIGMA**2 + POD_LATENCY_SD**2 + LATENCY_JITTER_SD**2) / 2
    )
    total_seconds = total_requests = 0.0
    for index in range(40):
        run = run_of("pod spread only", "medium", index)
        for stream in (run.baseline, run.canary):
            total_seconds += stream.latency_sum.sum()
            total_requests += stream.requests.sum()
    assert total_seconds / total_requests == pytest.approx(expected, rel=0.005)


def test_a_latency_sum_lies_within_its_buckets() -> None:
    lower = np.array((0.0, *BUCKET_BOUNDS[:-1]))
    upper = np.array((*BUCKET_BOUNDS[:-1], 1e9))  # +Inf: no finite bound
    for scenario in ("realistic mix", "tail only: p99 x1.5", "tail only: slowest 10% x3"):
        pods = run_of(scenario, "low").canary.pods
        assert np.all(pods.latency_sum >= (pods.buckets * lower).sum(axis=2) - 1e-9)
        assert np.all(pods.latency_sum <= (pods.buckets * upper).sum(axis=2) + 1e-9)


def _slow_run(where: str) -> SimulatedRun:
    for index in range(200):
        run = run_of("slow/noisy pod", "high", index)
        if run.facts["slow_pod_on"] == where:
            return run
    raise AssertionError(f"no run with the slow pod on the {where}")


@pytest.mark.parametrize("where", ["canary", "baseline"])
def test_a_slow_pod_shows_in_its_own_stream(where: str) -> None:
    run = _slow_run(where)
    name = run.facts["slow_pod_name"]
    assert isinstance(name, str) and name.startswith(where)
    # Every pod of the run, the slow one found by its name in its own version's streams.
    names = run.canary.pods.names + run.baseline.pods.names
    slow = names.index(name)

    def per_pod(field: str) -> np.ndarray:
        return np.concatenate([getattr(run.canary.pods, field), getattr(run.baseline.pods, field)])

    requests = per_pod("requests").sum(axis=1)
    mean_latency = per_pod("latency_sum").sum(axis=1) / requests
    error_ratio = per_pod("errors").sum(axis=1) / requests
    others = np.delete(np.arange(len(names)), slow)
    # x1.25 on the median and a wider shape: the mean is ~1.32 times the others'.
    widened = np.exp(((LATENCY_SIGMA + SLOW_POD_SIGMA) ** 2 - LATENCY_SIGMA**2) / 2)
    ratio = mean_latency[slow] / mean_latency[others].mean()
    assert ratio == pytest.approx(SLOW_POD_LATENCY * widened, rel=0.08)
    assert mean_latency[others].max() < 1.2 * mean_latency[others].min()  # pod spread: sd 2%
    assert error_ratio[slow] > 1.4 * error_ratio[others].mean()


def test_the_slowest_tenth_three_times_slower_moves_the_tail_not_the_body() -> None:
    runs = [run_of("tail only: slowest 10% x3", "high", index) for index in range(5)]
    column = BUCKET_BOUNDS.index(0.1)
    tail_column = BUCKET_BOUNDS.index(0.25)

    def shares(stream_of: str) -> tuple[float, float]:
        buckets = sum(getattr(run, stream_of).buckets[5:].sum(axis=0) for run in runs)
        total = buckets.sum()
        return buckets[: column + 1].sum() / total, buckets[tail_column + 1 :].sum() / total

    canary_body, canary_tail = shares("canary")
    baseline_body, baseline_tail = shares("baseline")
    assert canary_body == pytest.approx(baseline_body, abs=0.02)  # <= 0.1 s: untouched
    assert baseline_tail < 0.03 and 0.08 < canary_tail < 0.13  # > 0.25 s: the slowest 10%
