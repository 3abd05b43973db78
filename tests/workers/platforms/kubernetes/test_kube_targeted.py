"""A targeted canary on the Gateway API router: the audience's rule first, then weights."""

from __future__ import annotations

import re

import pytest

from tests.workers.platforms.kubernetes.driving import drive, rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster, service_weights
from workers.actions import EnsureCanary, Match, Rollback, SetTraffic
from workers.platforms.base import PlatformError, Ready
from workers.platforms.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.kubernetes

AUDIENCE = (
    Match("header", "x-region", "KR"),
    Match("header", "user-agent", ".*Firefox.*", regex=True),
    Match("cookie", "canary", "always"),
)
OTHER_RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
    "backendRefs": [{"name": "cdn", "port": 80}],
}


def setup_app(cluster: Cluster, app: str) -> None:
    cluster.deployment(app, replicas=4)
    cluster.service(app, app)
    cluster.http_route(app, app, extra_rules=[OTHER_RULE])


def rules(cluster: Cluster, app: str) -> list[dict]:
    route = cluster.get("httproute", app)
    assert route is not None
    return route["spec"]["rules"]


def test_the_audience_reaches_the_canary_first_through_a_rule_placed_first(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    setup_app(cluster, app)
    written_other = rules(cluster, app)[1]  # as the apiserver stored it, defaults and all
    state = rollout(cluster, app, strategy="targeted")
    answer = drive(
        platform, cluster, state, EnsureCanary(), SetTraffic(0, AUDIENCE), token="1:0:stage"
    )
    assert answer == Ready()

    first, _, other = rules(cluster, app)
    assert service_weights(first) == {f"{app}-canary": 1}
    assert [ref["port"] for ref in first["backendRefs"]] == [80]
    headers = [match["headers"][-1] for match in first["matches"]]
    assert [match["path"] for match in first["matches"]] == [
        {"type": "PathPrefix", "value": "/api"}
    ] * 3
    assert headers[0] == {"type": "Exact", "name": "x-region", "value": "KR"}
    assert headers[1] == {"type": "RegularExpression", "name": "user-agent", "value": ".*Firefox.*"}
    cookie = headers[2]
    assert cookie["type"] == "RegularExpression" and cookie["name"] == "Cookie"
    assert re.fullmatch(cookie["value"], "session=1; canary=always")
    assert re.fullmatch(cookie["value"], "canary=always")
    assert not re.fullmatch(cookie["value"], "notcanary=always")
    assert not re.fullmatch(cookie["value"], "canary=never")
    assert cluster.route_weights(app) == [
        {f"{app}-canary": 1},
        {app: 100, f"{app}-canary": 0},
        {"cdn": 1},
    ]
    assert other == written_other  # the user's other rule, untouched
    canary = cluster.get("deployment", f"{app}-canary")
    assert canary is not None and canary["spec"]["replicas"] == 1  # the audience needs a pod

    answer = drive(platform, cluster, state, SetTraffic(10, AUDIENCE), token="1:2:stage")
    assert answer == Ready()
    first, _, other = rules(cluster, app)
    assert len(first["matches"]) == 3
    assert cluster.route_weights(app) == [
        {f"{app}-canary": 1},
        {app: 90, f"{app}-canary": 10},
        {"cdn": 1},
    ]
    assert other == written_other


def test_re_applying_the_same_split_leaves_the_route_as_it_is(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    setup_app(cluster, app)
    state = rollout(cluster, app, strategy="targeted")
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(10, AUDIENCE), token="1:1:stage")
        == Ready()
    )
    route = cluster.get("httproute", app)
    events = len(cluster.events(app))

    for _ in range(3):
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(10, AUDIENCE), token="1:1:stage")
    again = cluster.get("httproute", app)
    assert again is not None and route is not None
    assert again["metadata"]["resourceVersion"] == route["metadata"]["resourceVersion"]
    assert again["spec"] == route["spec"]
    assert len(cluster.events(app)) == events  # a re-assert is not a transition


def test_a_rollback_removes_the_audience_rule_and_the_weights(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    setup_app(cluster, app)
    written = rules(cluster, app)
    state = rollout(cluster, app, strategy="targeted")
    assert (
        drive(platform, cluster, state, EnsureCanary(), SetTraffic(50, AUDIENCE), token="1:3:stage")
        == Ready()
    )
    assert drive(platform, cluster, state, Rollback("bad"), token="1:3:rollback") == Ready()
    assert rules(cluster, app) == written


def test_the_replicas_router_refuses_an_audience(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    state = rollout(cluster, app, strategy="targeted", router="replicas")
    with pytest.raises(PlatformError, match="chosen audience"):
        platform.apply(state, SetTraffic(0, AUDIENCE[:1]))
