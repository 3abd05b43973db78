"""Realistic Prometheus series of an HTTP service, for writing into the test Prometheus.

Produces what a scrape of a real service would have stored: cumulative counters
``http_requests_total{code}``, histogram buckets ``http_request_duration_seconds_bucket{le}`` and
the gauge ``process_resident_memory_bytes``, every ``scrape`` seconds, seeded so a test gets the
same data every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
Samples = list[tuple[float, float]]
SeriesInput = list[tuple[dict[str, str], Samples]]


@dataclass(frozen=True)
class Behaviour:
    requests_per_second: float = 50.0
    error_ratio: float = 0.01
    median_latency: float = 0.08
    memory_bytes: float = 200e6
    memory_growth_per_minute: float = 0.0  # a leak: this share of the level, every minute


def http_service(
    app: str,
    version: str,
    start: float,
    minutes: int,
    behaviour: Behaviour,
    *,
    seed: int,
    scrape: float = 15.0,
    pods: int = 0,
    slow_pod: float = 1.0,
) -> SeriesInput:
    """Cumulative series of one version from ``start`` for ``minutes``, one point per scrape.

    With ``pods`` the version runs on that many pods, each its own series labelled ``pod``
    (as Kubernetes scrapes them), the histogram with its ``_sum`` and ``_count``; the first pod's
    latency is ``slow_pod`` times the others' (a pod on a noisy node). Without, one series per
    metric and no ``_sum``/``_count``, as before."""
    if not pods:
        return _series(app, version, start, minutes, behaviour, seed, scrape, None, 1.0)
    share = Behaviour(
        requests_per_second=behaviour.requests_per_second / pods,
        error_ratio=behaviour.error_ratio,
        median_latency=behaviour.median_latency,
        memory_bytes=behaviour.memory_bytes,
        memory_growth_per_minute=behaviour.memory_growth_per_minute,
    )
    series: SeriesInput = []
    for index in range(pods):
        factor = slow_pod if index == 0 else 1.0
        name = f"{app}-{version}-{index}"
        series += _series(app, version, start, minutes, share, seed * 100 + index, scrape, name,
                          factor)  # fmt: skip
    return series


def _series(
    app: str,
    version: str,
    start: float,
    minutes: int,
    behaviour: Behaviour,
    seed: int,
    scrape: float,
    pod: str | None,
    latency_factor: float,
) -> SeriesInput:
    rng = np.random.default_rng(seed)
    steps = int(minutes * 60 / scrape)
    times = start + scrape * np.arange(1, steps + 1)
    requests = rng.poisson(behaviour.requests_per_second * scrape, steps)
    errors = rng.binomial(requests, behaviour.error_ratio)
    median = behaviour.median_latency * latency_factor
    latencies = [rng.lognormal(np.log(median), 0.5, count) for count in requests]
    per_bucket = np.array(
        [[np.count_nonzero(sample <= bound) for bound in BUCKETS] for sample in latencies]
    )
    base = {"app": app, "version": version, **({"pod": pod} if pod else {})}
    elapsed = (times - start) / 60
    memory = behaviour.memory_bytes * (1 + behaviour.memory_growth_per_minute * elapsed)
    series: SeriesInput = [
        (
            {"__name__": "http_requests_total", **base, "code": "200"},
            list(zip(times, np.cumsum(requests - errors).astype(float), strict=True)),
        ),
        (
            {"__name__": "http_requests_total", **base, "code": "500"},
            list(zip(times, np.cumsum(errors).astype(float), strict=True)),
        ),
        (
            {"__name__": "process_resident_memory_bytes", **base},
            list(zip(times, memory * rng.normal(1, 0.01, steps), strict=True)),
        ),
    ]
    for index, bound in enumerate(BUCKETS):
        le = "+Inf" if bound == float("inf") else repr(bound)
        cumulative = np.cumsum(per_bucket[:, index]).astype(float)
        series.append(
            (
                {"__name__": "http_request_duration_seconds_bucket", **base, "le": le},
                list(zip(times, cumulative, strict=True)),
            )
        )
    if pod is not None:
        # a pod's histogram comes with its _sum and _count, as client libraries write them
        sums = np.cumsum([float(sample.sum()) for sample in latencies])
        series.append(
            (
                {"__name__": "http_request_duration_seconds_sum", **base},
                list(zip(times, sums, strict=True)),
            )
        )
        series.append(
            (
                {"__name__": "http_request_duration_seconds_count", **base},
                list(zip(times, np.cumsum(requests).astype(float), strict=True)),
            )
        )
    return series
