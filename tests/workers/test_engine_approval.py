"""The manual confirm-promotion gate, driven through step() with a fake clock: every strategy
holds in awaiting_approval once its last stage passes, and only an approval (or a person's
promote, which counts as one) promotes; an abort, a regression or a platform failure while it
waits rolls back."""

from __future__ import annotations

import pytest

from analyzer.policy import Policy
from analyzer.policy.strategy import ConfirmPromotion
from tests.workers.rollout_driver import (
    FAIL,
    Driver,
    always,
    events,
    healthy,
    notices,
    of_type,
    shipped,
    small,
)
from workers.actions import Action, ManualCommand, PlatformFailed, Promote, Rollback, ScaleDownOld
from workers.state import AWAITING_APPROVAL_FORMAT, Phase, RolloutState


def manual(policy: Policy) -> Policy:
    strategy = policy.strategy.model_copy(update={"confirm_promotion": ConfirmPromotion.MANUAL})
    return policy.model_copy(update={"strategy": strategy})


CANARY = manual(shipped("default-canary"))


def routed(policy: Policy) -> Policy:
    return policy.model_copy(update={"alerts": ["chat"]})


STRATEGIES = {  # the policy's own words, for every type but the shipped canary
    "canary": CANARY,
    "rolling": routed(
        small(
            "{type: rolling, confirm_promotion: manual,"
            " batches: [{percent: 50, analyze: 2m}, {percent: 100}]}"
        )
    ),
    "blue_green": routed(
        small("{type: blue_green, confirm_promotion: manual, analyze: 2m, scale_down_delay: 30s}")
    ),
    "targeted": routed(
        small(
            "{type: targeted, confirm_promotion: manual,"
            " match: [{header: {name: x-beta, value: '1'}}], analyze: 2m,"
            " steps: [{set_weight: 100}, {analyze: 2m}]}"
        )
    ),
}


def awaiting(policy: Policy = CANARY) -> Driver:
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda s: s.phase is not Phase.PROGRESSING)
    assert driver.state.phase is Phase.AWAITING_APPROVAL, driver.state
    return driver


def refusal(actions: list[Action]) -> str:
    (ignored,) = events(actions, "command_ignored")
    return ignored.message


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_holds_for_approval_and_an_approval_promotes(name: str) -> None:
    policy = STRATEGIES[name]
    driver = awaiting(policy)
    assert not of_type(driver.emitted, Promote)
    (asked,) = notices(driver.emitted, "awaiting_approval")
    assert "approve to promote, or abort" in asked.reason
    assert driver.state.to_record()["format"] == AWAITING_APPROVAL_FORMAT
    actions = driver.send(ManualCommand("approve", "alice", reason="dashboards look fine"))
    assert of_type(actions, Promote) == [Promote()]
    (moved,) = [e for e in events(actions, "phase") if e.data["to"] == "promoting"]
    assert moved.actor == "alice" and "approve by alice: dashboards look fine" in moved.message
    assert driver.state.to_record()["format"] != AWAITING_APPROVAL_FORMAT
    driver.ready()
    assert driver.state.phase is Phase.PROMOTED
    assert len(notices(driver.emitted, "promoted")) == 1


def test_blue_green_scales_the_old_side_down_only_once_approved() -> None:
    driver = awaiting(STRATEGIES["blue_green"])
    assert not of_type(driver.emitted, ScaleDownOld)
    actions = driver.command("approve")
    assert of_type(actions, ScaleDownOld) == [ScaleDownOld()]
    assert of_type(actions, Promote) == [Promote()]


def test_background_looks_go_on_while_waiting_and_a_regression_aborts() -> None:
    driver = awaiting()
    assert driver.state.next_due_at is not None  # still watched
    driver.run(always(CANARY, FAIL), until=lambda s: s.phase is not Phase.AWAITING_APPROVAL)
    assert driver.state.phase is Phase.ABORTING
    assert "FAIL look(s), failure_limit" in (driver.state.abort_reason or "")
    assert not of_type(driver.emitted, Promote) and of_type(driver.emitted, Rollback)


def test_abort_while_waiting_aborts_and_a_platform_failure_fails() -> None:
    driver = awaiting()
    driver.command("abort", "bob")
    assert driver.state.phase is Phase.ABORTING
    failed = awaiting()
    failed.send(PlatformFailed("pods crash-looping"))
    assert failed.state.phase is Phase.FAILED


@pytest.mark.parametrize("full", [True, False])
def test_a_promote_while_waiting_counts_as_the_approval(full: bool) -> None:
    driver = awaiting()
    actions = driver.command("promote", "carol", full=full)
    assert of_type(actions, Promote) == [Promote()] and driver.state.phase is Phase.PROMOTING
    (moved,) = [e for e in events(actions, "phase") if e.data["to"] == "promoting"]
    assert "counts as the approval" in moved.message and moved.actor == "carol"


def test_approve_at_any_other_time_is_refused_with_where_the_rollout_is() -> None:
    driver = Driver(CANARY)
    driver.tick()
    message = refusal(driver.command("approve"))
    assert "not awaiting approval: it is at stage 1 of 7, applying it" in message
    driver.ready()
    assert "it is at stage 2 of 7, analysing" in refusal(driver.command("approve"))
    auto = Driver(shipped("default-canary"))
    auto.tick()
    assert "its policy promotes without one" in refusal(auto.command("approve"))
    done = awaiting()
    done.command("approve")
    done.ready()
    assert "not awaiting approval: it is promoted" in refusal(done.command("approve"))


def test_pause_and_resume_do_not_apply_while_waiting() -> None:
    driver = awaiting()
    assert "awaiting_approval" in refusal(driver.command("pause"))
    assert "awaiting_approval" in refusal(driver.command("resume"))
    assert driver.state.phase is Phase.AWAITING_APPROVAL


def test_the_record_of_a_waiting_rollout_reads_back() -> None:
    driver = awaiting()
    assert RolloutState.from_record(driver.state.to_record()) == driver.state


def test_without_alert_routes_no_step_notices_are_queued() -> None:
    policy = CANARY.model_copy(update={"alerts": []})
    driver = awaiting(policy)
    assert not notices(driver.emitted)


def test_an_approve_refused_before_the_start_leaves_the_rollout_due_to_start() -> None:
    driver = Driver(CANARY)
    assert "it is pending" in refusal(driver.command("approve"))
    assert driver.state.phase is Phase.PENDING and driver.state.next_due_at == driver.now
    driver.tick()
    assert driver.state.phase is Phase.PROGRESSING
