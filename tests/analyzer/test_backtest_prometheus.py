"""analyze and backtest end to end: the default policy over data in a real Prometheus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import ServiceProcess, free_port
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

ROOT = Path(__file__).parents[2]
POLICY = ROOT / "policies" / "default-canary.yaml"
MINUTES = 30
runner = CliRunner()


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()


@pytest.fixture(scope="module")
def history(prometheus_server: ServiceProcess) -> Iterator[dict[str, str]]:
    """Three past rollouts of 30 minutes each: healthy, 5x errors, and 40% slower."""
    start = float(int(time.time() // 60 * 60) - 3 * 3600)
    healthy, slow = Behaviour(), Behaviour(median_latency=0.112)
    cases = {
        "healthy": (healthy, healthy),
        "errors": (healthy, Behaviour(error_ratio=0.05)),
        "slow": (healthy, slow),
    }
    for number, (app_name, (stable, canary)) in enumerate(cases.items()):
        series = http_service(app_name, "v1", start, MINUTES, stable, seed=10 + number)
        series += http_service(
            app_name,
            "v2",
            start,
            MINUTES,
            Behaviour(
                requests_per_second=stable.requests_per_second / 4,
                error_ratio=canary.error_ratio,
                median_latency=canary.median_latency,
            ),
            seed=20 + number,
        )
        write_samples(prometheus_server.url, series)
    yield {"url": prometheus_server.url, "start": iso(start), "end": iso(start + MINUTES * 60)}


def run(
    history: dict[str, str], command: str, app_name: str, *extra: str, exit_code: int = 0
) -> dict[str, object]:
    """The command's --json document; ``exit_code`` is 0 for PASS / promote, 1 for FAIL / abort."""
    result = runner.invoke(
        app,
        [
            command,
            "--policy", str(POLICY),
            "--prometheus", history["url"],
            "--baseline", f'app="{app_name}",version="v1"',
            "--canary", f'app="{app_name}",version="v2"',
            "--start", history["start"],
            "--end", history["end"],
            "--json",
            *extra,
        ],
    )  # fmt: skip
    assert result.exit_code == exit_code, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_backtest_promotes_a_healthy_release(history: dict[str, str]) -> None:
    result = run(history, "backtest", "healthy")
    assert result["decision"] == "promote", result["reason"]
    assert result["decided_at_seconds"] == MINUTES * 60


def test_backtest_aborts_on_errors_early_and_names_the_metric(history: dict[str, str]) -> None:
    result = run(history, "backtest", "errors", exit_code=1)
    assert result["decision"] == "abort", result["reason"]
    assert isinstance(result["decided_at_seconds"], float)
    assert result["decided_at_seconds"] <= 10 * 60
    metrics = {m["name"]: m for m in result["metrics"]}  # type: ignore[attr-defined]
    assert metrics["error-ratio"]["judgement"]["outcome"] == "fail"
    assert "error-ratio" in str(result["reason"])


def test_backtest_aborts_on_latency(history: dict[str, str]) -> None:
    result = run(history, "backtest", "slow", exit_code=1)
    assert result["decision"] == "abort", result["reason"]
    metrics = {m["name"]: m for m in result["metrics"]}  # type: ignore[attr-defined]
    assert metrics["latency"]["judgement"]["outcome"] == "fail"


def test_analyze_gives_the_verdict_with_evidence(history: dict[str, str]) -> None:
    verdict = run(history, "analyze", "errors", exit_code=1)
    assert verdict["outcome"] == "fail"
    error_ratio = next(m for m in verdict["metrics"] if m["name"] == "error-ratio")  # type: ignore[attr-defined]
    judgement = error_ratio["judgement"]
    assert judgement["e_value"] >= judgement["threshold"]
    assert judgement["canary"] and judgement["baseline"]
    assert 2.0 < 1 + judgement["effect"] < 8.0


def test_missing_canary_data_never_promotes(history: dict[str, str]) -> None:
    result = runner.invoke(
        app,
        [
            "backtest",
            "--policy", str(POLICY),
            "--prometheus", history["url"],
            "--baseline", 'app="healthy",version="v1"',
            "--canary", 'app="healthy",version="v9"',
            "--start", history["start"],
            "--end", history["end"],
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert json.loads(result.output)["decision"] == "inconclusive"


def test_prometheus_unreachable_is_inconclusive_not_promote(history: dict[str, str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = run({**history, "url": dead}, "backtest", "healthy", exit_code=4)
    assert result["decision"] == "inconclusive"
    assert "query failed" in json.dumps(result["metrics"])


def test_suite_reports_confusion_and_fails_on_a_wrong_expectation(
    history: dict[str, str], tmp_path: Path
) -> None:
    def case(name: str, app_name: str, expect: str) -> str:
        return (
            f"  - name: {name}\n    start: {history['start']}\n    end: {history['end']}\n"
            f'    baseline: \'app="{app_name}",version="v1"\'\n'
            f'    canary: \'app="{app_name}",version="v2"\'\n    expect: {expect}\n'
        )

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"policy: {POLICY}\nprometheus: {history['url']}\ncases:\n"
        + case("good-release", "healthy", "promote")
        + case("incident-1", "errors", "abort")
    )
    result = runner.invoke(app, ["backtest", "--suite", str(suite), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [c["ok"] for c in report["cases"]] == [True, True]
    assert report["summary"]["confusion"] == {"promote": {"promote": 1}, "abort": {"abort": 1}}

    suite.write_text(suite.read_text().replace("expect: abort", "expect: promote"))
    result = runner.invoke(app, ["backtest", "--suite", str(suite)])
    assert result.exit_code == 5  # not 2, which says the suite or a flag is invalid
    assert "1 passed, 1 failed" in result.output
