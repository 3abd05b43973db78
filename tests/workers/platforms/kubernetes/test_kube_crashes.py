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

from analyzer.policy import load_policy
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster
from tests.workers.rollout_harness import (
    STRATEGIES,
    Harness,
    policy_name,
    settled,
    write_policies,
)
from tests.workers.test_crashes_and_commands import give
from workers.platforms.kubernetes import KubernetesPlatform
from workers.state import Phase
from workers.strategies import plan_for

pytestmark = pytest.mark.kubernetes
IMAGES = (PAUSE, PAUSE.replace(":3.9", ":3.10"))  # both exist, for a real cluster
_versions = itertools.count(2)


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("policies"))


def user_app(cluster: Cluster, app: str) -> str:
    cluster.deployment(app, replicas=2)
    cluster.service(app, app)
    cluster.http_route(app, app)
    return app


def harness(cluster: Cluster, policies: Path) -> Harness:
    """Every worker a new platform over a new client, as a restarted process builds one."""
    return Harness(
        policies,
        lambda: KubernetesPlatform(cluster.api_client(), timeout=5.0),
        settle=cluster.settle,
        poll=1.0 if cluster.real else 0.0,
    )


def running(cluster: Cluster, app: str) -> tuple[str, str]:
    """The stable Deployment's version label and image."""
    stable = cluster.get("deployment", app)
    assert stable is not None
    template = stable["spec"]["template"]
    return template["metadata"]["labels"]["version"], template["spec"]["containers"][0]["image"]


def submit(runner: Harness, cluster: Cluster, app: str, strategy: str) -> tuple[str, str, str]:
    """A rollout of a new version with the other image: its id, and the stable and new versions."""
    old, image = running(cluster, app)
    new = f"v{next(_versions)}"
    rollout_id = runner.submit(
        app=app, namespace=cluster.namespace, version=new, policy=policy_name(strategy),
        platform="kubernetes", image=IMAGES[1 - IMAGES.index(image)],
        baseline=f'app="{app}",version="{old}"', canary=f'app="{app}",version="{new}"',
    )  # fmt: skip
    return rollout_id, old, new


def shares(rule: dict[str, Any]) -> dict[str, float]:
    """Each backend's share of a rule's requests (a missing weight is Gateway API's 1)."""
    weights = {ref["name"]: ref.get("weight", 1) for ref in rule.get("backendRefs") or []}
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items() if weight}


def serves_only(cluster: Cluster, app: str, version: str, why: str) -> None:
    assert running(cluster, app)[0] == version, why
    service = cluster.get("service", app)
    assert service is not None
    assert service["spec"]["selector"].get("version") in (None, version), why
    route = cluster.get("httproute", app)
    assert route is not None
    assert [shares(rule) for rule in route["spec"]["rules"]] == [{app: 1.0}], why
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is None or canary["spec"]["replicas"] == 0, why


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_worker_killed_between_any_two_actions_ends_promoted_on_kubernetes(
    cluster: Cluster, policies: Path, strategy: str, app: str
) -> None:
    user_app(cluster, app)
    runner = harness(cluster, policies)
    rollout_id, _, new = submit(runner, cluster, app, strategy)
    assert runner.finish(rollout_id).phase is Phase.PROMOTED
    serves_only(cluster, app, new, "undisturbed")
    for kill_at in range(runner.applies + 1):
        runner = harness(cluster, policies)
        rollout_id, _, new = submit(runner, cluster, app, strategy)
        if not runner.run(rollout_id, settled, kill_at=kill_at):
            runner.recover()
        state = runner.finish(rollout_id)
        assert state.phase is Phase.PROMOTED, f"killed at {kill_at}: {state}"
        serves_only(cluster, app, new, f"killed at {kill_at}")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["abort", "promote-full"])
def test_a_command_at_every_stage_ends_where_it_says_on_kubernetes(
    cluster: Cluster, policies: Path, strategy: str, command: str, app: str
) -> None:
    user_app(cluster, app)
    policy = load_policy(policies / f"{policy_name(strategy)}.yaml")
    for stage in range(len(plan_for(policy.strategy))):
        runner = harness(cluster, policies)
        rollout_id, old, new = submit(runner, cluster, app, strategy)
        runner.run(
            rollout_id,
            lambda s, stage=stage: (
                s.phase is Phase.PROMOTING
                or (s.phase is Phase.PROGRESSING and s.stage_index >= stage and s.awaiting is None)
            ),
        )
        state = give(runner, rollout_id, command, killed=True)
        expected = Phase.ABORTED if command == "abort" else Phase.PROMOTED
        assert state.phase is expected, f"stage {stage}: {state}"
        serves_only(cluster, app, old if command == "abort" else new, f"stage {stage}")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["pause-resume", "abort-retry"])
def test_pause_resume_and_retry_in_the_first_analysis_on_kubernetes(
    cluster: Cluster, policies: Path, strategy: str, command: str, app: str
) -> None:
    user_app(cluster, app)
    runner = harness(cluster, policies)
    rollout_id, _, new = submit(runner, cluster, app, strategy)
    runner.run(rollout_id, lambda s: s.phase is Phase.PROGRESSING and s.window_start is not None)
    assert give(runner, rollout_id, command, killed=True).phase is Phase.PROMOTED
    serves_only(cluster, app, new, command)
