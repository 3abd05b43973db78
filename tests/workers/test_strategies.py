"""Strategies compile policies into flat plans of stages; the registry refuses unknown types."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.workers.rollout_driver import shipped, small
from workers.actions import Match, ScaleDownOld, ScaleNew, SetTraffic, SwitchActive
from workers.strategies import (
    PLANNERS,
    Analyze,
    Exposure,
    Gate,
    Pause,
    Preview,
    RetireOld,
    Scale,
    Shift,
    Switch,
    UnknownStrategyError,
    exposure_after,
    plan_for,
)

KR = Match("header", "x-region", "KR")
TESTERS = Match("cookie", "canary", "always")


def test_default_canary_is_weights_and_analysis_windows() -> None:
    assert plan_for(shipped("default-canary").strategy) == (
        Shift(5),
        Analyze(600.0),
        Shift(25),
        Analyze(600.0),
        Shift(50),
        Analyze(600.0),
        Shift(100),
    )


def test_canary_pauses_are_timed_or_wait_for_a_person() -> None:
    policy = small(
        "{type: canary, steps: [{set_weight: 20}, {pause: {}}, {pause: {duration: 90s}},"
        " {pause: null}, {set_weight: 100}]}"
    )
    plan = plan_for(policy.strategy)
    assert plan == (Shift(20), Pause(None), Pause(90.0), Pause(None), Shift(100))
    assert [stage.gate for stage in plan] == [
        Gate.READY,
        Gate.PERSON,
        Gate.TIMER,
        Gate.PERSON,
        Gate.READY,
    ]
    assert plan[2].seconds == 90.0 and plan[1].seconds is None


def test_targeted_routes_its_audience_first_and_keeps_it_through_the_weights() -> None:
    assert plan_for(shipped("targeted-canary").strategy) == (
        Shift(0, (KR, TESTERS)),
        Analyze(900.0),
        Shift(10, (KR, TESTERS)),
        Analyze(600.0),
        Shift(50, (KR, TESTERS)),
        Analyze(600.0),
        Shift(100, (KR, TESTERS)),
    )


def test_targeted_header_rules_keep_exact_values_and_regexes() -> None:
    policy = small(
        "{type: targeted, region_header: cf-ipcountry, analyze: {duration: 5m},"
        " match: [{header: {name: x-beta, value: 'yes'}}, {header: {name: user-agent,"
        " regex: '.*Firefox.*'}}, {region: DE}], steps: [{set_weight: 100}]}"
    )
    audience = (
        Match("header", "x-beta", "yes"),
        Match("header", "user-agent", ".*Firefox.*", regex=True),
        Match("header", "cf-ipcountry", "DE"),
    )
    assert plan_for(policy.strategy) == (Shift(0, audience), Analyze(300.0), Shift(100, audience))


def test_rolling_is_cumulative_batches_with_analysis_between_them() -> None:
    assert plan_for(shipped("rolling").strategy) == (
        Scale(replicas=1),
        Analyze(300.0),
        Scale(percent=25),
        Analyze(300.0),
        Scale(percent=50),
        Analyze(300.0),
        Scale(percent=100),
    )


def test_blue_green_previews_analyses_switches_and_keeps_the_old_side() -> None:
    assert plan_for(shipped("blue-green").strategy) == (
        Preview(None),
        Analyze(600.0),
        Switch(),
        Analyze(600.0),
        RetireOld(900.0),
    )


@pytest.mark.parametrize(
    ("options", "gate"),
    [
        ("auto_promote: false", (Pause(None),)),
        ("auto_promote: false, auto_promote_after: 5m", (Pause(None),)),  # as Argo: ignored
        ("auto_promote: true, auto_promote_after: 5m", (Pause(300.0),)),
        ("auto_promote: true", ()),
    ],
)
def test_blue_green_auto_promotion_decides_the_pause_before_the_switch(
    options: str, gate: tuple[Pause, ...]
) -> None:
    policy = small(f"{{type: blue_green, preview_replicas: 2, scale_down_delay: 1m, {options}}}")
    assert plan_for(policy.strategy) == (Preview(2), *gate, Switch(), RetireOld(60.0))


def test_each_stage_asks_the_platform_for_declarative_changes() -> None:
    assert Shift(25, (KR,)).enter() == (SetTraffic(25, (KR,)),)
    assert Scale(percent=50).enter() == (ScaleNew(percent=50),)
    assert Scale(replicas=3).enter() == (ScaleNew(replicas=3),)
    assert Preview(None).enter() == (ScaleNew(percent=100),)
    assert Preview(2).enter() == (ScaleNew(replicas=2),)
    assert Switch().enter() == (ScaleNew(percent=100), SwitchActive())
    assert RetireOld(60.0).enter() == () and RetireOld(60.0).leave() == (ScaleDownOld(),)
    for hold in (Analyze(60.0), Pause(None), Pause(30.0)):
        assert hold.enter() == () and hold.leave() == ()


def test_exposure_follows_the_plan() -> None:
    blue_green = plan_for(shipped("blue-green").strategy)
    assert exposure_after(blue_green, -1) == Exposure()
    assert exposure_after(blue_green, 1) == Exposure(0, serving=False)  # preview: no users
    assert exposure_after(blue_green, 2) == Exposure(100, serving=True, active_is_new=True)
    assert exposure_after(blue_green, 4) == Exposure(100, serving=True, active_is_new=True)

    targeted = plan_for(shipped("targeted-canary").strategy)
    assert exposure_after(targeted, 0) == Exposure(0, serving=True)  # the audience is real users
    assert exposure_after(targeted, 2).weight == 10

    rolling = plan_for(shipped("rolling").strategy)
    assert exposure_after(rolling, 0) == Exposure(0, serving=True)  # one replica: some users
    assert [exposure_after(rolling, i).weight for i in range(7)] == [0, 0, 25, 25, 50, 50, 100]


def test_labels_read_as_sentences() -> None:
    labels = [stage.label for stage in plan_for(shipped("targeted-canary").strategy)[:3]]
    assert labels == [
        "route requests with header x-region=KR or cookie canary=always to the new version",
        "analyze 15m",
        "set weight 10% plus requests with header x-region=KR or cookie canary=always",
    ]
    assert Scale(replicas=1).label == "scale the new version to 1 replica"
    assert RetireOld(900.0).label == "keep the old version 15m, then scale it down"
    assert Pause(None).label == "pause until a person promotes"


def test_the_registry_covers_every_policy_type_and_refuses_others() -> None:
    assert set(PLANNERS) == {"canary", "rolling", "blue_green", "targeted"}
    unknown: Any = SimpleNamespace(type="linear")
    with pytest.raises(UnknownStrategyError, match=r"'linear'.*known: blue_green, canary"):
        plan_for(unknown)
