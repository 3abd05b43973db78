"""A weighted canary with the Gateway API router: weights, promotion, and an abort at 25%."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.workers.platforms.kubernetes.driving import NEW_IMAGE, EngineRun, drive, policy, rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from tests.workers.rollout_driver import FAIL, always, healthy
from workers.actions import EnsureCanary, Promote, Rollback, SetTraffic
from workers.platforms.base import Ready
from workers.platforms.kubernetes import KubernetesPlatform
from workers.state import Phase

pytestmark = pytest.mark.kubernetes


def user_app(cluster: Cluster, app: str, replicas: int = 4) -> None:
    cluster.deployment(app, replicas=replicas)
    cluster.service(app, app)
    cluster.http_route(app, app)


def test_a_canary_walks_its_weights_and_is_promoted(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = rollout(cluster, app)
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
        == Ready()
    )
    assert cluster.route_weights(app) == [{app: 75, f"{app}-canary": 25}]
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 1
    container = canary["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == NEW_IMAGE
    assert canary["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    service = cluster.get("service", app)
    assert service is not None and service["spec"]["selector"] == {"app": app, "version": "v1"}

    assert drive(platform, cluster, state, SetTraffic(100), token="1:2:stage") == Ready()
    assert cluster.route_weights(app) == [{app: 0, f"{app}-canary": 100}]

    assert drive(platform, cluster, state, Promote(), token="1:3:promote") == Ready()
    assert cluster.route_weights(app) == [{app: 1}]
    stable = cluster.get("deployment", app)
    assert stable is not None
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert stable["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    assert stable["spec"]["replicas"] == 4
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    service = cluster.get("service", app)
    assert service is not None and service["spec"]["selector"]["version"] == "v2"
    reasons = [event["reason"] for event in cluster.events(app)]
    assert reasons[:2] == ["CanaryStarted", "CanaryWeightSet"] and "Promoting" in reasons


def test_an_abort_at_25_percent_restores_stable_traffic_and_leaves_the_stable_untouched(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    before = cluster.get("deployment", app)
    assert before is not None
    state = rollout(cluster, app)
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage")
        == Ready()
    )

    assert drive(platform, cluster, state, Rollback("errors up"), token="1:1:rollback") == Ready()
    assert cluster.route_weights(app) == [{app: 1}]  # the route as the user wrote it
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    after = cluster.get("deployment", app)
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert "canarist.dev/desired" not in (after["metadata"].get("annotations") or {})
    warning = [e for e in cluster.events(app) if e["reason"] == "RollingBack"]
    assert len(warning) == 1 and warning[0]["type"] == "Warning"
    assert "errors up" in warning[0]["message"]


def test_the_engine_promotes_a_healthy_canary_through_its_weights(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app, replicas=2)
    steps = (
        "{type: canary, steps: [{set_weight: 25}, {analyze: {duration: 2m}}, {set_weight: 100}]}"
    )
    chosen = policy(steps)
    run = EngineRun(platform, cluster, chosen, rollout(cluster, app))
    run.run(healthy(chosen), until=lambda state: state.phase.terminal)

    assert run.state.phase is Phase.PROMOTED
    assert [type(a).__name__ for a in run.applied[:2]] == ["EnsureCanary", "SetTraffic"]
    stable = cluster.get("deployment", app)
    assert (
        stable is not None and stable["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    )
    assert cluster.route_weights(app) == [{app: 1}]
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0


def test_the_engine_aborts_a_failing_canary_and_the_platform_rolls_it_back(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    before = cluster.get("deployment", app)
    assert before is not None
    steps = (
        "{type: canary, steps: [{set_weight: 25}, {analyze: {duration: 5m}}, {set_weight: 100}]}"
    )
    chosen = policy(steps)
    run = EngineRun(platform, cluster, chosen, rollout(cluster, app))
    run.run(always(chosen, FAIL), until=lambda state: state.phase.terminal)

    assert run.state.phase is Phase.ABORTED
    assert any(isinstance(action, Rollback) for action in run.applied)
    assert cluster.route_weights(app) == [{app: 1}]
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    after = cluster.get("deployment", app)
    assert after is not None and after["spec"] == before["spec"]


def test_a_route_the_apiserver_defaulted_is_recognised_as_converged_and_not_patched_again(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app)
    state = rollout(cluster, app)
    split = (EnsureCanary(), SetTraffic(25))
    assert drive(platform, cluster, state, *split, token="1:0:stage") == Ready()
    stored = cluster.get("httproute", app)
    assert stored is not None  # weight, group and kind filled in by the apiserver
    assert {ref["kind"] for ref in stored["spec"]["rules"][0]["backendRefs"]} == {"Service"}

    for _ in range(3):  # the engine's re-asserts: the same wish, read back with defaults
        for action in split:
            platform.apply(replace(state, awaiting="1:0:stage"), action)
    again = cluster.get("httproute", app)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

    rollback = (Rollback("no"),)
    assert drive(platform, cluster, state, *rollback, token="1:1:rollback") == Ready()
    reset = cluster.get("httproute", app)
    assert reset is not None and cluster.route_weights(app) == [{app: 1}]
    for _ in range(3):  # the stable alone again: its defaulted weight 1 is no difference
        platform.apply(replace(state, awaiting="1:1:rollback"), rollback[0])
    again = cluster.get("httproute", app)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == reset["metadata"]["resourceVersion"]
