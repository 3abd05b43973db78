"""``traffic.sticky`` on Kubernetes: ingress-nginx's session affinity on the canary Ingress (and
the stable one required to pin its users too); the Gateway API and replicas refused, nothing
written."""

from __future__ import annotations

import pytest

from analyzer.policy.traffic import StickyKey, StickyKind
from tests.workers.platforms.kubernetes.driving import drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import NGINX, NGINX_CANARY, Cluster
from workers.actions import EnsureCanary, Rollback, SetTraffic
from workers.platforms.base import Failed, PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes
COOKIE = StickyKey(StickyKind.ROUTER_COOKIE, "canarist-split")
PINNED = {f"{NGINX}affinity": "cookie", f"{NGINX}session-cookie-name": "canarist-split"}


def test_ingress_nginx_pins_users_with_its_session_cookie_while_the_weight_grows(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.ingress(app, app, annotations=PINNED)
    stable_before = cluster.get("ingress", app)
    state = rollout(cluster, app, router="nginx_ingress", sticky=COOKIE)
    canary = f"{app}-canary"
    for index, weight in enumerate((5, 25, 50)):
        actions = (EnsureCanary(), SetTraffic(weight)) if index == 0 else (SetTraffic(weight),)
        assert drive(platform, cluster, state, *actions, token=f"1:{index}:stage") == Ready()
        assert cluster.canary_annotations(canary) == {
            NGINX_CANARY: "true",
            f"{NGINX_CANARY}-weight": str(weight),
        }
        # a user the canary answered once stays there; one the stable answered stays there
        assert cluster.session_affinity(canary) == {"cookie": "canarist-split", "canary": "sticky"}
        assert cluster.session_affinity(app) == {"cookie": "canarist-split"}
    assert cluster.get("ingress", app) == stable_before  # the stable Ingress is never changed
    assert drive(platform, cluster, state, Rollback("done"), token="1:3:rollback") == Ready()
    assert cluster.get("ingress", canary) is None


@pytest.mark.parametrize(
    ("annotations", "has"),
    [
        (None, f"it has {NGINX}affinity: none"),
        ({f"{NGINX}affinity": "cookie"}, f"{NGINX}session-cookie-name: INGRESSCOOKIE"),
    ],
)
def test_a_stable_ingress_that_does_not_pin_its_users_is_refused_naming_the_annotations(
    cluster: Cluster,
    platform: KubernetesPlatform,
    app: str,
    annotations: dict[str, str] | None,
    has: str,
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.ingress(app, app, annotations=annotations)
    state = rollout(cluster, app, router="nginx_ingress", sticky=COOKIE)
    with pytest.raises(PlatformError) as refused:
        platform.apply(state, SetTraffic(5))
    message = str(refused.value)
    assert f"annotate it {NGINX}affinity: cookie and {NGINX}session-cookie-name: " in message
    assert has in message
    assert cluster.get("ingress", f"{app}-canary") is None


@pytest.mark.parametrize(
    ("router", "says"),
    [
        ("gateway_api", "traffic.sticky: the Gateway API cannot keep a user on one version"),
        ("replicas", "traffic.sticky: traffic.router replicas cannot keep a user on one version"),
    ],
)
def test_routers_that_split_per_request_refuse_sticky_and_write_nothing(
    cluster: Cluster, platform: KubernetesPlatform, app: str, router: str, says: str
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.http_route(app, app)
    route_before = cluster.route_weights(app)
    state = rollout(cluster, app, router=router, sticky=COOKIE)
    with pytest.raises(PlatformError, match=says):
        platform.apply(state, SetTraffic(5))
    assert cluster.get("deployment", f"{app}-canary") is None
    assert cluster.route_weights(app) == route_before
    answer = drive(platform, cluster, state, token="1:0:stage")
    assert isinstance(answer, Failed) and says in answer.reason


def test_ingress_nginx_refuses_a_header_it_cannot_key_on(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.ingress(app, app, annotations=PINNED)
    header = StickyKey(StickyKind.HEADER, "x-user-id")
    state = rollout(cluster, app, router="nginx_ingress", sticky=header)
    with pytest.raises(PlatformError, match="ingress-nginx cannot key a split on header x-user-id"):
        platform.apply(state, SetTraffic(5))
    assert cluster.get("ingress", f"{app}-canary") is None
