"""Event names sort by time, as client-go's do, and a name already taken is not an Event lost."""

from __future__ import annotations

import pytest

from tests.workers.platforms.kubernetes.driving import rollout
from tests.workers.platforms.kubernetes.kube_stack import Cluster
from workers.actions import EnsureCanary, Promote, SetTraffic
from workers.platforms.kubernetes import KubernetesPlatform, events
from workers.platforms.kubernetes.desired import Desired
from workers.platforms.kubernetes.target import Target

pytestmark = pytest.mark.kubernetes


def test_names_are_the_object_and_a_zero_padded_hex_timestamp_so_they_sort_by_time() -> None:
    early, late = events.event_name("shop", 0xABC), events.event_name("shop", 0x1_0000_0000_0000)
    assert early == "shop.0000000000000abc"
    assert late == "shop.0001000000000000"
    assert sorted([late, early]) == [early, late]


def test_events_listed_by_name_come_in_the_order_they_were_made(
    cluster: Cluster, platform: KubernetesPlatform, app: str
) -> None:
    cluster.deployment(app)
    state = rollout(cluster, app, router="replicas")
    target, stable = Target.of(state), cluster.get("deployment", app)
    assert stable is not None
    wish = Desired(target.rollout, target.attempt, None, 4)
    actions = [EnsureCanary(), SetTraffic(10), SetTraffic(20), SetTraffic(50), Promote()]
    for action in actions:
        events.emit(platform.kube, target, stable, action, wish)

    made = [event["reason"] for event in cluster.events(app)]
    assert made == ["CanaryStarted"] + ["CanaryWeightSet"] * 3 + ["Promoting"]
    names = [event["metadata"]["name"] for event in cluster.events(app)]
    assert names == sorted(names) and all(name.startswith(f"{app}.") for name in names)


def test_a_name_already_taken_is_retried_with_a_later_timestamp(
    cluster: Cluster, platform: KubernetesPlatform, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.deployment(app)
    state = rollout(cluster, app, router="replicas")
    target, stable = Target.of(state), cluster.get("deployment", app)
    assert stable is not None
    wish = Desired(target.rollout, target.attempt, None, 4)
    monkeypatch.setattr(events.time, "time_ns", lambda: 1_700_000_000_000_000_000)
    events.emit(platform.kube, target, stable, EnsureCanary(), wish)
    events.emit(platform.kube, target, stable, SetTraffic(10), wish)  # the same nanosecond

    found = cluster.events(app)
    assert [event["reason"] for event in found] == ["CanaryStarted", "CanaryWeightSet"]
    stamps = [int(event["metadata"]["name"].rsplit(".", 1)[1], 16) for event in found]
    assert stamps == [1_700_000_000_000_000_000, 1_700_000_000_000_000_001]
