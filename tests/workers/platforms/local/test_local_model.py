"""The local platform's pure decisions: desired state per action, the order in which instances
are started, routed and retired, rollout ownership, and readiness, without any process."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.policy.traffic import StickyKey, StickyKind
from workers.actions import (
    EnsureCanary,
    Match,
    Promote,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    SetTraffic,
    SwitchActive,
)
from workers.platforms import Failed, NotYet, PlatformError, Ready
from workers.platforms.local.model import (
    StaleRolloutError,
    assess,
    claim,
    missing,
    route,
    settle,
    transition,
)
from workers.platforms.local.nginx import AppRoute, NginxRouter, render
from workers.platforms.local.record import STICKY_FORMAT, AppRecord, Instance, LocalRelease
from workers.spec import RolloutSpec, RolloutTraffic
from workers.state import RolloutState

PORTS = iter(range(20000, 30000))


def rollout(version: str = "v2", strategy: str = "canary", created: float = 100.0) -> RolloutState:
    spec = RolloutSpec(version, f"serve {version} {{port}}", "local", "a", "b", strategy=strategy)
    return RolloutState.new(f"r-{version}", app="web", namespace="ns", policy="p", spec=spec,
                            now=created)  # fmt: skip


def app(replicas: int = 2) -> AppRecord:
    stable = LocalRelease("v1", "serve v1 {port}", replicas)
    record = AppRecord("ns", "web", 8080, replicas, "x-region", stable)
    return started(record, routable=True)


def started(record: AppRecord, routable: bool = False) -> AppRecord:
    """``record`` with every missing instance started (and healthy if ``routable``)."""
    new = tuple(
        Instance(side, release.version, release.command, next(PORTS), 1, 1, "log", 0.0, routable)
        for side, release in missing(record)
    )
    return replace(record, instances=record.instances + new)


def up(record: AppRecord) -> AppRecord:
    return replace(record, instances=tuple(replace(i, routable=True) for i in record.instances))


def act(record: AppRecord, state: RolloutState, *actions: object) -> AppRecord:
    for action in actions:
        record = transition(claim(record, state, "test"), state, action)  # type: ignore[arg-type]
    return record


def test_a_canary_takes_no_traffic_until_it_answers_its_health_check() -> None:
    record = act(app(), rollout(), EnsureCanary(), SetTraffic(25))
    record = settle(started(record))
    assert route(record).canary == () and len(route(record).stable) == 2
    record = settle(up(record))
    assert (len(route(record).canary), route(record).weight) == (1, 25)


def test_a_rolling_batch_retires_old_instances_only_once_the_new_ones_are_up() -> None:
    state = rollout(strategy="rolling")
    record = act(app(replicas=4), state, EnsureCanary(), ScaleNew(percent=30))
    assert (record.canary and record.canary.count, record.stable.count) == (2, 2)  # 30% of 4: 2
    record = settle(started(record))  # the two new ones are not up yet
    assert sum(not i.retiring for i in record.instances if i.side == "stable") == 4
    assert len(route(record).stable) == 4  # pooled: the new ones join once healthy
    record = settle(up(record))
    assert sum(i.retiring for i in record.instances) == 2
    assert len(route(record).stable) == 4  # two old + two new, in one pool


def test_a_switch_waits_for_the_whole_new_side_and_a_scale_down_needs_the_switch() -> None:
    state = rollout(strategy="blue_green")
    record = act(app(), state, EnsureCanary(), ScaleNew(percent=100))
    with pytest.raises(PlatformError, match="only after switching"):
        act(record, state, ScaleDownOld())
    record = started(act(record, state, SwitchActive()))
    half = replace(
        record, instances=(*record.instances[:-1], replace(record.instances[-1], routable=True))
    )
    assert route(settle(half)).canary == ()  # one of two up: the active side stays old
    assert len(route(settle(up(record))).canary) == 2


def test_promotion_swaps_roles_once_the_new_version_is_at_full_size() -> None:
    state = rollout()
    record = settle(up(started(act(app(), state, EnsureCanary(), SetTraffic(50)))))
    record = settle(started(act(record, state, Promote())))
    assert record.promoting and record.stable.version == "v1"  # one of two new ones is up
    record = settle(up(record))
    assert (record.stable.version, record.canary, record.promoting) == ("v2", None, False)
    assert {i.version for i in record.instances if i.retiring} == {"v1"}
    assert route(record).canary == () and len(route(record).stable) == 2
    assert act(record, state, Promote()) == record  # re-asserted once done: no change


def test_rollback_during_a_promotion_brings_the_old_version_back() -> None:
    state = rollout()
    record = settle(up(started(act(app(), state, EnsureCanary(), SetTraffic(50), Promote()))))
    record = settle(up(started(record)))
    assert record.stable.version == "v2"
    back = act(record, state, Rollback("new stable crashed"))
    assert (back.stable.version, back.canary, back.previous) == ("v1", None, None)


def test_stale_actions_are_refused_by_creation_time_and_attempt() -> None:
    newer = rollout("v3", created=200.0)
    record = act(app(), newer, EnsureCanary())
    with pytest.raises(StaleRolloutError, match="r-v3"):
        claim(record, rollout("v2", created=100.0), "Rollback")
    retried = act(record, replace(newer, attempt=2), EnsureCanary())
    with pytest.raises(StaleRolloutError):
        claim(retried, newer, "SetTraffic")


def test_readiness_reports_a_dead_canary_with_its_code_and_a_slow_one_after_the_deadline() -> None:
    state = rollout()
    record = started(act(app(), state, EnsureCanary()))
    assert isinstance(assess(record, state, now=1.0, deadline=60, tail=str), NotYet)
    late = assess(record, state, now=61.0, deadline=60, tail=lambda i: "still starting")
    assert isinstance(late, Failed) and "did not answer /healthz within 60 s" in late.reason
    dead = replace(record, instances=tuple(
        replace(i, exited=True, exit_code=3) if i.side == "canary" else i for i in record.instances
    ))  # fmt: skip
    answer = assess(dead, state, now=1.0, deadline=60, tail=lambda i: "boom")
    port = dead.instances[-1].port
    assert answer == Failed(f"canary instance of v2 on port {port} exited with code 3: boom")
    assert assess(settle(up(record)), state, now=1.0, deadline=60, tail=str) == Ready()


def test_the_record_survives_json() -> None:
    rules = (Match("header", "x-region", "KR"), Match("cookie", "beta", "y", regex=True))
    record = settle(started(act(app(), rollout(), EnsureCanary(), SetTraffic(5, rules))))
    assert AppRecord.from_record(json.loads(json.dumps(record.to_record()))) == record


def test_a_record_without_a_fresh_baseline_is_written_as_the_release_before_read_it() -> None:
    record = settle(started(act(app(), rollout(), EnsureCanary(), SetTraffic(5))))
    written = record.to_record()
    assert written["format"] == 1 and "baseline" not in written
    assert AppRecord.from_record(written) == record
    with_baseline = replace(record, baseline=record.stable)
    assert with_baseline.to_record()["format"] == 2
    assert AppRecord.from_record(with_baseline.to_record()) == with_baseline
    with pytest.raises(ValueError, match="format 4"):
        AppRecord.from_record(written | {"format": 4})


def test_no_healthy_instance_answers_503_rather_than_an_invalid_configuration(
    tmp_path: Path,
) -> None:
    routes = [AppRoute("ns_web_8080", 8080, ())]
    text = render(routes, generation=1, control_port=9, home=tmp_path)
    assert 'return 503 "no healthy instance\\n";' in text and "upstream ns_web" not in text
    NginxRouter(tmp_path, "nginx").check(routes)  # nginx -t accepts it


def test_a_sticky_rollouts_split_is_kept_sticky_in_a_format_3_record() -> None:
    record = settle(started(act(app(), rollout(), EnsureCanary(), SetTraffic(5))))
    key = StickyKey(StickyKind.HEADER, "x-user-id")
    keyed = replace(rollout(), spec=replace(rollout().spec, traffic=RolloutTraffic(sticky=key)))
    sticky = settle(started(act(app(), keyed, EnsureCanary(), SetTraffic(5))))
    assert sticky.traffic.sticky == key and route(sticky).sticky == key
    written = sticky.to_record()
    assert written["format"] == STICKY_FORMAT  # the release before sticky refuses it by name
    assert written["traffic"]["sticky"] == {"kind": "header", "name": "x-user-id"}
    assert AppRecord.from_record(written) == sticky
    assert "sticky" not in record.to_record()["traffic"]  # not sticky: as the release before
