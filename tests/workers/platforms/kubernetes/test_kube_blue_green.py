"""Blue-green: a preview beside the active version, the active Service switched and back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.workers.platforms.kubernetes.driving import NEW_IMAGE, drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from workers.actions import EnsureCanary, Promote, Rollback, ScaleDownOld, ScaleNew, SwitchActive
from workers.platforms.base import Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes


def selector(cluster: Cluster, service: str) -> dict[str, str]:
    found = cluster.get("service", service)
    assert found is not None
    selected: dict[str, str] = found["spec"]["selector"]
    return selected


def replicas(cluster: Cluster, deployment: str) -> int:
    found = cluster.get("deployment", deployment)
    assert found is not None
    count: int = found["spec"]["replicas"]
    return count


def preview_and_switch(cluster: Cluster, platform: KubernetesPlatform, app: str):
    cluster.deployment(app, replicas=3)
    cluster.service(app, app)
    state = rollout(cluster, app, strategy="blue_green", router="replicas")
    preview = drive(
        platform, cluster, state, EnsureCanary(), ScaleNew(percent=100), token="1:0:stage"
    )
    assert preview == Ready()
    assert selector(cluster, app) == {"app": app, "version": "v1"}  # active: the old side
    assert selector(cluster, f"{app}-canary") == {
        "app": app,
        "version": "v2",
        "canarist.dev/role": "canary",
    }
    assert replicas(cluster, f"{app}-canary") == 3
    switch = drive(
        platform, cluster, state, ScaleNew(percent=100), SwitchActive(), token="1:1:stage"
    )
    assert switch == Ready()
    assert selector(cluster, app) == {"app": app, "version": "v2"}
    assert replicas(cluster, app) == 3  # the old side stays warm for a switch-back
    return state


def test_a_switch_back_points_the_active_service_at_the_old_side_again(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    state = preview_and_switch(cluster, platform, app)
    answer = drive(platform, cluster, state, Rollback("post-switch check failed", switch_back=True),
                   token="1:2:rollback")  # fmt: skip
    assert answer == Ready()
    assert selector(cluster, app) == {"app": app, "version": "v1"}
    assert replicas(cluster, f"{app}-canary") == 0
    assert replicas(cluster, app) == 3


def test_after_the_old_side_is_retired_a_switch_back_brings_it_up_first(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    state = preview_and_switch(cluster, platform, app)
    assert drive(platform, cluster, state, ScaleDownOld(), token="1:2:stage") == Ready()
    assert replicas(cluster, app) == 0

    platform.apply(replace(state, awaiting="1:2:rollback"), Rollback("late", switch_back=True))
    # the old side is scaled up before the active Service moves back to it
    assert replicas(cluster, app) == 3
    assert selector(cluster, app) == {"app": app, "version": "v2"}
    answer = drive(
        platform, cluster, state, Rollback("late", switch_back=True), token="1:2:rollback"
    )
    assert answer == Ready()
    assert selector(cluster, app) == {"app": app, "version": "v1"}
    assert replicas(cluster, f"{app}-canary") == 0


def test_a_promotion_after_the_switch_makes_the_new_version_stable(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    state = preview_and_switch(cluster, platform, app)
    assert (
        drive(platform, cluster, state, ScaleDownOld(), Promote(), token="1:3:promote") == Ready()
    )
    stable = cluster.get("deployment", app)
    assert stable is not None
    assert stable["spec"]["replicas"] == 3
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    assert selector(cluster, app) == {"app": app, "version": "v2"}
    assert replicas(cluster, f"{app}-canary") == 0
    reasons = [event["reason"] for event in cluster.events(app)]
    assert {"ActiveSwitched", "OldScaledDown", "Promoting"} <= set(reasons)
