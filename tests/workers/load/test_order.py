"""Which load a rollout wants, read from its state and policy alone (workers/load/order.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.workers.rollout_driver import Driver, small
from workers.errors import WorkerError
from workers.load.order import kubernetes_url, wanted
from workers.load.runner import target_for
from workers.state import Phase

BLUE_GREEN = (
    "{type: blue_green, analyze: {duration: 2m, load: {rate: 10/s, duration: 1m,"
    " headers: {x-synthetic: 'yes'}}}, scale_down_delay: 10s}"
)


def at_the_preview_analysis() -> Driver:
    driver = Driver(small(BLUE_GREEN, "{interval: 10s, begin_after: 20s}"), now=1000.0)
    driver.tick()  # pending -> the preview is asked for
    driver.at(1005.0).ready()  # the preview is up: the analyze stage begins
    assert driver.state.stage_index == 1 and driver.state.awaiting is None
    return driver


def test_the_preview_analysis_wants_its_load_for_its_share_of_the_window() -> None:
    driver = at_the_preview_analysis()
    order = wanted(driver.state, driver.policy, 1006.0)
    assert order is not None
    assert (order.key.rollout_id, order.key.attempt, order.key.stage_index) == ("r1", 1, 1)
    assert (order.rate, order.total, order.headers) == (10.0, 801, (("x-synthetic", "yes"),))
    # From the stage's start, through begin_after's warm-up, for a minute of the window.
    assert (order.starts_at, order.ends_at) == (1005.0, 1005.0 + 20.0 + 60.0)
    assert wanted(driver.state, driver.policy, order.ends_at) is None  # its time is up
    assert order.remaining(order.starts_at) == 801  # 10/s for 80 s, and one
    assert order.remaining(1045.0) == 401  # a restarted load process sends the rest, no more
    assert order.remaining(order.ends_at + 1) == 0


def test_an_extension_and_a_resume_each_get_their_own_bounded_load() -> None:
    driver = at_the_preview_analysis()
    first = wanted(driver.state, driver.policy, 1006.0)
    assert first is not None
    # The step's last look was inconclusive: one more window of 2m, and a load for it.
    final = driver.state.final_look_at
    assert final is not None
    extended = replace(driver.state, extensions=1, final_look_at=final + 120.0)
    assert wanted(extended, driver.policy, final - 1) is None  # between the two loads
    again = wanted(extended, driver.policy, final + 1)
    assert again is not None and again.key != first.key and again.key.extension == 1
    assert (again.starts_at, again.ends_at, again.total) == (final, final + 60.0, 601)
    # A person resumes a paused stage: it starts over, and so does its load.
    resumed = replace(driver.state, stage_started_at=2000.0, final_look_at=2120.0)
    fresh = wanted(resumed, driver.policy, 2001.0)
    assert fresh is not None and fresh.key.started_at == 2000.0 and fresh.key != first.key
    assert (fresh.starts_at, fresh.ends_at) == (2000.0, 2060.0)


def test_nothing_is_wanted_when_paused_aborted_or_past_the_stage() -> None:
    driver = at_the_preview_analysis()
    assert wanted(replace(driver.state, phase=Phase.PAUSED), driver.policy, 1010.0) is None
    assert wanted(replace(driver.state, stage_index=0), driver.policy, 1010.0) is None
    driver.at(1010.0).command("abort")
    assert driver.state.phase is not Phase.PROGRESSING
    assert wanted(driver.state, driver.policy, 1010.0) is None


def test_no_load_without_the_policy_asking() -> None:
    driver = Driver(small("{type: blue_green, analyze: 2m}", "{interval: 10s}"), now=1000.0)
    driver.tick()
    driver.at(1005.0).ready()
    assert driver.state.stage_index == 1
    assert wanted(driver.state, driver.policy, 1006.0) is None


def test_a_canary_at_zero_percent_wants_its_load_too() -> None:
    policy = small(
        "{type: canary, steps: [{set_weight: 0}, {analyze: {duration: 1m, load: {rate: 5/s}}},"
        " {set_weight: 100}]}",
        "{interval: 10s, begin_after: 0s}",
    )
    driver = Driver(policy, now=1000.0)
    driver.tick()
    driver.at(1002.0).ready()
    order = wanted(driver.state, policy, 1003.0)
    assert order is not None and (order.rate, order.total) == (5.0, 301)
    assert order.ends_at == 1002.0 + 60.0


def test_max_requests_caps_the_count() -> None:
    policy = small(
        "{type: blue_green, analyze: {duration: 1m, load: {rate: 10/s, max_requests: 25}}}",
        "{interval: 10s}",
    )
    driver = Driver(policy, now=1000.0)
    driver.tick()
    driver.at(1005.0).ready()
    order = wanted(driver.state, policy, 1006.0)
    assert order is not None and order.total == 25


def test_kubernetes_load_goes_to_the_preview_service() -> None:
    driver = at_the_preview_analysis()
    assert kubernetes_url(driver.state, None) == "http://checkout-canary.shop.svc:80"
    assert kubernetes_url(driver.state, 8080) == "http://checkout-canary.shop.svc:8080"


def test_the_runner_addresses_kubernetes_and_refuses_a_platform_that_cannot() -> None:
    driver = at_the_preview_analysis()
    order = wanted(driver.state, driver.policy, 1006.0)
    assert order is not None
    assert target_for()(driver.state, order) == ("http://checkout-canary.shop.svc:80", {})
    named = replace(
        driver.state.spec,
        traffic=replace(driver.state.spec.traffic, canary_service="checkout-preview"),
    )
    state = replace(driver.state, spec=named)
    assert target_for()(state, order)[0] == "http://checkout-preview.shop.svc:80"
    observed = replace(driver.state, spec=replace(named, platform="observe"))
    with pytest.raises(WorkerError, match="observe platform has no address"):
        target_for()(observed, order)
