"""The default policy's newer evidence end to end, over data in the real Prometheus: each version
on pods labelled ``pod`` with the histogram's ``_sum`` and ``_count``, as Kubernetes scrapes a
service. A canary 1.3 times slower and a memory leak are aborted, each by its metric; a healthy
canary with one pod on a slow node is not aborted, and the analysis names the pod."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import ServiceProcess
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

POLICY = Path(__file__).parents[2] / "policies" / "default-canary.yaml"
MINUTES = 30
runner = CliRunner()


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()


@pytest.fixture(scope="module")
def history(prometheus_server: ServiceProcess) -> Iterator[dict[str, str]]:
    """Three past canaries of 30 minutes: 6 baseline pods, 2 canary pods with a quarter of the
    traffic each version gets per pod."""
    start = float(int(time.time() // 60 * 60) - 5 * 3600)
    healthy = Behaviour(requests_per_second=60.0)
    cases = {
        "slower": (Behaviour(requests_per_second=20.0, median_latency=0.104), 1.0),
        "leaking": (Behaviour(requests_per_second=20.0, memory_growth_per_minute=0.01), 1.0),
        "slowpod": (Behaviour(requests_per_second=20.0), 1.3),
    }
    for number, (name, (canary, slow_pod)) in enumerate(cases.items()):
        series = http_service(name, "v1", start, MINUTES, healthy, seed=40 + number, pods=6)
        series += http_service(
            name, "v2", start, MINUTES, canary, seed=50 + number, pods=2, slow_pod=slow_pod
        )
        write_samples(prometheus_server.url, series)
    yield {"url": prometheus_server.url, "start": iso(start), "end": iso(start + MINUTES * 60)}


def backtest(history: dict[str, str], name: str, exit_code: int) -> dict[str, object]:
    result = runner.invoke(
        app,
        [
            "backtest", "--policy", str(POLICY), "--prometheus", history["url"],
            "--baseline", f'app="{name}",version="v1"', "--canary", f'app="{name}",version="v2"',
            "--start", history["start"], "--end", history["end"], "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == exit_code, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def judgement(result: dict[str, object], metric: str) -> dict[str, object]:
    metrics = {m["name"]: m for m in result["metrics"]}  # type: ignore[attr-defined]
    found: dict[str, object] = metrics[metric]["judgement"]
    return found


def test_a_thirty_percent_slower_canary_is_aborted_on_its_mean_latency(
    history: dict[str, str],
) -> None:
    result = backtest(history, "slower", exit_code=1)
    assert result["decision"] == "abort"
    latency = judgement(result, "latency")
    assert latency["outcome"] == "fail"
    assert str(result["reason"]).startswith("latency ")
    assert latency["details"]["tested"] == "mean"  # type: ignore[index]
    assert 0.2 < float(latency["effect"]) < 0.4  # type: ignore[arg-type]


def test_a_memory_leak_is_aborted_by_the_trend(history: dict[str, str]) -> None:
    result = backtest(history, "leaking", exit_code=1)
    assert result["decision"] == "abort"
    memory = judgement(result, "memory")
    assert memory["outcome"] == "fail" and "a leak" in str(memory["reason"])
    assert float(result["decided_at_seconds"]) <= 20 * 60  # type: ignore[arg-type]


def test_one_slow_canary_pod_is_named_and_not_aborted(history: dict[str, str]) -> None:
    result = backtest(history, "slowpod", exit_code=3)  # inconclusive: a person decides
    assert result["decision"] == "inconclusive"
    latency = judgement(result, "latency")
    assert latency["reason_code"] == "one_pod"
    assert "pod slowpod-v2-0 alone explains it" in str(latency["reason"])
