"""Rolling: batches move replicas from the stable to the new version, total constant."""

from __future__ import annotations

import json

import pytest

from tests.workers.platforms.kubernetes.driving import NEW_IMAGE, EngineRun, drive, policy, rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from tests.workers.rollout_driver import healthy
from workers.actions import EnsureCanary, Rollback, ScaleNew
from workers.platforms.base import Ready
from workers.platforms.kubernetes import KubernetesPlatform
from workers.state import Phase

pytestmark = pytest.mark.kubernetes


def sizes(cluster: Cluster, app: str) -> tuple[int, int]:
    stable, canary = cluster.get("deployment", app), cluster.get("deployment", f"{app}-canary")
    assert stable is not None and canary is not None
    return stable["spec"]["replicas"], canary["spec"]["replicas"]


def test_batches_shift_replicas_and_an_abort_restores_the_original_size(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app, replicas=4)
    state = rollout(cluster, app, strategy="rolling", router="replicas")
    assert (
        drive(platform, cluster, state, EnsureCanary(), ScaleNew(percent=25), token="1:0:stage")
        == Ready()
    )
    assert sizes(cluster, app) == (3, 1)
    assert drive(platform, cluster, state, ScaleNew(percent=50), token="1:2:stage") == Ready()
    assert sizes(cluster, app) == (2, 2)
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None
    baseline = json.loads(canary["metadata"]["annotations"]["canarist.dev/baseline"])
    assert baseline["replicas"] == 4 and baseline["version"] == "v1"

    assert (
        drive(platform, cluster, state, Rollback("batch 2 failed"), token="1:2:rollback") == Ready()
    )
    assert sizes(cluster, app) == (4, 0)
    stable = cluster.get("deployment", app)
    assert (
        stable is not None and stable["spec"]["template"]["metadata"]["labels"]["version"] == "v1"
    )


def test_the_stable_scales_down_only_once_the_new_batch_is_available(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app, replicas=4)
    state = rollout(cluster, app, strategy="rolling", router="replicas")
    platform.apply(state, EnsureCanary())
    platform.apply(state, ScaleNew(percent=50))
    assert sizes(cluster, app) == (4, 2)  # surge first: no capacity is lost
    cluster.settle()
    platform.apply(state, ScaleNew(percent=50))  # the engine's re-assert at its next wake-up
    assert sizes(cluster, app) == (2, 2)


def test_the_engine_rolls_every_batch_and_promotes(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app, replicas=4)
    batches = "{type: rolling, batches: [{percent: 25, analyze: 2m}, {percent: 100}]}"
    chosen = policy(batches, router="replicas")
    run = EngineRun(
        platform, cluster, chosen, rollout(cluster, app, strategy="rolling", router="replicas")
    )
    run.run(healthy(chosen), until=lambda state: state.phase.terminal)
    assert run.state.phase is Phase.PROMOTED
    assert sizes(cluster, app) == (4, 0)
    stable = cluster.get("deployment", app)
    assert stable is not None
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert stable["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
