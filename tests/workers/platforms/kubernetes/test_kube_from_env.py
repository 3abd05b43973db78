"""The registry builds the platform from CANARIST_KUBECONFIG, and says so when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.platforms.kubernetes.driving import rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from workers.actions import EnsureCanary
from workers.platforms import PlatformError, platform_for

pytestmark = pytest.mark.kubernetes


def test_the_registry_builds_the_platform_from_the_kubeconfig_it_is_given(
    cluster: Cluster, app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if cluster.real:
        pytest.skip("writes a kubeconfig for the emulator")
    kubeconfig = cluster.write_kubeconfig(tmp_path / "config")
    monkeypatch.setenv("CANARIST_KUBECONFIG", str(kubeconfig))
    cluster.deployment(app)
    platform = platform_for("kubernetes")
    assert platform.name == "kubernetes"
    platform.apply(rollout(cluster, app, router="replicas"), EnsureCanary())
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0


def test_missing_credentials_are_a_platform_error_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARIST_KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(PlatformError, match=r"no Kubernetes credentials .*CANARIST_KUBECONFIG"):
        platform_for("kubernetes")
