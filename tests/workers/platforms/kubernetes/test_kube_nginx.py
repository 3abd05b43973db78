"""The ingress-nginx router: a canary Ingress whose annotations carry weight, header and cookie."""

from __future__ import annotations

import pytest

from tests.workers.platforms.kubernetes.driving import drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import NGINX_CANARY, Cluster
from workers.actions import EnsureCanary, Match, Promote, Rollback, SetTraffic
from workers.platforms.base import Failed, PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes
CANARY = NGINX_CANARY


def setup_app(cluster: Cluster, app: str) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    cluster.ingress(app, app)


def canary_annotations(cluster: Cluster, app: str) -> dict[str, str]:
    return cluster.canary_annotations(f"{app}-canary")


def test_weight_header_and_cookie_become_canary_annotations(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    setup_app(cluster, app)
    stable_before = cluster.get("ingress", app)
    state = rollout(cluster, app, router="nginx_ingress")
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(20), token="1:0:stage")
        == Ready()
    )
    assert canary_annotations(cluster, app) == {CANARY: "true", f"{CANARY}-weight": "20"}
    ingress = cluster.get("ingress", f"{app}-canary")
    assert ingress is not None
    assert ingress["spec"]["ingressClassName"] == "nginx"
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"]["service"] == {"name": f"{app}-canary", "port": {"number": 80}}
    assert ingress["spec"]["rules"][0]["host"] == f"{app}.example"
    assert ingress["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "canarist"

    audience = (Match("header", "x-beta", "yes"), Match("cookie", "canary", "always"))
    assert drive(platform, cluster, state, SetTraffic(40, audience), token="1:2:stage") == Ready()
    assert canary_annotations(cluster, app) == {
        CANARY: "true",
        f"{CANARY}-weight": "40",
        f"{CANARY}-by-header": "x-beta",
        f"{CANARY}-by-header-value": "yes",
        f"{CANARY}-by-cookie": "canary",
    }

    pattern = (Match("header", "user-agent", ".*Firefox.*", regex=True),)
    assert drive(platform, cluster, state, SetTraffic(40, pattern), token="1:4:stage") == Ready()
    assert canary_annotations(cluster, app) == {
        CANARY: "true",
        f"{CANARY}-weight": "40",
        f"{CANARY}-by-header": "user-agent",
        f"{CANARY}-by-header-pattern": ".*Firefox.*",
    }
    assert cluster.get("ingress", app) == stable_before  # the stable Ingress is never changed


@pytest.mark.parametrize(
    ("audience", "says"),
    [
        ((Match("cookie", "beta", "yes"),), "only when its value is 'always'"),
        ((Match("header", "a", "1"), Match("header", "b", "2")), "one header and one cookie"),
    ],
)
def test_an_audience_ingress_nginx_cannot_express_is_refused(
    cluster: Cluster, platform: KubernetesPlatform, app: str, audience: tuple[Match, ...], says: str
) -> None:
    setup_app(cluster, app)
    state = rollout(cluster, app, strategy="targeted", router="nginx_ingress")
    platform.apply(state, EnsureCanary())
    with pytest.raises(PlatformError, match=says):
        platform.apply(state, SetTraffic(0, audience))
    assert cluster.get("ingress", f"{app}-canary") is None


def test_rollback_and_promotion_remove_the_canary_ingress(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    setup_app(cluster, app)
    state = rollout(cluster, app, router="nginx_ingress")
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(30), token="1:0:stage")
        == Ready()
    )
    assert drive(platform, cluster, state, Rollback("bad"), token="1:1:rollback") == Ready()
    assert cluster.get("ingress", f"{app}-canary") is None

    retry = rollout(cluster, app, router="nginx_ingress", rollout_id=f"{app}-fedcba987654")
    assert (
        drive(platform, cluster, retry, EnsureCanary(), SetTraffic(100), token="1:0:stage")
        == Ready()
    )
    assert canary_annotations(cluster, app)[f"{CANARY}-weight"] == "100"
    assert drive(platform, cluster, retry, Promote(), token="1:1:promote") == Ready()
    assert cluster.get("ingress", f"{app}-canary") is None
    stable = cluster.get("deployment", app)
    assert (
        stable is not None and stable["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    )


def test_no_stable_ingress_fails_readiness_naming_it(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    cluster.service(app, app)
    state = rollout(cluster, app, router="nginx_ingress")
    with pytest.raises(PlatformError, match=f"no Ingress {cluster.namespace}/{app}"):
        platform.apply(state, SetTraffic(10))
    answer = drive(platform, cluster, state, token="1:0:stage")
    assert isinstance(answer, Failed) and f"no Ingress {cluster.namespace}/{app}" in answer.reason
