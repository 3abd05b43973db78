"""The local platform under blue-green and rolling rollouts: a preview without traffic, the
switch and the switch back, and rolling batches where traffic follows the instance counts."""

from __future__ import annotations

from dataclasses import replace

from tests.workers.platforms.local.conftest import LocalApps, gone
from workers.actions import EnsureCanary, Promote, Rollback, ScaleDownOld, ScaleNew, SwitchActive
from workers.platforms import Ready
from workers.state import Phase


def tracks(local_apps: LocalApps, app: str) -> list[tuple[str, str]]:
    return sorted((i.track, i.version) for i in local_apps.status(app).instances if i.healthy)


def test_blue_green_previews_switches_and_switches_back(local_apps: LocalApps) -> None:
    app = local_apps.register("storefront")
    rollout = local_apps.rollout(app, "v2", strategy="blue_green")
    assert local_apps.apply(rollout, EnsureCanary(), ScaleNew(percent=100)) == Ready()
    assert tracks(local_apps, app) == [("canary", "v2")] * 2 + [("stable", "v1")] * 2
    assert local_apps.served(app, 40) == {"v1": 40}  # a preview gets no user traffic
    assert local_apps.apply(rollout, ScaleNew(percent=100), SwitchActive()) == Ready()
    assert local_apps.served(app, 40) == {"v2": 40}
    assert local_apps.status(app).weight == 100
    new = local_apps.status(app).pids("canary")
    aborting = replace(rollout, phase=Phase.ABORTING)
    assert local_apps.apply(aborting, Rollback("post-promotion analysis failed", True)) == Ready()
    assert local_apps.served(app, 40) == {"v1": 40}
    assert gone(new)
    assert tracks(local_apps, app) == [("stable", "v1")] * 2


def test_blue_green_scales_the_old_side_down_then_promotes(local_apps: LocalApps) -> None:
    app = local_apps.register("storefront")
    old = local_apps.status(app).pids("stable")
    rollout = local_apps.rollout(app, "v3", strategy="blue_green")
    local_apps.apply(rollout, EnsureCanary(), ScaleNew(percent=100))
    local_apps.apply(rollout, ScaleNew(percent=100), SwitchActive())
    new = local_apps.status(app).pids("canary")
    assert local_apps.apply(rollout, SwitchActive(), ScaleDownOld()) == Ready()
    assert gone(old)
    assert local_apps.apply(rollout, Promote()) == Ready()
    assert local_apps.served(app, 40) == {"v3": 40}
    status = local_apps.status(app)
    assert (status.stable_version, status.canary_version) == ("v3", None)
    assert status.pids("stable") == new  # promoted in place: nothing restarted


def test_rolling_batches_shift_instances_and_traffic_with_them(local_apps: LocalApps) -> None:
    app = local_apps.register("inventory", replicas=4)
    rollout = local_apps.rollout(app, "v2", strategy="rolling")
    assert local_apps.apply(rollout, EnsureCanary(), ScaleNew(percent=25)) == Ready()
    assert tracks(local_apps, app) == [("canary", "v2")] + [("stable", "v1")] * 3
    served = local_apps.served(app, 200)
    assert 25 <= served["v2"] <= 75  # one instance of four: about 50 of 200
    assert local_apps.apply(rollout, ScaleNew(percent=50)) == Ready()
    assert tracks(local_apps, app) == [("canary", "v2")] * 2 + [("stable", "v1")] * 2
    served = local_apps.served(app, 200)
    assert 65 <= served["v2"] <= 135
    assert local_apps.status(app).weight == 50
    canary = local_apps.status(app).pids("canary")
    aborting = replace(rollout, phase=Phase.ABORTING)
    assert local_apps.apply(aborting, Rollback("errors up")) == Ready()  # four v1 again first
    assert tracks(local_apps, app) == [("stable", "v1")] * 4
    assert gone(canary)
    assert local_apps.served(app, 40) == {"v1": 40}


def test_rolling_promotion_replaces_every_instance(local_apps: LocalApps) -> None:
    app = local_apps.register("inventory", replicas=4)
    old = local_apps.status(app).pids("stable")
    rollout = local_apps.rollout(app, "v3", strategy="rolling")
    local_apps.apply(rollout, EnsureCanary(), ScaleNew(replicas=1))
    assert local_apps.apply(rollout, Promote()) == Ready()
    assert tracks(local_apps, app) == [("stable", "v3")] * 4
    assert gone(old)
    assert local_apps.served(app, 40) == {"v3": 40}
