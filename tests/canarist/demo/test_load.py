"""The load generator against a real demo service: it counts who served what, sends the region
header to a share of requests, and a slow server never stalls it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from canarist.demo.load import NO_ANSWER, NO_VERSION, LoadGenerator, format_counts
from canarist.demo.service import Behaviour, DemoService


@pytest.fixture
def service_url(request: pytest.FixtureRequest) -> Iterator[str]:
    behaviour = getattr(request, "param", Behaviour("v1", latency=0.001, error_rate=0.3))
    service = DemoService(behaviour, 0)
    thread = threading.Thread(target=service.serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{service.port}/"
    service.stop()
    thread.join(5)


def wait_for(load: LoadGenerator, total: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(load.counts().values()) < total and time.monotonic() < deadline:
        time.sleep(0.05)


def test_it_counts_responses_by_version_and_status(service_url: str) -> None:
    load = LoadGenerator(service_url, 40, region_share=0.5, seed=7).start()
    try:
        wait_for(load, 40)
    finally:
        load.stop()
    counts = load.counts()
    assert {version for version, _ in counts} == {"v1"}
    assert {status for _, status in counts} == {200, 500}  # 30% errors: both within 40
    total, regional = sum(counts.values()), sum(load.region_counts().values())
    assert total >= 40 and 0 < regional < total
    assert "v1 200:" in format_counts(counts)


@pytest.mark.parametrize("service_url", [Behaviour("slow", latency=2.0)], indirect=True)
def test_a_slow_server_times_out_and_never_stalls_the_arrivals(service_url: str) -> None:
    load = LoadGenerator(service_url, 20, region_share=0.0, seed=1, timeout=0.2).start()
    try:
        wait_for(load, 5)
    finally:
        load.stop()
    counts = load.counts()
    assert counts.get((NO_VERSION, NO_ANSWER), 0) >= 5
    assert load.region_counts() == {}
    with pytest.raises(ValueError, match="rate_per_s"):
        LoadGenerator(service_url, 0)
