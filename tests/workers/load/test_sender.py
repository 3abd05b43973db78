"""One bounded load against a real demo service: it stops at its count, at its time, and when
told, and the service saw exactly what the load says it sent."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from analyzer.policy.load import LoadRequestSpec
from tests.waiting import wait_until
from workers.load.sender import LoadSender, read_sample
from workers.platforms.local.process import free_port

GET = (LoadRequestSpec(method="GET", path="/"), LoadRequestSpec(method="GET", path="/?from=load"))


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "canarist.demo.service", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--version", "v9", "--latency", "0.001"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("the demo service to answer", lambda: _answers(url), timeout=20)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=0.5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def served(url: str) -> int:
    text = httpx.get(url + "/metrics", timeout=2, trust_env=False).text
    found = re.findall(r'^http_requests_total\{code="\d+"\} (\S+)$', text, re.MULTILINE)
    return int(sum(float(value) for value in found))


def test_it_stops_at_its_count(service: str) -> None:
    before = served(service)
    sender = LoadSender(service, GET, rate=100, total=30, ends_at=time.time() + 60).start()
    assert sender.join(10)
    tally = sender.tally()
    assert (tally.sent, tally.errors, tally.skipped, dict(tally.statuses)) == (30, 0, 0, {200: 30})
    assert tally.seconds < 5  # 30 at 100/s: about 0.3 s, not the minute it was allowed
    assert served(service) - before == 30


def test_it_stops_at_its_time(service: str) -> None:
    started = time.monotonic()
    sender = LoadSender(service, GET, rate=20, total=10_000, ends_at=time.time() + 1.5).start()
    assert sender.join(10)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 4.0
    assert 20 <= sender.tally().sent <= 31  # 20/s for 1.5 s


def test_it_stops_when_told_and_counts_unanswered_requests_as_errors(service: str) -> None:
    sender = LoadSender(service, GET, rate=50, total=10_000, ends_at=time.time() + 60).start()
    time.sleep(0.5)
    sender.stop()
    assert sender.join(5)
    sent = sender.tally().sent
    time.sleep(0.3)
    assert sender.tally().sent == sent and 10 <= sent <= 40

    nobody = f"http://127.0.0.1:{free_port()}"
    refused = LoadSender(nobody, GET, rate=50, total=5, ends_at=time.time() + 10).start()
    assert refused.join(10)
    tally = refused.tally()
    assert (tally.sent, tally.errors, dict(tally.statuses)) == (5, 5, {0: 5})


def test_a_recorded_sample_is_read_line_by_line(tmp_path: Path) -> None:
    sample = tmp_path / "checkout.txt"
    sample.write_text("# recorded 2026-12-01\nGET /api/items\n/healthz\npost /api/cart\n")
    assert [(r.method, r.path) for r in read_sample(sample)] == [
        ("GET", "/api/items"), ("GET", "/healthz"), ("POST", "/api/cart")
    ]  # fmt: skip
    sample.write_text("GET /ok\nFETCH everything\n")
    with pytest.raises(ValueError, match=r"checkout.txt:2: not a request like 'GET /items'"):
        read_sample(sample)
