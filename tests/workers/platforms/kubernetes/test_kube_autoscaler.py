"""A HorizontalPodAutoscaler on the stable Deployment: Canarist sizes from it and never fights it.

``autoscale`` puts an HPA with minReplicas = maxReplicas on the stable, so a real HPA
controller sets exactly that size without metrics; on the emulator the helper plays the HPA.
Whether the platform ever wrote the stable's ``spec.replicas`` is read from the requests the
emulator recorded (a real cluster skips that one assertion).
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from kubernetes import client

from tests.workers.platforms.kubernetes.driving import NEW_IMAGE, drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from workers.actions import (
    EnsureCanary,
    Promote,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    SetTraffic,
    SwitchActive,
)
from workers.platforms.base import Failed, PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform
from workers.platforms.kubernetes.api import USER_AGENT

pytestmark = pytest.mark.kubernetes


def autoscale(cluster: Cluster, app: str, replicas: int) -> None:
    """A HorizontalPodAutoscaler on Deployment ``app`` holding it at ``replicas`` (min = max,
    so a real HPA controller sets exactly that without any metrics), and the Deployment at
    that size once the HPA has acted: on the emulator this plays the HPA controller."""
    body = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{app}-hpa", "namespace": cluster.namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": replicas,
            "maxReplicas": replicas,
        },
    }
    autoscaling = client.AutoscalingV2Api(cluster.helper)
    try:
        autoscaling.create_namespaced_horizontal_pod_autoscaler(cluster.namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            f"{app}-hpa", cluster.namespace, {"spec": body["spec"]},
            _content_type="application/merge-patch+json",
        )  # fmt: skip
    if not cluster.real:
        cluster.apps.patch_namespaced_deployment_scale(
            app, cluster.namespace, {"spec": {"replicas": replicas}},
            _content_type="application/merge-patch+json", _preload_content=False,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while (cluster.get("deployment", app) or {}).get("spec", {}).get("replicas") != replicas:
        if time.monotonic() > deadline:
            raise AssertionError(f"the HPA did not scale {app} to {replicas}")
        time.sleep(1.0)
    cluster.settle()


def size(cluster: Cluster, deployment: str) -> int:
    found = cluster.get("deployment", deployment)
    assert found is not None
    count: int = found["spec"]["replicas"]
    return count


def stable_size_written(cluster: Cluster, app: str, mark: int) -> bool:
    """Did the platform send the stable Deployment a ``spec.replicas`` since ``mark``?"""
    return any(
        seen.user_agent == USER_AGENT
        and seen.plural == "deployments"
        and seen.name == app
        and "replicas" in seen.spec_keys
        for seen in cluster.seen_since(mark)
    )


def user_app(cluster: Cluster, app: str, replicas: int) -> None:
    cluster.deployment(app, replicas=2)
    cluster.service(app, app)
    cluster.http_route(app, app)
    autoscale(cluster, app, replicas)


def test_the_canary_follows_the_hpas_count_and_a_promotion_leaves_the_size_to_the_hpa(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app, replicas=4)
    mark = cluster.mark()
    state = rollout(cluster, app)
    assert drive(platform, cluster, state, EnsureCanary(), SetTraffic(25), token="1:0:stage") == (
        Ready()
    )
    assert size(cluster, f"{app}-canary") == 1  # 25% of the HPA's 4, not of the 2 written

    autoscale(cluster, app, 8)  # the load grew: the HPA doubles the stable
    assert drive(platform, cluster, state, SetTraffic(50), token="1:1:stage") == Ready()
    assert size(cluster, f"{app}-canary") == 4  # 50% of the stable's current 8

    assert drive(platform, cluster, state, Promote(), token="1:2:promote") == Ready()
    stable = cluster.get("deployment", app)
    assert stable is not None and stable["spec"]["replicas"] == 8
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert size(cluster, f"{app}-canary") == 0
    if not cluster.real:
        assert not stable_size_written(cluster, app, mark)


def test_a_rollback_never_restores_the_size_found_over_the_hpas(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    user_app(cluster, app, replicas=3)
    mark = cluster.mark()
    state = rollout(cluster, app)
    assert drive(platform, cluster, state, EnsureCanary(), SetTraffic(30), token="1:0:stage") == (
        Ready()
    )
    autoscale(cluster, app, 5)
    assert drive(platform, cluster, state, Rollback("bad"), token="1:1:rollback") == Ready()
    assert size(cluster, app) == 5
    assert size(cluster, f"{app}-canary") == 0
    assert cluster.route_weights(app) == [{app: 1}]
    if not cluster.real:
        assert not stable_size_written(cluster, app, mark)


def test_a_rolling_strategy_is_refused_naming_the_hpa(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app, replicas=2)
    autoscale(cluster, app, 4)
    state = replace(rollout(cluster, app, strategy="rolling", router="replicas"), awaiting="1:0")
    hpa = f"HorizontalPodAutoscaler {cluster.namespace}/{app}-hpa"
    with pytest.raises(PlatformError, match=f"{hpa}: the rolling strategy"):
        platform.apply(state, EnsureCanary())
    assert cluster.get("deployment", f"{app}-canary") is None  # refused before any write
    answer = platform.readiness(state, (EnsureCanary(), ScaleNew(percent=25)))
    assert isinstance(answer, Failed) and hpa in answer.reason


def test_blue_green_retires_the_old_side_without_scaling_it_and_promotes(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app, replicas=2)
    cluster.service(app, app)
    autoscale(cluster, app, 3)
    mark = cluster.mark()
    state = rollout(cluster, app, strategy="blue_green", router="replicas")
    preview = (EnsureCanary(), ScaleNew(percent=100))
    assert drive(platform, cluster, state, *preview, token="1:0:stage") == Ready()
    assert size(cluster, f"{app}-canary") == 3
    switched = (ScaleNew(percent=100), SwitchActive(), ScaleDownOld())
    assert drive(platform, cluster, state, *switched, token="1:1:stage") == Ready()
    assert size(cluster, app) == 3  # the HPA's to shrink, never Canarist's to zero
    assert drive(platform, cluster, state, Promote(), token="1:2:promote") == Ready()
    assert size(cluster, app) == 3
    if not cluster.real:
        assert not stable_size_written(cluster, app, mark)


def test_without_an_hpa_the_stable_size_is_still_restored(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    """The control: the same rolling abort without an HPA writes the stable's size back."""
    cluster.deployment(app, replicas=4)
    mark = cluster.mark()
    state = rollout(cluster, app, strategy="rolling", router="replicas")
    batch = (EnsureCanary(), ScaleNew(percent=50))
    assert drive(platform, cluster, state, *batch, token="1:0:stage") == Ready()
    assert drive(platform, cluster, state, Rollback("no"), token="1:1:rollback") == Ready()
    assert size(cluster, app) == 4
    if not cluster.real:
        assert stable_size_written(cluster, app, mark)  # the assertion above can see writes
