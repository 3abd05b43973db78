"""Both gates before a promotion, in their order: the confirm_promotion webhook first, then a
person's approval (strategy.confirm_promotion: manual). An approval never skips the webhook."""

from __future__ import annotations

from analyzer.policy import Policy, load_policy_text
from tests.workers.rollout_driver import METRICS, Driver, healthy, platform
from tests.workers.test_engine_hooks import NO, YES, answer
from workers.actions import Promote, ScaleDownOld
from workers.state import Phase


def gated() -> Policy:
    strategy = (
        "{type: canary, confirm_promotion: manual,"
        " steps: [{set_weight: 50}, {analyze: 2m}, {set_weight: 100}]}"
    )
    text = f"name: small\nanalysis: {{interval: 1m}}\n{METRICS}\nstrategy: {strategy}\n"
    return load_policy_text(
        f"{text}hooks:\n  - {{name: gate, point: confirm_promotion, route: r}}\n"
    )


def at_the_webhook() -> Driver:
    policy = gated()
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda state: state.hook_due is not None)
    assert driver.state.phase is Phase.PROGRESSING
    return driver


def test_the_webhook_answers_first_then_a_person_approves() -> None:
    driver = at_the_webhook()
    answer(driver, NO)
    assert driver.state.phase is Phase.PROGRESSING, "a webhook's no never asks a person"
    driver.at(driver.state.next_due_at or 0.0)
    actions = answer(driver, YES)
    assert driver.state.phase is Phase.AWAITING_APPROVAL and Promote() not in platform(actions)
    actions = driver.command("approve")
    assert Promote() in platform(actions) and driver.state.phase is Phase.PROMOTING


def test_an_approval_before_the_webhook_said_yes_is_refused() -> None:
    driver = at_the_webhook()
    actions = driver.command("approve")
    assert Promote() not in platform(actions)
    assert driver.state.phase is Phase.PROGRESSING and driver.state.hook_due is not None


def test_blue_green_keeps_its_old_side_until_the_webhook_and_the_person_both_said_yes() -> None:
    strategy = "{type: blue_green, confirm_promotion: manual, analyze: 2m, scale_down_delay: 30s}"
    text = f"name: small\nanalysis: {{interval: 1m}}\n{METRICS}\nstrategy: {strategy}\n"
    policy = load_policy_text(
        f"{text}hooks:\n  - {{name: gate, point: confirm_promotion, route: r}}\n"
    )
    driver = Driver(policy)
    driver.tick()
    driver.run(healthy(policy), until=lambda state: state.hook_due is not None)
    assert ScaleDownOld() not in driver.emitted
    answer(driver, YES)
    assert driver.state.phase is Phase.AWAITING_APPROVAL and ScaleDownOld() not in driver.emitted
    actions = driver.command("approve")
    assert ScaleDownOld() in platform(actions) and Promote() in platform(actions)
