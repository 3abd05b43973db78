"""The demo service over real HTTP: its error rate, latency flags, metrics, version header,
memory growth, and a clean exit on SIGTERM when run as ``python -m canarist.demo.service``."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from canarist.demo.service import BUCKETS, Behaviour, DemoService
from workers.platforms.local.process import free_port


@contextmanager
def running(behaviour: Behaviour) -> Iterator[httpx.Client]:
    service = DemoService(behaviour, 0)
    thread = threading.Thread(target=service.serve, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{service.port}", trust_env=False) as client:
            yield client
    finally:
        service.stop()
        thread.join(5)


def samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_error_rate_is_honoured_and_counted_by_code() -> None:
    with running(Behaviour("v2", latency=0.0, error_rate=0.2)) as client:
        codes = Counter(client.get("/").status_code for _ in range(500))
        metrics = samples(client)
    assert set(codes) == {200, 500}
    assert 55 <= codes[500] <= 145  # 20% of 500 is 100, sd 8.9: about 5 sd either side
    assert metrics[("http_requests_total", (("code", "500"),))] == codes[500]
    assert metrics[("http_requests_total", (("code", "200"),))] == codes[200]


def test_metrics_are_prometheus_text_with_dense_buckets_and_no_version_label() -> None:
    with running(Behaviour("v1", latency=0.002)) as client:
        for _ in range(20):
            client.get("/")
        metrics = samples(client)
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in metrics
        if name == "http_request_duration_seconds_bucket"
    )
    assert bounds == [*BUCKETS, float("inf")]
    assert {0.005, 0.01, 0.02, 0.025, 0.05, 0.1} <= set(bounds)
    assert metrics[("http_request_duration_seconds_count", ())] == 20
    assert metrics[("process_resident_memory_bytes", ())] > 1_000_000
    assert all("version" not in dict(labels) for _, labels in metrics)


def test_tail_latency_and_extra_latency_show_in_the_histogram() -> None:
    behaviour = Behaviour("v3", latency=0.001, extra_latency=0.03, tail_latency_share=1.0,
                          tail_latency=0.1)  # fmt: skip
    with running(behaviour) as client:
        for _ in range(3):
            client.get("/")
        metrics = samples(client)
    assert metrics[("http_request_duration_seconds_bucket", (("le", "0.1"),))] == 0
    assert metrics[("http_request_duration_seconds_bucket", (("le", "0.25"),))] == 3


def test_every_response_names_the_version_that_served_it() -> None:
    with running(Behaviour("v9", latency=0.0)) as client:
        for path, code in (("/", 200), ("/healthz", 200), ("/metrics", 200), ("/nope", 404)):
            response = client.get(path)
            assert (response.status_code, response.headers["x-canarist-version"]) == (code, "v9")


def test_memory_growth_really_holds_memory() -> None:
    with running(Behaviour("v4", memory_growth_mb_per_min=1200)) as client:  # 20 MB a second
        before = samples(client)[("process_resident_memory_bytes", ())]
        deadline, grown = time.monotonic() + 15, 0.0
        while grown < 30_000_000 and time.monotonic() < deadline:
            time.sleep(0.5)
            grown = samples(client)[("process_resident_memory_bytes", ())] - before
    assert grown >= 30_000_000


def test_run_as_a_module_it_serves_and_exits_cleanly_on_sigterm() -> None:
    port = free_port()
    command = [sys.executable, "-m", "canarist.demo.service", "--port", str(port),
               "--version", "v5", "--error-rate", "0"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", trust_env=False)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert response.headers["x-canarist-version"] == "v5"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()
