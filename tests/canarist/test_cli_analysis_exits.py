"""Exit codes a pipeline can use: ``analyze`` and ``backtest`` against a real Prometheus.

0, 1 and 3 follow the verdict (or the decision); 2 is a usage error; 4 says Prometheus could not
answer, in one line on stderr that names the URL and the cause. The data is written into the
test stack's Prometheus; the closed port is a real one nobody listens on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import ServiceProcess, free_port
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

ROOT = Path(__file__).parents[2]
POLICY = ROOT / "policies" / "default-canary.yaml"
CANARIST = Path(sys.executable).with_name("canarist")
MINUTES = 30
runner = CliRunner()


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()


@pytest.fixture(scope="module")
def history(prometheus_server: ServiceProcess) -> Iterator[dict[str, str]]:
    """Two past rollouts of 30 minutes: a healthy canary and one with 5x the errors."""
    start = float(int(time.time() // 60 * 60) - 4 * 3600)
    healthy = Behaviour()
    for number, (app_name, canary) in enumerate(
        {"exits-healthy": healthy, "exits-errors": Behaviour(error_ratio=0.05)}.items()
    ):
        series = http_service(app_name, "v1", start, MINUTES, healthy, seed=30 + number)
        series += http_service(
            app_name,
            "v2",
            start,
            MINUTES,
            Behaviour(requests_per_second=12.5, error_ratio=canary.error_ratio),
            seed=40 + number,
        )
        write_samples(prometheus_server.url, series)
    yield {"url": prometheus_server.url, "start": iso(start), "end": iso(start + MINUTES * 60)}


def flags(
    history: dict[str, str], app_name: str, canary: str = "v2", policy: Path = POLICY
) -> list[str]:
    return [
        "--policy", str(policy),
        "--prometheus", history["url"],
        "--baseline", f'app="{app_name}",version="v1"',
        "--canary", f'app="{app_name}",version="{canary}"',
        "--start", history["start"],
        "--end", history["end"],
    ]  # fmt: skip


def invoke(command: str, arguments: list[str]) -> Result:
    return runner.invoke(app, [command, *arguments])


@pytest.mark.parametrize(
    ("app_name", "canary", "outcome", "code"),
    [
        ("exits-healthy", "v2", "pass", 0),
        ("exits-errors", "v2", "fail", 1),
        ("exits-healthy", "v9", "inconclusive", 3),  # no canary data
    ],
)
def test_analyze_exits_with_the_verdict(
    history: dict[str, str], app_name: str, canary: str, outcome: str, code: int
) -> None:
    result = invoke("analyze", [*flags(history, app_name, canary), "--json"])
    assert json.loads(result.stdout)["outcome"] == outcome
    assert result.exit_code == code, result.output
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("app_name", "canary", "decision", "code"),
    [
        ("exits-healthy", "v2", "promote", 0),
        ("exits-errors", "v2", "abort", 1),
        ("exits-healthy", "v9", "inconclusive", 3),
    ],
)
def test_backtest_exits_with_the_decision(
    history: dict[str, str], app_name: str, canary: str, decision: str, code: int
) -> None:
    as_json = invoke("backtest", [*flags(history, app_name, canary), "--json"])
    assert json.loads(as_json.stdout)["decision"] == decision
    assert as_json.exit_code == code, as_json.output
    as_table = invoke("backtest", flags(history, app_name, canary))
    assert f"decision: {decision} at " in as_table.stdout
    assert as_table.exit_code == code, as_table.output


def test_usage_errors_exit_2_without_a_traceback(history: dict[str, str]) -> None:
    arguments = flags(history, "exits-healthy")
    bad_start = [*arguments[:-4], "--start", "yesterday", *arguments[-2:]]
    bad_url = [*arguments[:2], "--prometheus", "prometheus:9090", *arguments[4:]]
    for command, given in [
        ("analyze", bad_start),
        ("analyze", bad_url),
        ("backtest", bad_url),
        ("backtest", arguments[:4]),  # no --baseline, --canary, --start, --end
    ]:
        result = invoke(command, given)
        assert result.exit_code == 2, (command, given, result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
    said = invoke("analyze", bad_url).stderr.replace("│", " ")
    assert "Prometheus URL must be http(s)://host[:port][/prefix]" in " ".join(said.split())


@pytest.mark.parametrize("command", ["analyze", "backtest"])
def test_an_unreachable_prometheus_is_one_line_on_stderr_and_exit_4(
    history: dict[str, str], command: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    arguments = flags(history, "exits-healthy")
    arguments[3] = dead
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    for output in ([], ["--json"]):
        completed = subprocess.run(
            [str(CANARIST), command, *arguments, *output],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 4, completed.stderr
        assert completed.stderr.splitlines() == [
            f"error: cannot reach Prometheus at {dead}: Connection refused"
            " (12 of 12 queries failed)"
        ]
        if output:  # --json still prints its document: every metric failed to be queried
            document = json.loads(completed.stdout)
            metrics = document["metrics"]
            assert {m["judgement"]["reason_code"] for m in metrics} == {"query_error"}
        else:  # the table would only repeat the failure, with the HTTP library's text
            assert completed.stdout == ""


def test_a_query_prometheus_refuses_is_one_line_on_stderr_and_exit_4(
    history: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    memory = "query: max by (pod) (process_resident_memory_bytes{ {{ selector }} })"
    assert memory in POLICY.read_text()
    # Valid PromQL (validate lets it through), refused by Prometheus when it runs: the regex
    # of label_replace is compiled at evaluation.
    refused = f'query: label_replace({memory[7:]}, "dst", "$1", "pod", "(")'
    broken.write_text(POLICY.read_text().replace(memory, refused))
    for command in ("analyze", "backtest"):
        result = invoke(command, [*flags(history, "exits-errors", policy=broken), "--json"])
        assert result.exit_code == 4, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: Prometheus at {history['url']}: ")
        assert "HTTP 422, execution: invalid regular expression in l" in line
        # all 12 queries (6 templates, 2 versions) asked in one request; memory's fail for both
        assert line.endswith("(2 of 12 queries failed)")
        assert "query: label_replace(max by (pod) (process_resident_memory_bytes{" in line
        document = json.loads(result.stdout)  # the rest of the analysis is still reported
        metrics = {m["name"]: m["judgement"] for m in document["metrics"]}
        assert metrics["memory"]["reason_code"] == "query_error"
        assert metrics["error-ratio"]["outcome"] == "fail"


@pytest.mark.parametrize(
    ("command", "meanings"),
    [
        ("analyze", ["0 PASS", "1 FAIL", "2 usage", "3 INCONCLUSIVE", "4 Prometheus"]),
        (
            "backtest",
            ["0 promote", "1 abort", "2 usage", "3 inconclusive", "4 Prometheus", "5 --suite"],
        ),
    ],
)
def test_help_documents_every_exit_code(command: str, meanings: list[str]) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "Exit codes:" in text
    for meaning in meanings:
        assert meaning in text, meaning
