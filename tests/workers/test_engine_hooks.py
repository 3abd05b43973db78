"""The pure engine at its hook points: when hooks are due, what their answers mean, and that a
due hook survives in the stored record (format 4) and nowhere else."""

from __future__ import annotations

import pytest

from analyzer.policy import Policy, load_policy_text
from analyzer.policy.hooks import HookPoint
from analyzer.verdict import Outcome
from tests.workers.rollout_driver import FAIL, METRICS, Driver, always, events, healthy, platform
from workers.actions import (
    EnsureCanary,
    HookCall,
    HookResult,
    Promote,
    Rollback,
    SetTraffic,
    Superseded,
)
from workers.engine import HookToken
from workers.state import HOOKS_FORMAT, PINNED_POLICY_FORMAT, Phase, RolloutState

YES = (HookCall("gate", Outcome.PASS, "HTTP 200", 200),)
NO = (HookCall("gate", Outcome.FAIL, "HTTP 403: freeze", 403),)


def hooked(*points: str) -> Policy:
    hooks = "".join(f"  - {{name: h-{i}, point: {p}, route: r}}\n" for i, p in enumerate(points))
    strategy = "{type: canary, steps: [{set_weight: 50}, {analyze: 2m}, {set_weight: 100}]}"
    text = f"name: small\nanalysis: {{interval: 1m}}\n{METRICS}\nstrategy: {strategy}\n"
    return load_policy_text(f"{text}hooks:\n{hooks}")


def answer(driver: Driver, calls: tuple[HookCall, ...]) -> list[object]:
    token = driver.state.hook_due
    assert token is not None, "no hook is due"
    point = HookToken.parse(token).point
    return list(driver.send(HookResult(token, point, calls)))


def test_pre_rollout_deploys_at_zero_and_waits_in_pending() -> None:
    driver = Driver(hooked("pre_rollout"))
    actions = driver.tick()
    assert platform(actions) == [EnsureCanary()]  # no weight, no audience
    state = driver.state
    assert state.phase is Phase.PENDING and state.hook_due == "1:0:pre_rollout"
    assert state.next_due_at == driver.now and state.awaiting is None
    again = driver.tick()  # a wake-up without the hooks' answer: nothing asked twice
    assert platform(again) == [] and events(again) == [] and driver.state == state
    actions = answer(driver, YES)
    assert SetTraffic(50) in platform(actions) and driver.state.phase is Phase.PROGRESSING
    assert driver.state.hook_due is None


def test_a_pre_rollout_no_aborts_with_the_hook_in_the_reason() -> None:
    driver = Driver(hooked("pre_rollout", "post_rollback"))
    driver.tick()
    actions = answer(driver, NO)
    assert platform(actions) == [Rollback(driver.state.abort_reason or "", False)]
    assert driver.state.phase is Phase.ABORTING and "gate fail: HTTP 403" in str(
        driver.state.abort_reason
    )
    driver.ready()
    assert driver.state.phase is Phase.ABORTED and driver.state.hook_due == "1:0:post_rollback"
    answer(driver, NO)  # informational: recorded, nothing else
    assert driver.state.phase is Phase.ABORTED and driver.state.hook_due is None
    assert driver.state.next_due_at is None


def test_a_person_aborting_while_the_pre_rollout_hook_runs_rolls_the_canary_back() -> None:
    driver = Driver(hooked("pre_rollout"))
    driver.tick()
    actions = driver.command("abort")
    assert any(isinstance(action, Rollback) for action in actions)
    assert driver.state.hook_due is None and driver.state.phase is Phase.ABORTING


def test_confirm_promotion_holds_until_yes_and_asks_every_interval() -> None:
    policy = hooked("confirm_promotion", "post_promotion")
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda state: state.hook_due is not None)
    state = driver.state
    assert state.phase is Phase.PROGRESSING and state.stage_index == len(policy.strategy.steps) - 1
    assert HookToken.parse(state.hook_due or "").point is HookPoint.CONFIRM_PROMOTION
    look = state.analysis_due(driver.now + 3600)
    assert look is not None and not look.final  # held: background looks go on
    actions = answer(driver, NO)
    assert not any(isinstance(action, Promote) for action in actions)
    assert driver.state.hook_at == driver.now + 60 and driver.state.next_due_at == driver.now + 60
    assert "promotion held" in events(actions)[-1].message
    driver.at(driver.state.next_due_at or 0.0)
    actions = answer(driver, YES)
    assert Promote() in platform(actions) and driver.state.phase is Phase.PROMOTING
    driver.ready()
    assert driver.state.phase is Phase.PROMOTED
    assert HookToken.parse(driver.state.hook_due or "").point is HookPoint.POST_PROMOTION


def test_a_fail_while_held_at_the_gate_aborts() -> None:
    policy = hooked("confirm_promotion")
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda state: state.hook_due is not None)
    answer(driver, NO)
    assert driver.state.next_due_at == driver.state.next_look_at  # a look comes before the hook
    driver.run(always(policy, FAIL), until=lambda state: state.phase is not Phase.PROGRESSING)
    assert driver.state.phase is Phase.ABORTING and driver.state.hook_due is None


def test_a_person_promoting_passes_the_webhook_gate() -> None:
    policy = hooked("confirm_promotion")
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda state: state.hook_due is not None)
    actions = driver.command("promote", full=True)
    assert Promote() in platform(actions) and driver.state.hook_due is None


def test_a_person_promoting_the_last_stage_passes_the_gate_and_resuming_does_not() -> None:
    policy = hooked("confirm_promotion")
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda state: state.hook_due is not None)
    driver.command("pause")
    driver.command("resume")
    assert driver.state.phase is Phase.PROGRESSING and driver.state.hook_due is not None
    actions = driver.command("promote")
    assert Promote() in platform(actions) and driver.state.hook_due is None


def test_a_retry_asks_the_pre_rollout_hooks_again_before_any_traffic() -> None:
    driver = Driver(hooked("pre_rollout"))
    driver.tick()
    answer(driver, NO)
    driver.ready()
    actions = driver.command("retry")
    assert platform(actions) == [EnsureCanary()] and driver.state.phase is Phase.PENDING
    assert driver.state.hook_due == "2:0:pre_rollout"
    answer(driver, YES)
    assert driver.state.phase is Phase.PROGRESSING and driver.state.attempt == 2


def test_a_rollout_superseded_while_its_pre_rollout_hook_runs_rolls_back() -> None:
    driver = Driver(hooked("pre_rollout"))
    driver.tick()
    actions = driver.send(Superseded("r2"))
    assert any(isinstance(action, Rollback) for action in actions)
    assert driver.state.phase is Phase.ABORTING and driver.state.hook_due is None


def test_a_stale_hook_answer_is_dropped() -> None:
    driver = Driver(hooked("pre_rollout"))
    driver.tick()
    before = driver.state
    actions = driver.send(HookResult("9:0:pre_rollout", HookPoint.PRE_ROLLOUT, NO))
    assert platform(actions) == [] and events(actions) == [] and driver.state == before


def test_a_due_hook_is_stored_in_format_4_and_only_then() -> None:
    driver = Driver(hooked("pre_rollout"))
    plain = driver.state.to_record()
    assert "hook_due" not in plain and "hook_at" not in plain
    driver.tick()
    record = driver.state.to_record()
    assert record["format"] == HOOKS_FORMAT and record["hook_due"] == "1:0:pre_rollout"
    assert RolloutState.from_record(record) == driver.state
    answer(driver, YES)
    assert driver.state.to_record()["format"] != HOOKS_FORMAT
    pinned = RolloutState.from_record({**record, "policy_digest": "a" * 64, "hook_due": None})
    assert pinned.to_record()["format"] == PINNED_POLICY_FORMAT


@pytest.mark.parametrize("token", ["1:0", "x:0:pre_rollout", "1:0:later"])
def test_a_bad_hook_token_is_refused(token: str) -> None:
    with pytest.raises(ValueError):
        HookToken.parse(token)
