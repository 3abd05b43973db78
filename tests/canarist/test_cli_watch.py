"""``canarist watch`` refuses to start without what it needs, naming it (exit 2).

The watch running as a process against a cluster, submitting and stopping on SIGTERM, is tested
with the emulator in tests/workers/platforms/kubernetes/test_kube_gitops.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarist.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def only_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("CANARIST_")]:
        monkeypatch.delenv(name)


def test_a_namespace_that_is_no_namespace_name_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARIST_WATCH_NAMESPACES", "shop,Not_A_Namespace")
    result = runner.invoke(app, ["watch"])
    assert result.exit_code == 2
    assert "the settings do not load" in result.stderr
    assert "'Not_A_Namespace' is not a namespace name" in result.stderr


def test_no_cluster_credentials_stop_it_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CANARIST_WATCH_NAMESPACES", "shop")
    monkeypatch.setenv("CANARIST_KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("CANARIST_REDIS__URL", "redis://127.0.0.1:9/0")  # never reached
    result = runner.invoke(app, ["watch"])
    assert result.exit_code == 2
    assert "no Kubernetes credentials" in result.stderr
    assert "CANARIST_KUBECONFIG" in result.stderr
