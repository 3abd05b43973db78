"""``canarist report ID [--output FILE]`` renders the page from the service's own settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app
from tests.canarist.report.page_reading import Page
from tests.canarist.report.rollout_scenario import Played

runner = CliRunner()


@pytest.fixture
def service_env(played: Played, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARIST_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("CANARIST_REDIS__URL", played.redis_url)
    monkeypatch.setenv("CANARIST_PROMETHEUS__URL", played.prometheus_url)
    monkeypatch.setenv("CANARIST_POLICY_DIR", str(played.policy_dir))


@pytest.mark.usefixtures("service_env")
def test_the_report_is_written_to_a_file(played: Played, tmp_path: Path) -> None:
    target = tmp_path / "incident" / "report.html"

    result = runner.invoke(app, ["report", played.aborted.id, "--output", str(target)])

    assert result.exit_code == 0, result.output
    assert f"report of {played.aborted.id} written to {target}" in result.stderr
    page = Page(target.read_text(encoding="utf-8"))
    assert f"Aborted: {played.aborted.abort_reason}" in page.text
    assert len(page.all("svg")) == 6
    assert page.within("metrics", "text", "no-data") == []  # Prometheus from the settings


@pytest.mark.usefixtures("service_env")
def test_without_output_the_page_goes_to_stdout(played: Played) -> None:
    result = runner.invoke(app, ["report", played.promoted.id])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert "Promoted:" in Page(result.stdout).text


@pytest.mark.usefixtures("service_env")
def test_an_unknown_rollout_exits_2() -> None:
    result = runner.invoke(app, ["report", "no-such-rollout"])

    assert result.exit_code == 2
    assert "error: no rollout no-such-rollout" in result.stderr
