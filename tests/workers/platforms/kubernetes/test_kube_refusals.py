"""What the platform refuses or reports as Failed, and several images for several containers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.workers.platforms.kubernetes.driving import NEW_IMAGE, drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import BROKEN, PAUSE, Cluster
from workers.actions import EnsureCanary, Promote, Rollback, SetTraffic
from workers.platforms.base import Failed, PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes


def test_a_canary_whose_image_cannot_be_pulled_fails_with_the_pod_and_reason(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.http_route(app, app)
    state = rollout(cluster, app, image=f"{BROKEN}{app}:2")
    answer = drive(platform, cluster, state, EnsureCanary(), SetTraffic(10), token="1:0:stage")
    assert isinstance(answer, Failed)
    assert "the canary cannot run" in answer.reason
    assert "ErrImagePull" in answer.reason or "ImagePullBackOff" in answer.reason
    assert cluster.route_weights(app) == [{app: 1}]  # traffic never moved to pods that cannot run
    assert drive(platform, cluster, state, Rollback(answer.reason), token="1:0:rollback") == Ready()


def test_several_containers_get_their_images_by_name_and_an_unknown_one_is_refused(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app, sidecar=True)
    sidecar = PAUSE.replace("3.9", "3.8")
    state = rollout(cluster, app, router="replicas", images={"proxy": sidecar})
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(20), token="1:0:stage")
        == Ready()
    )
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None
    images = {c["name"]: c["image"] for c in canary["spec"]["template"]["spec"]["containers"]}
    assert images == {app: NEW_IMAGE, "proxy": sidecar}
    assert drive(platform, cluster, state, Promote(), token="1:1:promote") == Ready()
    stable = cluster.get("deployment", app)
    assert stable is not None
    images = {c["name"]: c["image"] for c in stable["spec"]["template"]["spec"]["containers"]}
    assert images == {app: NEW_IMAGE, "proxy": sidecar}
    ports = stable["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert [port["containerPort"] for port in ports] == [8080]  # the user's port, kept

    wrong = rollout(cluster, app, router="replicas", images={"sidecar": sidecar}, version="v3",
                    rollout_id=f"{app}-aaaaaaaaaaaa")  # fmt: skip
    with pytest.raises(PlatformError, match=f"no container sidecar; its containers: {app}, proxy"):
        platform.apply(wrong, EnsureCanary())


def test_a_router_needs_the_version_label_on_the_stable_pods(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    cluster.apps.patch_namespaced_deployment(
        app, cluster.namespace, {"spec": {"template": {"metadata": {"labels": {"version": None}}}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    state = rollout(cluster, app)
    with pytest.raises(PlatformError, match="has no label 'version'"):
        platform.apply(state, EnsureCanary())
    answer = platform.readiness(state, (EnsureCanary(),))
    assert isinstance(answer, Failed) and "has no label 'version'" in answer.reason


def test_a_canary_deployment_canarist_did_not_create_is_left_alone(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    cluster.deployment(f"{app}-canary", replicas=1)
    state = rollout(cluster, app, router="replicas")
    with pytest.raises(PlatformError, match="not managed by canarist"):
        platform.apply(state, EnsureCanary())


def test_a_missing_stable_deployment_fails_the_rollout_and_its_rollback_is_a_no_op(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    state = rollout(cluster, app, router="replicas")
    with pytest.raises(PlatformError, match=f"no Deployment {cluster.namespace}/{app}"):
        platform.apply(state, EnsureCanary())
    answer = platform.readiness(state, (EnsureCanary(),))
    assert (
        isinstance(answer, Failed) and f"no Deployment {cluster.namespace}/{app}" in answer.reason
    )
    rollback = replace(state, awaiting="1:0:rollback")
    platform.apply(
        rollback, Rollback(answer.reason)
    )  # nothing reached the cluster: nothing to undo
    assert platform.readiness(rollback, (Rollback(answer.reason),)) == Ready()
