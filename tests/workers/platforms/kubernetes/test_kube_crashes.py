"""The crash and command matrix on Kubernetes (kmock's emulator, or a real cluster): a worker
killed between any two platform actions, and abort or full promotion through the API at every
stage with the worker that takes the command up killed before it acts. Each run ends with the
objects meaning what the rollout's final phase says: the stable Deployment runs the version
that phase names, the stable Service selects it, the HTTPRoute sends every request of every
rule to the stable Service, and the canary runs no pods.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster, service_weights
from tests.workers.rollout_harness import (
    STRATEGIES,
    Harness,
    Serving,
    Start,
    command_at_every_stage,
    in_the_first_analysis,
    killed_before_every_call,
    policy_name,
    stage_count,
    write_policies,
)
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes
IMAGES = (PAUSE, PAUSE.replace(":3.9", ":3.10"))  # both exist, for a real cluster
_versions = itertools.count(2)


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("policies"))


def running(cluster: Cluster, app: str) -> tuple[str, str]:
    """The stable Deployment's version label and image."""
    stable = cluster.get("deployment", app)
    assert stable is not None
    template = stable["spec"]["template"]
    return template["metadata"]["labels"]["version"], template["spec"]["containers"][0]["image"]


def shares(rule: dict[str, Any]) -> dict[str, float]:
    """Each backend's share of a rule's requests (a missing weight is Gateway API's 1)."""
    weights = service_weights(rule)
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items() if weight}


def world(cluster: Cluster, app: str, policies: Path, strategy: str) -> tuple[Start, Serving]:
    """The user's app (Deployment, Service, HTTPRoute); runs of ``strategy``, each a new
    version with the other image, every worker a new platform over a new client; and the
    check of what the objects mean."""
    cluster.deployment(app, replicas=2)
    cluster.service(app, app)
    cluster.http_route(app, app)

    def start() -> tuple[Harness, str, str, str]:
        runner = Harness(
            policies,
            lambda: KubernetesPlatform(cluster.api_client(), timeout=5.0),
            settle=cluster.settle,
            poll=1.0 if cluster.real else 0.0,
        )
        old, image = running(cluster, app)
        new = f"v{next(_versions)}"
        rollout_id = runner.submit(
            app=app, namespace=cluster.namespace, version=new, policy=policy_name(strategy),
            platform="kubernetes", image=IMAGES[1 - IMAGES.index(image)],
            baseline=f'app="{app}",version="{old}"', canary=f'app="{app}",version="{new}"',
        )  # fmt: skip
        return runner, rollout_id, old, new

    def serves_only(version: str, why: str) -> None:
        assert running(cluster, app)[0] == version, why
        service = cluster.get("service", app)
        assert service is not None
        assert service["spec"]["selector"].get("version") in (None, version), why
        route = cluster.get("httproute", app)
        assert route is not None
        assert [shares(rule) for rule in route["spec"]["rules"]] == [{app: 1.0}], why
        canary = cluster.get("deployment", f"{app}-canary")
        assert canary is None or canary["spec"]["replicas"] == 0, why

    return start, serves_only


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_worker_killed_between_any_two_actions_ends_promoted_on_kubernetes(
    cluster: Cluster, policies: Path, strategy: str, app: str
) -> None:
    killed_before_every_call(*world(cluster, app, policies, strategy))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["abort", "promote-full"])
def test_a_command_at_every_stage_ends_where_it_says_on_kubernetes(
    cluster: Cluster, policies: Path, strategy: str, command: str, app: str
) -> None:
    start, serves_only = world(cluster, app, policies, strategy)
    command_at_every_stage(start, stage_count(policies, strategy), command, serves_only)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["pause-resume", "abort-retry"])
def test_pause_resume_and_retry_in_the_first_analysis_on_kubernetes(
    cluster: Cluster, policies: Path, strategy: str, command: str, app: str
) -> None:
    start, serves_only = world(cluster, app, policies, strategy)
    in_the_first_analysis(start, command, serves_only)
