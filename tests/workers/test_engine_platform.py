"""What a rollout requires of its platform (``platform_wants``), and how the engine keeps the
platform there: re-asserting all of it while a change is awaited, re-applying it when the
platform drifted, and awaiting what a stage asks as it ends."""

from __future__ import annotations

from analyzer.verdict import Reason
from tests.workers.rollout_driver import (
    UNDECIDED,
    always,
    events,
    healthy,
    platform,
    shipped,
    small,
)
from tests.workers.test_engine import BLUE_GREEN, CANARY, at_weight, started
from workers.actions import (
    EnsureCanary,
    Match,
    PlatformDrifted,
    PlatformFailed,
    Promote,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    SetTraffic,
    SwitchActive,
)
from workers.engine import platform_wants
from workers.state import Phase

TARGETED = shipped("targeted-canary")
AUDIENCE = (Match("header", "x-region", "KR"), Match("cookie", "canary", "always"))


def test_wants_are_everything_the_stages_asked_so_far_not_the_last_ask() -> None:
    driver = started(TARGETED)
    assert driver.state.phase is Phase.PROGRESSING
    driver.run(healthy(TARGETED), until=lambda s: s.stage_index == 1 and not s.awaiting)
    # the audience stage asked once; its analysis stage asks nothing, yet still requires it
    assert platform_wants(driver.state, TARGETED) == (EnsureCanary(), SetTraffic(0, AUDIENCE))
    driver.run(healthy(TARGETED), until=lambda s: s.canary_weight == 10 and not s.awaiting)
    assert platform_wants(driver.state, TARGETED) == (EnsureCanary(), SetTraffic(10, AUDIENCE))


def test_blue_green_wants_keep_the_preview_size_and_the_switch() -> None:
    driver = started(BLUE_GREEN)
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 4 and not s.awaiting)
    assert platform_wants(driver.state, BLUE_GREEN) == (
        EnsureCanary(),
        ScaleNew(percent=100),
        SwitchActive(),
    )
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.phase is Phase.PROMOTING)
    assert ScaleDownOld() in platform(driver.history[-1][3])  # with the promotion
    assert platform_wants(driver.state, BLUE_GREEN) == (Promote(),)


def test_promoting_and_rolling_back_want_one_thing_each() -> None:
    driver = at_weight(25)
    assert driver.state.phase is Phase.PROGRESSING
    driver.command("promote", "olga", full=True)
    assert platform_wants(driver.state, CANARY) == (Promote(),)
    aborted = at_weight(25)
    aborted.command("abort", "nina")
    assert aborted.state.phase is Phase.ABORTING
    assert platform_wants(aborted.state, CANARY) == (Rollback("abort by nina"),)
    switched = started(BLUE_GREEN)
    switched.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 4)
    switched.command("abort", "nina")
    assert platform_wants(switched.state, BLUE_GREEN) == (Rollback("abort by nina", True),)


def test_a_tick_while_awaiting_reasserts_the_whole_desired_state() -> None:
    """A worker killed between two actions (EnsureCanary applied, the weight not) is healed
    by asking for everything again, not only for the stage's own asks."""
    driver = started(BLUE_GREEN)
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 2)
    assert driver.state.awaiting is not None
    assert platform(driver.tick()) == [EnsureCanary(), ScaleNew(percent=100), SwitchActive()]


def test_drift_reapplies_the_stage_and_restarts_the_analysis_window() -> None:
    driver = at_weight(25)
    driver.at(driver.now + 90)
    before = driver.state
    assert before.window_start is not None and before.awaiting is None
    actions = driver.send(PlatformDrifted("the router was down and was restarted at 10:00:01"))
    state = driver.state
    assert platform(actions) == [EnsureCanary(), SetTraffic(25)]
    assert state.awaiting == f"1:{before.stage_index}:repair"
    assert state.window_start is None and state.next_look_at is None
    drift = events(actions, "platform_drift")
    assert len(drift) == 1 and "the router was down" in drift[0].message
    assert state.phase is Phase.PROGRESSING and state.tally == before.tally
    driver.at(driver.now + 5).ready()
    assert driver.state.window_start == driver.now + 60  # begin_after again, from now


def test_drift_is_ignored_while_a_change_is_awaited_or_once_the_rollout_is_done() -> None:
    driver = started()
    assert driver.state.awaiting is not None
    before = driver.state
    assert platform(driver.send(PlatformDrifted("x"))) == []
    assert driver.state == before
    done = at_weight(25)
    done.command("abort", "nina")
    done.ready()
    assert done.state.phase is Phase.ABORTED
    assert done.send(PlatformDrifted("x")) == []


def test_a_platform_failing_while_paused_rolls_back() -> None:
    driver = at_weight(25)
    driver.command("pause", "olga")
    driver.send(PlatformFailed("canary instance of v2 on port 4242 exited with code 1"))
    assert driver.state.phase is Phase.FAILED
    assert platform_wants(driver.state, CANARY) == (
        Rollback("canary instance of v2 on port 4242 exited with code 1"),
    )


def test_a_paused_rollout_keeps_looking_while_its_queries_work() -> None:
    driver = at_weight(25)
    driver.command("pause", "olga")
    assert driver.state.next_look_at is not None
    driver.run(always(CANARY, UNDECIDED), until=lambda s: s.tally.looks >= 3)
    assert driver.state.phase is Phase.PAUSED and driver.state.next_look_at is not None


def test_a_paused_rollout_stops_looking_once_its_queries_keep_failing() -> None:
    policy = small("{type: canary, steps: [{set_weight: 20}, {pause: {}}, {set_weight: 100}]}")
    limit = policy.analysis.consecutive_error_limit
    driver = started(policy)
    driver.run(healthy(policy), until=lambda s: s.phase is Phase.PAUSED)
    errors = always(policy, UNDECIDED, Reason.QUERY_ERROR)
    driver.run(errors, until=lambda s: s.tally.consecutive_errors >= limit)
    state = driver.state
    assert state.phase is Phase.PAUSED and state.next_look_at is None
    assert state.next_due_at == driver.now + 60  # the platform is still watched
    stopped = events(driver.emitted, "looks_stopped")
    assert len(stopped) == 1 and f"{limit} failed queries in a row" in stopped[0].message
    looks = state.tally.looks
    for _ in range(5):
        driver.wake(errors)
    assert driver.state.tally.looks == looks  # no look while nobody resumed it
    driver.command("resume", "olga")
    assert driver.state.phase is Phase.PROGRESSING
