"""The ``traffic:`` section: routers, object names, and the router a targeted canary needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy, load_policy_text
from analyzer.policy.traffic import TrafficSpec

POLICIES = Path(__file__).parents[3] / "policies"
BASE = """\
name: p
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }} }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }} }[{{ interval }}]))
"""
TARGETED = """\
strategy:
  type: targeted
  match:
    - header: {name: x-beta, value: "yes"}
  analyze: {duration: 5m}
  steps:
    - set_weight: 100
"""
CANARY = "strategy: {type: canary, steps: [{set_weight: 100}]}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [problem.render("p.yaml") for problem in caught.value.problems]


def test_without_a_section_traffic_follows_replica_counts() -> None:
    traffic = load_policy_text(BASE + CANARY).traffic
    assert traffic == TrafficSpec()
    assert (traffic.router, traffic.version_label, traffic.route) == ("replicas", "version", None)


def test_a_section_names_the_router_and_its_objects() -> None:
    section = (
        "traffic:\n  router: gateway_api\n  route: storefront\n"
        "  canary_service: checkout-next\n  version_label: app.kubernetes.io/version\n"
    )
    text = BASE + CANARY + section
    traffic = load_policy_text(text).traffic
    assert traffic.router == "gateway_api" and traffic.route == "storefront"
    assert traffic.canary_service == "checkout-next"
    assert traffic.version_label == "app.kubernetes.io/version"


def test_a_targeted_canary_on_replica_counts_is_refused_at_traffic_router() -> None:
    text = BASE + TARGETED + "traffic:\n  router: replicas\n"
    assert problems(text) == [
        "p.yaml:15: traffic.router: replicas cannot send a chosen audience to the canary; "
        "use gateway_api or nginx_ingress"
    ]


def test_a_targeted_canary_without_a_router_loads_for_platforms_that_route_themselves() -> None:
    # local (its own NGINX) and observe need no router; intake refuses it on Kubernetes
    policy = load_policy_text(BASE + TARGETED)
    assert (policy.strategy.type, policy.traffic.router) == ("targeted", "replicas")


def test_a_targeted_canary_with_a_router_loads() -> None:
    policy = load_policy_text(BASE + TARGETED + "traffic: {router: nginx_ingress}\n")
    assert policy.traffic.router == "nginx_ingress"


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("{router: istio}", "traffic.router"),
        ("{stable_service: Checkout}", "traffic.stable_service"),
        ("{canary_service: 1checkout}", "traffic.canary_service"),
        ("{route: 'shop front'}", "traffic.route"),
        ("{version_label: 'a b'}", "traffic.version_label"),
        ("{routr: gateway_api}", "traffic.routr"),
    ],
)
def test_a_bad_section_names_the_field(section: str, field: str) -> None:
    (found,) = problems(BASE + CANARY + f"traffic: {section}\n")
    assert f": {field}:" in found


def test_the_same_service_for_both_versions_is_refused() -> None:
    text = BASE + CANARY + "traffic: {stable_service: checkout, canary_service: checkout}\n"
    (found,) = problems(text)
    assert "traffic.canary_service: the canary Service is the stable one" in found


def test_the_shipped_targeted_policy_routes_with_the_gateway_api() -> None:
    assert load_policy(POLICIES / "targeted-canary.yaml").traffic.router == "gateway_api"


def test_the_schema_describes_the_section() -> None:
    schema = json.loads((POLICIES / "schema.json").read_text())
    traffic = schema["$defs"]["Traffic"]["properties"]
    assert set(traffic) == {
        "router", "route", "ingress", "stable_service", "canary_service", "version_label",
        "sticky",
    }  # fmt: skip
    assert traffic["router"]["enum"] == ["replicas", "gateway_api", "nginx_ingress"]
