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


def http_service(
    app: str,
    version: str,
    start: float,
    minutes: int,
    behaviour: Behaviour,
    *,
    seed: int,
    scrape: float = 15.0,
) -> SeriesInput:
    """Cumulative series of one version from ``start`` for ``minutes``, one point per scrape."""
    rng = np.random.default_rng(seed)
    steps = int(minutes * 60 / scrape)
    times = start + scrape * np.arange(1, steps + 1)
    requests = rng.poisson(behaviour.requests_per_second * scrape, steps)
    errors = rng.binomial(requests, behaviour.error_ratio)
    latencies = [rng.lognormal(np.log(behaviour.median_latency), 0.5, count) for count in requests]
    per_bucket = np.array(
        [[np.count_nonzero(sample <= bound) for bound in BUCKETS] for sample in latencies]
    )
    base = {"app": app, "version": version}
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
            list(zip(times, behaviour.memory_bytes * rng.normal(1, 0.01, steps), strict=True)),
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
    return series
