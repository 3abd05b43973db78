"""The spec's traffic section and images survive the record; older records still load."""

from __future__ import annotations

import pytest

from analyzer.policy.strategy import StrategyType
from analyzer.policy.traffic import Router
from workers.spec import RolloutSpec, RolloutTraffic
from workers.state import RolloutState

SPEC = RolloutSpec(
    version="v2",
    image="r.example/checkout:2",
    platform="kubernetes",
    baseline_selector='app="checkout",version="v1"',
    canary_selector='app="checkout",version="v2"',
    strategy="targeted",
    images=(("proxy", "r.example/envoy:1.30"),),
    traffic=RolloutTraffic(router="gateway_api", route="storefront").resolved("checkout"),
)


def state(spec: RolloutSpec = SPEC) -> RolloutState:
    return RolloutState.new("checkout-1", app="checkout", namespace="shop", policy="p", spec=spec,
                            now=1.0)  # fmt: skip


def test_traffic_and_images_read_back_equal() -> None:
    record = state().to_record()
    assert record["spec"]["images"] == {"proxy": "r.example/envoy:1.30"}
    assert record["spec"]["traffic"]["route"] == "storefront"
    assert RolloutState.from_record(record) == state()


def test_the_strategy_and_the_router_read_back_as_the_policys_words() -> None:
    record = state().to_record()
    assert (record["spec"]["strategy"], record["spec"]["traffic"]["router"]) == (
        "targeted", "gateway_api"
    )  # fmt: skip
    assert type(record["spec"]["strategy"]) is str  # the record holds plain JSON
    spec = RolloutState.from_record(record).spec
    assert spec.strategy is StrategyType.TARGETED and spec.traffic.router is Router.GATEWAY_API


def test_a_record_written_before_traffic_and_images_loads_with_their_defaults() -> None:
    record = state().to_record()
    del record["spec"]["traffic"], record["spec"]["images"]
    spec = RolloutState.from_record(record).spec
    assert spec.images == () and spec.traffic == RolloutTraffic()
    assert spec.traffic.resolved("checkout").canary_service == "checkout-canary"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("traffic", {"router": "gateway_api", "colour": "blue"}, "bad rollout record"),
        ("traffic", ["gateway_api"], "spec.traffic must be a mapping"),
        ("traffic", {"router": "istio"}, "'istio' is not a valid Router"),
        ("strategy", "linear", "'linear' is not a valid StrategyType"),
        ("images", {"proxy": 3}, "spec.images must be a mapping of strings"),
    ],
)
def test_a_bad_traffic_or_images_field_is_refused(field: str, value: object, message: str) -> None:
    record = state().to_record()
    record["spec"][field] = value
    with pytest.raises(ValueError, match=message):
        RolloutState.from_record(record)


def test_resolving_keeps_names_the_policy_gave() -> None:
    given = RolloutTraffic(router="nginx_ingress", ingress="shop-front", canary_service="next")
    resolved = given.resolved("checkout")
    assert (resolved.ingress, resolved.canary_service) == ("shop-front", "next")
    assert (resolved.route, resolved.stable_service) == ("checkout", "checkout")
