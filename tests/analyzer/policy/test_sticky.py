"""``traffic.sticky``: its forms, and the routers that cannot key a split on a user, refused at
the line (the same ``sticky_refusal`` the Kubernetes routers and intake call)."""

from __future__ import annotations

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text
from analyzer.policy.traffic import (
    ROUTER_LIMITS,
    Router,
    StickyKey,
    StickyKind,
    sticky_refusal,
)

BASE = """\
name: p
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
strategy: {type: canary, steps: [{set_weight: 5}, {set_weight: 100}]}
traffic:
"""
STICKY_LINE = 10  # the line of "  sticky:" under traffic, after the router's


def policy(router: str | None, sticky: str) -> str:
    named = f"  router: {router}\n" if router else "  version_label: version\n"
    return BASE + named + f"  sticky: {sticky}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [problem.render("p.yaml") for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("sticky", "key"),
    [
        ("{cookie: canarist-split}", StickyKey(StickyKind.ROUTER_COOKIE, "canarist-split")),
        ("{cookie: session, set_by: app}", StickyKey(StickyKind.APP_COOKIE, "session")),
        ("{header: x-user-id}", StickyKey(StickyKind.HEADER, "x-user-id")),
    ],
)
def test_each_form_loads_without_a_router_for_the_local_platform(
    sticky: str, key: StickyKey
) -> None:
    traffic = load_policy_text(policy(None, sticky)).traffic
    assert traffic.sticky is not None and traffic.sticky.key() == key


def test_ingress_nginx_takes_the_cookie_it_sets_itself() -> None:
    traffic = load_policy_text(policy("nginx_ingress", "{cookie: canarist-split}")).traffic
    assert traffic.sticky is not None
    assert traffic.sticky.key() == StickyKey(StickyKind.ROUTER_COOKIE, "canarist-split")


@pytest.mark.parametrize(
    ("router", "sticky", "says"),
    [
        (
            "gateway_api",
            "{cookie: canarist-split}",
            "the Gateway API cannot keep a user on one version (a standard (v1) HTTPRoute "
            "splits its weighted backendRefs per request",
        ),
        (
            "gateway_api",
            "{header: x-user-id}",
            "the Gateway API cannot keep a user on one version",
        ),
        (
            "replicas",
            "{header: x-user-id}",
            "traffic.router replicas cannot keep a user on one version (kube-proxy picks a pod "
            "per connection, whoever sends it): every request would be split on its own",
        ),
        (
            "nginx_ingress",
            "{header: x-user-id}",
            "ingress-nginx cannot key a split on header x-user-id (its session affinity sets "
            "and reads a cookie of its own): use sticky: {cookie: <name>}",
        ),
        (
            "nginx_ingress",
            "{cookie: session, set_by: app}",
            "ingress-nginx cannot key a split on the app's cookie session (its session affinity",
        ),
    ],
)
def test_a_router_that_cannot_key_on_it_is_refused_at_sticky(
    router: str, sticky: str, says: str
) -> None:
    [problem] = problems(policy(router, sticky))
    assert problem.startswith(f"p.yaml:{STICKY_LINE}: traffic.sticky: {says}"), problem


@pytest.mark.parametrize(
    ("sticky", "says"),
    [
        ("{}", "sticky has exactly one of cookie or header"),
        ("{cookie: a, header: b}", "sticky has exactly one of cookie or header"),
        ("{header: x-user-id, set_by: app}", "set_by is for a cookie"),
        ("{cookie: 'a b'}", "a header or cookie name has no spaces"),
        ("true", "expected a mapping such as `sticky: {cookie: canarist-split} (or sticky"),
        ("{cookie: a, set_by: me}", "unknown set_by 'me' (expected one of canarist, app)"),
    ],
)
def test_a_malformed_sticky_is_named_at_its_line(sticky: str, says: str) -> None:
    [problem] = problems(policy(None, sticky))
    assert problem.startswith(f"p.yaml:{STICKY_LINE}: traffic.sticky"), problem
    assert says in problem, problem


def test_sticky_without_a_weighted_split_is_refused() -> None:
    text = policy(None, "{header: x-user-id}").replace(
        "strategy: {type: canary, steps: [{set_weight: 5}, {set_weight: 100}]}",
        "strategy: {type: rolling, batches: [{percent: 50}, {percent: 100}]}",
    )
    [problem] = problems(text)
    assert problem.startswith(f"p.yaml:{STICKY_LINE}: traffic.sticky: sticky keeps users"), problem
    assert "strategy rolling has none" in problem


def test_the_limits_say_which_router_keys_a_split_on_what() -> None:
    everything = set(StickyKind)
    kept = {router: set(ROUTER_LIMITS[router].sticky) for router in Router}
    assert kept == {
        Router.REPLICAS: set(),
        Router.GATEWAY_API: set(),
        Router.NGINX_INGRESS: {StickyKind.ROUTER_COOKIE},
    }
    for router in Router:
        for kind in everything:
            refused = sticky_refusal(router, StickyKey(kind, "k")) is not None
            assert refused == (kind not in kept[router])
        assert sticky_refusal(router, None) is None
