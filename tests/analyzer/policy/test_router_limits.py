"""An audience the named router cannot route is refused where the rule is written, by the same
limits the Kubernetes routers refuse it with at submit (analyzer/policy/traffic.py)."""

from __future__ import annotations

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text
from analyzer.policy.traffic import (
    GATEWAY_API_MAX_MATCHES,
    Router,
    RouterMatch,
    audience_refusals,
)

HEAD = """\
name: p
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
strategy:
  type: targeted
  match:
"""
TAIL = """\
  analyze: {duration: 5m}
  steps:
    - set_weight: 100
traffic:
  router: %s
"""
FIRST_RULE_LINE = 10


def policy(rules: list[str], router: str) -> str:
    return HEAD + "".join(f"    - {rule}\n" for rule in rules) + TAIL % router


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [problem.render("p.yaml") for problem in caught.value.problems]


def test_nginx_ingress_refuses_a_second_and_third_header_at_their_lines() -> None:
    rules = [
        'header: {name: x-beta, value: "yes"}',
        "header: {name: x-tester, regex: ^qa-}",
        "header: {name: x-team, value: core}",
    ]
    found = problems(policy(rules, "nginx_ingress"))
    assert found == [
        f"p.yaml:{FIRST_RULE_LINE + 1}: strategy.match[1].header: ingress-nginx matches one "
        "header and one cookie per canary; this is header 2 of the audience (a region is a "
        "header too): keep fewer, or use traffic.router gateway_api",
    ]


def test_nginx_ingress_counts_a_region_as_a_header() -> None:
    found = problems(
        policy(['header: {name: x-beta, value: "yes"}', "region: KR"], "nginx_ingress")
    )
    assert len(found) == 1
    assert found[0].startswith(f"p.yaml:{FIRST_RULE_LINE + 1}: strategy.match[1].region: ")
    assert "this is header 2" in found[0]


def test_nginx_ingress_refuses_a_cookie_value_other_than_always_at_the_value() -> None:
    rules = [
        'header: {name: x-beta, value: "yes"}',
        "cookie:\n        name: beta\n        value: beta",
    ]
    found = problems(policy(rules, "nginx_ingress"))
    assert found == [
        f"p.yaml:{FIRST_RULE_LINE + 3}: strategy.match[1].cookie.value: ingress-nginx routes by "
        "cookie beta only when its value is 'always', not 'beta': use that value, a header, or "
        "traffic.router gateway_api",
    ]


def test_what_ingress_nginx_can_route_loads() -> None:
    rules = ["header: {name: x-tester, regex: ^qa-}", "cookie: {name: beta, value: always}"]
    load_policy_text(policy(rules, "nginx_ingress"))


def test_gateway_api_routes_several_headers_and_any_cookie() -> None:
    rules = [
        'header: {name: x-beta, value: "yes"}',
        "region: KR",
        "cookie: {name: beta, value: one}",
        "cookie: {name: tester, value: qa}",
    ]
    load_policy_text(policy(rules, "gateway_api"))


def test_gateway_api_refuses_more_audience_rules_than_a_route_rule_has_matches() -> None:
    rules = [f'header: {{name: x-n, value: "{n}"}}' for n in range(GATEWAY_API_MAX_MATCHES + 1)]
    found = problems(policy(rules, "gateway_api"))
    line = FIRST_RULE_LINE + GATEWAY_API_MAX_MATCHES
    assert found == [
        f"p.yaml:{line}: strategy.match[64].header: the Gateway API allows 64 audience rules "
        "(matches of one HTTPRoute rule); this is rule 65: match fewer, e.g. with one regex",
    ]


def test_no_router_named_leaves_the_audience_to_the_platform() -> None:
    rules = ['header: {name: x-a, value: "1"}', 'header: {name: x-b, value: "2"}']
    text = policy(rules, "nginx_ingress").replace("traffic:\n  router: nginx_ingress\n", "")
    load_policy_text(text)  # the local platform's own NGINX routes any audience


def test_the_platform_and_the_policy_read_one_function() -> None:
    audience = [
        RouterMatch("header", "a", "1"),
        RouterMatch("cookie", "c", "always"),
        RouterMatch("header", "b", "2", regex=True),
        RouterMatch("cookie", "d", "yes"),
    ]
    refusals = audience_refusals(Router.NGINX_INGRESS, audience)
    assert [(r.index, r.of_value) for r in refusals] == [(2, False), (3, False), (3, True)]
    assert audience_refusals(Router.GATEWAY_API, audience) == []
    assert [r.index for r in audience_refusals(Router.REPLICAS, audience)] == [0]
    assert audience_refusals(Router.REPLICAS, []) == []
