"""The pure parts of the platform: sizing rules, what a defaulting API server stores, diffs."""

from __future__ import annotations

import copy

import pytest

from tests.workers.platforms.kubernetes import defaulting
from tests.workers.platforms.kubernetes.emulator import crd_schemas
from workers.actions import Match, Promote, Rollback, ScaleDownOld, ScaleNew, SetTraffic
from workers.platforms.base import PlatformError
from workers.platforms.kubernetes.api import merge_diff
from workers.platforms.kubernetes.desired import (
    Baseline,
    Desired,
    label_value,
    replicas_for_weight,
    sized_for_router,
)
from workers.platforms.kubernetes.gateway_api import normalized, routed_rules
from workers.platforms.kubernetes.target import Target
from workers.spec import RolloutTraffic

TARGET = Target(
    rollout="checkout-1",
    attempt=1,
    token="1:0:stage",
    namespace="shop",
    app="checkout",
    version="v2",
    strategy="targeted",
    traffic=RolloutTraffic(router="gateway_api").resolved("checkout"),
    image="r.example/checkout:2",
    images=(),
)
RULES = [
    {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
     "backendRefs": [{"name": "checkout", "port": 80}]},
    {"backendRefs": [{"name": "cdn", "port": 80}]},
]  # fmt: skip
AUDIENCE = (Match("header", "x-beta", "yes"), Match("cookie", "canary", "always"))


class Router:
    def __init__(self, name: str) -> None:
        self.name = name

    def canary_replicas(self, stable: int, weight: int, match: tuple[Match, ...]) -> int:
        return (
            replicas_for_weight(stable, weight)
            if self.name == "replicas"
            else sized_for_router(stable, weight, match)
        )


@pytest.mark.parametrize(
    ("weight", "canary"), [(0, 0), (5, 1), (20, 1), (25, 2), (40, 3), (50, 4), (90, 4)]
)
def test_replica_counts_approximate_a_weight_up_to_an_even_split(weight: int, canary: int) -> None:
    assert replicas_for_weight(4, weight) == canary


def test_a_router_runs_enough_pods_for_its_share_and_one_for_an_audience() -> None:
    assert sized_for_router(4, 0, ()) == 0
    assert sized_for_router(4, 0, AUDIENCE) == 1
    assert sized_for_router(4, 30, ()) == 2
    assert sized_for_router(4, 100, ()) == 4


def test_rolling_batches_move_replicas_from_the_stable_and_blue_green_retires_it() -> None:
    start = Desired("r", 1, None, stable_replicas=4)
    baseline = Baseline(4, "v1")
    batch = start.folded(ScaleNew(percent=25), baseline, "rolling", Router("gateway_api"))
    assert (batch.canary_replicas, batch.stable_replicas, batch.weight) == (1, 3, 25)
    assert batch.stable_touched
    preview = start.folded(ScaleNew(replicas=2), baseline, "blue_green", Router("replicas"))
    assert (preview.canary_replicas, preview.stable_replicas, preview.stable_touched) == (
        2,
        4,
        False,
    )
    retired = preview.folded(ScaleDownOld(), baseline, "blue_green", Router("replicas"))
    assert (retired.stable_replicas, retired.stable_touched) == (0, True)


def test_folding_is_declarative_and_a_record_reads_back() -> None:
    start = Desired("r", 1, "1:0:stage", stable_replicas=4)
    router, baseline = Router("gateway_api"), Baseline(4, "v1")
    once = start.folded(SetTraffic(25, AUDIENCE), baseline, "targeted", router)
    assert once.folded(SetTraffic(25, AUDIENCE), baseline, "targeted", router) == once
    assert Desired.from_json(once.to_json()) == once
    promoted = once.folded(Promote(), baseline, "targeted", router)
    assert (promoted.mode, promoted.stable_touched) == ("promote", True)
    assert once.folded(Rollback("x"), baseline, "targeted", router).mode == "rollback"
    assert Desired.from_json("not json") is None and Desired.from_json(None) is None


def test_route_rules_computed_from_what_a_defaulting_server_stored_are_the_same() -> None:
    written = routed_rules(RULES, TARGET, 25, AUDIENCE)
    stored = normalized(written)  # a real API server fills in the CRD's defaults
    again = routed_rules(stored, TARGET, 25, AUDIENCE)
    assert normalized(again) == stored  # so a re-assert writes nothing
    assert normalized(routed_rules(stored, TARGET, None, ())) == normalized(RULES)


def test_the_platforms_defaults_are_the_crds_so_what_it_writes_is_what_it_reads_back() -> None:
    """``normalized`` against the HTTPRoute CRD's own ``default:`` values (crds/, the schema
    the emulator and a cluster without Gateway API default from), not against itself."""
    schema = crd_schemas()["gateway.networking.k8s.io/v1/httproutes"]
    for weight, audience in [(25, AUDIENCE), (None, ()), (0, AUDIENCE[:1])]:
        written = routed_rules(RULES, TARGET, weight, audience)
        stored = defaulting.custom_resource({"spec": {"rules": copy.deepcopy(written)}}, schema)
        assert normalized(written) == stored["spec"]["rules"]
        again = routed_rules(stored["spec"]["rules"], TARGET, weight, audience)
        assert normalized(again) == stored["spec"]["rules"]  # a re-assert writes nothing


def test_a_rule_splitting_the_stable_service_with_others_is_refused() -> None:
    shared = [{"backendRefs": [{"name": "checkout", "port": 80}, {"name": "legacy", "port": 80}]}]
    with pytest.raises(PlatformError, match="splits Service checkout with other backends"):
        routed_rules(shared, TARGET, 10, ())
    with pytest.raises(PlatformError, match="no rule sending to Service checkout"):
        routed_rules(RULES[1:], TARGET, 10, ())


def test_a_merge_diff_leaves_exactly_the_wanted_object() -> None:
    current = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    wanted = {"a": 1, "b": {"c": 4}, "e": [2], "f": "new"}
    assert merge_diff(current, wanted) == {"b": {"c": 4, "d": None}, "e": [2], "f": "new"}
    assert merge_diff(wanted, wanted) == {}


def test_long_ids_become_valid_label_values() -> None:
    long_id = "a" * 63 + "-0123456789ab"
    value = label_value(long_id)
    assert len(value) <= 63 and value != label_value("b" * 63 + "-0123456789ab")
    assert label_value("checkout-0123456789ab") == "checkout-0123456789ab"


def test_an_audience_the_route_rule_cannot_hold_is_refused_before_the_api_server_would() -> None:
    """64 matches fit one HTTPRoute rule; the route's own matches multiply the audience's, so
    the policy's limit (one per audience rule) is checked again against the rule written."""
    two_paths = [{**RULES[0], "matches": [{"path": {"value": "/a"}}, {"path": {"value": "/b"}}]}]
    audience = tuple(Match("header", "x-n", str(n)) for n in range(33))
    with pytest.raises(PlatformError, match=r"would have 66 matches .* allows 64"):
        routed_rules(two_paths, TARGET, 0, audience)
    assert len(routed_rules(two_paths, TARGET, 0, audience[:32])[0]["matches"]) == 64
