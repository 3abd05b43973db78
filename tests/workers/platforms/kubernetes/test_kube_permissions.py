"""permissions.PERMISSIONS is exactly what the platform calls: RBAC is written from it."""

from __future__ import annotations

import pytest

from tests.workers.platforms.kubernetes.driving import drive, rollout
from tests.workers.platforms.kubernetes.emulator import permission_of
from tests.workers.platforms.kubernetes.gitops_stack import change, opt_in
from tests.workers.platforms.kubernetes.kube_stack import PAUSE, Cluster
from workers.actions import EnsureCanary, Promote, Rollback, SetTraffic
from workers.platforms.base import Ready
from workers.platforms.kubernetes import KubernetesPlatform
from workers.platforms.kubernetes.api import USER_AGENT
from workers.platforms.kubernetes.permissions import PERMISSIONS, Permission

pytestmark = pytest.mark.kubernetes


def test_every_request_is_permitted_and_every_permission_is_used(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    if cluster.real:
        pytest.skip("requests are recorded by the emulator")
    mark = cluster.mark()
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.http_route(app, app)
    cluster.ingress(app, app)
    gateway = rollout(cluster, app)
    assert (
        drive(platform, cluster, gateway, EnsureCanary(), SetTraffic(50), token="1:0:stage")
        == Ready()
    )
    assert drive(platform, cluster, gateway, Promote(), token="1:1:promote") == Ready()
    nginx = rollout(
        cluster, app, router="nginx_ingress", version="v3", rollout_id=f"{app}-bbbbbbbbbbbb"
    )
    assert (
        drive(platform, cluster, nginx, EnsureCanary(), SetTraffic(10), token="1:0:stage")
        == Ready()
    )
    assert drive(platform, cluster, nginx, SetTraffic(20), token="1:1:stage") == Ready()
    assert drive(platform, cluster, nginx, Rollback("no"), token="1:2:rollback") == Ready()
    paused = f"{app}p"  # a paused Deployment holding a new template: read from its ReplicaSets
    cluster.deployment(paused)
    opt_in(cluster, paused, "demo")
    change(cluster, paused, PAUSE.replace(":3.9", ":3.10"), "v2")
    held = rollout(cluster, paused, router="replicas", rollout_id=f"{paused}-cccccccccccc")
    assert drive(platform, cluster, held, EnsureCanary(), token="1:0:start") == Ready()

    seen = [s for s in cluster.seen_since(mark) if s.user_agent == USER_AGENT]
    used = {permission_of(request) for request in seen}
    assert used <= PERMISSIONS, sorted(used - PERMISSIONS)
    assert used == PERMISSIONS, f"listed but never used: {sorted(PERMISSIONS - used)}"


def test_the_helper_requests_are_told_apart_from_the_platforms(cluster: Cluster, app: str) -> None:
    if cluster.real:
        pytest.skip("requests are recorded by the emulator")
    mark = cluster.mark()
    cluster.deployment(app)
    seen = cluster.seen_since(mark)
    assert seen and all(s.user_agent != USER_AGENT for s in seen)
    assert permission_of(seen[0]) == Permission("apps", "deployments", "create")
