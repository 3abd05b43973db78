"""``canarist policy validate --prometheus``: each query runs once against the real Prometheus of
the test session, and a query without series is a warning at its line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import ServiceProcess, free_port
from tests.promwrite import write_samples

runner = CliRunner()
POLICY = """\
name: probed
args:
  - name: route
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(probe_requests_total{ {{ selector }}, code="500" }[{{ interval }}]))
    total: sum by (pod) (increase(probe_requests_total{ {{ selector }} }[{{ interval }}]))
  - name: memory
    kind: series
    query: max(probe_memory_bytes{ {{ selector }}, route="{{ route }}" })
strategy: {type: canary, steps: [{set_weight: 100}]}
"""
BASELINE = 'app="probe",version="v1"'
CANARY = 'app="probe",version="v2"'


@pytest.fixture(scope="module")
def prometheus(prometheus_server: ServiceProcess) -> str:
    """Requests of both versions (two baseline pods, one canary pod, 500s for the baseline only)
    over the last 20 minutes; memory for the baseline only."""
    now = float(int(time.time()))
    minutes = [now - 60 * back for back in range(20, -1, -1)]
    series = []
    for version, pod, code in (("v1", "a", "500"), ("v1", "b", "200"), ("v2", "c", "200")):
        labels = {"__name__": "probe_requests_total", "app": "probe", "version": version}
        samples = [(moment, 10.0 * step) for step, moment in enumerate(minutes)]
        series.append(({**labels, "pod": pod, "code": code}, samples))
    memory = {"__name__": "probe_memory_bytes", "app": "probe", "version": "v1", "route": "/"}
    series.append((memory, [(moment, 1e8) for moment in minutes]))
    write_samples(prometheus_server.url, series)
    return prometheus_server.url


def validate(tmp_path: Path, *options: str) -> tuple[int, list[str]]:
    policy = tmp_path / "probed.yaml"
    policy.write_text(POLICY)
    result = runner.invoke(app, ["policy", "validate", str(policy), *options])
    lines = [line.removeprefix(f"{policy}:") for line in result.output.splitlines()]
    return result.exit_code, lines


def test_each_query_field_gets_its_series_count_or_a_warning_at_its_line(
    prometheus: str, tmp_path: Path
) -> None:
    options = ["--prometheus", prometheus, "--baseline", BASELINE, "--canary", CANARY]
    code, lines = validate(tmp_path, *options, "--arg", "route=/")
    assert code == 0, lines
    assert lines[1:] == [
        "7: metrics[0].errors: warning: 1 series for baseline, no series for canary "
        '(app="probe",version="v2") in the last hour',
        "8: metrics[0].total: 2 series for baseline, 1 series for canary",
        "11: metrics[1].query: warning: 1 series for baseline, no series for canary "
        '(app="probe",version="v2") in the last hour',
    ]


def test_an_arg_without_default_or_value_is_not_run(prometheus: str, tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "--prometheus", prometheus, "--canary", CANARY)
    assert code == 0, lines
    assert lines[-1] == (
        "11: metrics[1].query: warning: not run: route has no default; give --arg route=..."
    )
    assert lines[2] == "8: metrics[0].total: 1 series for canary"


def test_a_query_prometheus_refuses_fails_validation(prometheus: str, tmp_path: Path) -> None:
    """Many-to-many matching parses, and Prometheus refuses it once it has the series."""
    policy = tmp_path / "probed.yaml"
    refused = POLICY.replace(
        'route="{{ route }}" })', 'route="{{ route }}" } / on() group_left probe_requests_total)'
    )
    policy.write_text(refused)
    options = ["--prometheus", prometheus, "--baseline", BASELINE, "--arg", "route=/"]
    result = runner.invoke(app, ["policy", "validate", str(policy), *options])
    assert result.exit_code == 2, result.output
    assert "metrics[1].query: Prometheus refuses the query for baseline: " in result.output
    assert result.output.splitlines()[-1] == "1 of 1 policies invalid"


def test_an_unreachable_prometheus_exits_4_once_the_policies_are_valid(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, lines = validate(tmp_path, "--prometheus", url, "--canary", CANARY)
    assert code == 4, lines
    assert lines[-1].startswith(f"error: Prometheus at {url}: ")


def test_versions_without_prometheus_are_a_usage_error(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, "--canary", CANARY)
    assert code == 2
    assert any("need --prometheus" in line for line in lines)
