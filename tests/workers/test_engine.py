"""The engine driven end to end through step() with a fake clock and scripted verdicts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analyzer.policy import Policy
from analyzer.verdict import Reason
from tests.workers.rollout_driver import (
    FAIL,
    PASS,
    UNDECIDED,
    Driver,
    always,
    events,
    healthy,
    notices,
    of_type,
    platform,
    shipped,
    small,
    verdict,
)
from workers.actions import (
    AnalysisResult,
    EnsureCanary,
    Match,
    PlatformFailed,
    PlatformReady,
    Promote,
    Release,
    Released,
    Rollback,
    ScaleDownOld,
    ScaleNew,
    Schedule,
    SetTraffic,
    Superseded,
    SwitchActive,
)
from workers.engine import FIRST_POLL_SECONDS, POLL_SECONDS, step
from workers.state import Awaited, AwaitToken, Phase

T0 = 1_000_000.0
CANARY = shipped("default-canary")


def started(policy: Policy = CANARY) -> Driver:
    driver = Driver(policy)
    driver.tick()
    return driver


def at_weight(weight: int, policy: Policy = CANARY) -> Driver:
    """A healthy rollout just after its ``set weight`` stage to ``weight`` was applied."""
    driver = started(policy)
    driver.run(healthy(policy), until=lambda s: s.canary_weight == weight and not s.awaiting)
    return driver


# -- a healthy canary ---------------------------------------------------------------------------


def test_first_tick_deploys_the_canary_and_sets_the_first_weight() -> None:
    driver = Driver(CANARY)
    actions = driver.tick()
    assert platform(actions) == [EnsureCanary(), SetTraffic(5)]
    state = driver.state
    assert state.phase is Phase.PROGRESSING and state.stage_index == 0 and state.awaiting
    assert actions[-1] == Schedule(T0 + FIRST_POLL_SECONDS)  # then backed off
    moved, entered = events(actions)
    assert (moved.kind, moved.data["from"], moved.data["to"]) == ("phase", "pending", "progressing")
    assert (entered.kind, entered.data["stage"]) == ("stage", 0)


def test_a_healthy_canary_walks_every_weight_to_promoted() -> None:
    driver = started()
    actions = driver.run(healthy(CANARY))
    state = driver.state
    assert state.phase is Phase.PROMOTED and state.canary_weight == 100
    assert [a.weight for a in of_type(driver.emitted, SetTraffic)] == [5, 25, 50, 100]
    assert of_type(actions, Promote) == [Promote()] and not of_type(driver.emitted, Rollback)
    (promoted,) = notices(driver.emitted, "promoted")
    assert (promoted.kind, promoted.routes, promoted.version) == ("promoted", ("oncall",), "v2")
    assert state.next_due_at is None and state.awaiting is None
    assert [e.data["stage"] for e in events(driver.emitted, "stage")] == list(range(7))
    # a route may follow the steps too: one notice per stage entered, one for the start
    assert (
        len(notices(driver.emitted, "stage")) == 7 and len(notices(driver.emitted, "started")) == 1
    )
    assert {notice.kind for notice in notices(driver.emitted)} == {
        "started",
        "stage",
        "promoted",
    }


def test_the_analysis_window_opens_after_the_warm_up_and_the_last_look_ends_the_step() -> None:
    driver = started()
    driver.at(T0 + 30).ready()  # weight 5 applied at T0+30; begin_after is 1m
    state = driver.state
    assert state.stage_index == 1 and state.window_start == T0 + 90
    assert state.next_look_at == T0 + 150  # one interval of data after the warm-up
    assert state.final_look_at == T0 + 90 + 600  # ten minutes of analysed data
    assert state.analysis_due(T0 + 149) is None
    request = state.analysis_due(T0 + 150)
    assert request is not None and not request.final


def test_every_look_is_recorded_with_its_outcome() -> None:
    driver = at_weight(5)
    opened = driver.state.window_start or 0.0
    assert opened == T0 + FIRST_POLL_SECONDS + 60  # ready at the first poll, then the warm-up
    driver.wake(always(CANARY, UNDECIDED))
    (look,) = events(driver.history[-1][3], "analysis")
    assert look.data["outcome"] == "inconclusive" and look.data["window"] == [opened, opened + 60]
    assert driver.state.tally.looks == 1 and driver.state.next_look_at == opened + 120


def test_an_early_pass_ends_the_step_before_its_duration() -> None:
    driver = at_weight(5)
    actions = driver.wake(always(CANARY, PASS))
    assert driver.state.stage_index == 2 and driver.state.canary_weight == 25
    assert platform(actions) == [SetTraffic(25)] and driver.state.awaiting  # the new weight


# -- FAIL aborts ------------------------------------------------------------------------------


def test_a_fail_at_25_percent_rolls_back_and_alerts_exactly_once() -> None:
    driver = at_weight(25)
    actions = driver.wake(always(CANARY, FAIL))
    state = driver.state
    assert state.phase is Phase.ABORTING and state.canary_weight == 0
    assert platform(actions) == [Rollback(state.abort_reason or "", switch_back=False)]
    (alert,) = notices(actions)
    assert alert.kind == "aborted" and alert.evidence["outcome"] == "fail"
    assert alert.reason == state.abort_reason
    assert verdict(CANARY, FAIL).reason in alert.reason  # a person reads the judge's reason
    (moved,) = events(actions, "phase")
    assert moved.data["verdict"]["outcome"] == "fail"

    for _ in range(3):  # the rollback takes a while: it is re-asserted, never re-alerted
        assert platform(driver.wake(healthy(CANARY), platform_ready=False)) == [
            Rollback(state.abort_reason or "")
        ]
    actions = driver.ready()
    assert driver.state.phase is Phase.ABORTED and not notices(driver.emitted[1:], "promoted")
    assert len(notices(driver.emitted, "aborted")) == 1
    assert driver.state.next_due_at is None and not of_type(actions, Schedule)


def test_an_alert_is_one_per_transition_however_often_its_step_is_replayed() -> None:
    driver = at_weight(25)
    driver.wake(always(CANARY, FAIL))
    before, observation, _, actions = driver.history[-1]
    (alert,) = notices(actions)
    _, replayed = step(before, CANARY, observation, driver.now + 30)  # a task run again, later
    assert [notice.dedupe_key for notice in notices(replayed)] == [alert.dedupe_key]

    driver.ready()
    driver.command("retry", "uma")
    driver.run(always(CANARY, FAIL), until=lambda s: s.phase is Phase.ABORTING)
    (again,) = notices(driver.emitted, "aborted")[1:]
    assert again.dedupe_key != alert.dedupe_key  # the next attempt's abort is news


def test_failure_limit_tolerates_fail_looks_until_it_is_passed() -> None:
    policy = small(
        "{type: canary, steps: [{set_weight: 20}, {analyze: {duration: 5m}}, {set_weight: 100}]}",
        "{interval: 1m, failure_limit: 1}",
    )
    driver = at_weight(20, policy)
    actions = driver.wake(always(policy, FAIL))
    assert driver.state.phase is Phase.PROGRESSING and driver.state.stage_failures == 1
    (look,) = events(actions, "analysis")
    assert look.data["outcome"] == "fail" and not platform(actions) and not notices(actions)
    driver.wake(always(policy, FAIL))
    assert driver.state.phase is Phase.ABORTING


def test_a_tolerated_fail_in_the_last_stage_holds_the_promotion_for_a_person() -> None:
    policy = small(
        "{type: canary, steps: [{set_weight: 20}, {set_weight: 100}, {pause: {duration: 3m}}]}",
        "{interval: 1m, failure_limit: 2}",
    )
    driver = at_weight(100, policy)
    driver.wake(always(policy, FAIL))  # a background look during the timed pause
    driver.run(always(policy, UNDECIDED))
    state = driver.state
    assert state.phase is Phase.PAUSED and not of_type(driver.emitted, Promote)
    assert state.stage_failures == 1 and state.stage_index == 2  # the last stage, over
    assert state.stage_ends_at is not None and driver.now >= state.stage_ends_at
    assert len(notices(driver.emitted, "paused")) == 1
    driver.command("promote", "bob")
    assert driver.state.phase is Phase.PROMOTING


# -- INCONCLUSIVE extends, then pauses or aborts -------------------------------------------


def test_inconclusive_extends_the_step_then_pauses_for_a_person() -> None:
    driver = at_weight(5)
    first_final = driver.state.final_look_at or 0.0
    driver.run(always(CANARY, UNDECIDED))
    state = driver.state
    assert state.phase is Phase.PAUSED and state.stage_index == 1 and state.extensions == 3
    assert [e.data["stage"] for e in events(driver.emitted, "extended")] == [1, 1, 1]
    assert driver.now == first_final + 3 * 600
    (paused,) = notices(driver.emitted, "paused")
    assert paused.evidence["outcome"] == "inconclusive"

    driver.command("resume", "alice")  # one more window, then the policy's answer again
    assert driver.state.final_look_at == driver.now + 600
    driver.run(always(CANARY, UNDECIDED))
    assert driver.state.phase is Phase.PAUSED and len(notices(driver.emitted, "paused")) == 2


def test_inconclusive_aborts_when_the_policy_says_so() -> None:
    rolling = shipped("rolling")  # inconclusive_limit 2, on_inconclusive abort
    driver = started(rolling)
    driver.run(always(rolling, UNDECIDED), until=lambda s: s.phase is not Phase.PROGRESSING)
    assert driver.state.phase is Phase.ABORTING and len(events(driver.emitted, "extended")) == 2
    (aborted,) = notices(driver.emitted, "aborted")
    assert aborted.evidence["outcome"] == "inconclusive"


# -- missing data never promotes --------------------------------------------------------------


def test_no_data_never_promotes_even_when_the_verdict_says_pass() -> None:
    driver = started()
    driver.run(always(CANARY, PASS, Reason.NO_DATA))
    assert driver.state.phase is Phase.PAUSED and driver.state.stage_index == 1
    assert driver.state.canary_weight == 5 and not of_type(driver.emitted, Promote)
    looks = {e.data["outcome"] for e in events(driver.emitted, "analysis")}
    assert looks == {"inconclusive"}  # a PASS on no data counts as undecided


def test_query_errors_past_the_limit_hold_the_step_and_never_abort() -> None:
    policy = small(
        "{type: canary, steps: [{set_weight: 20}, {analyze: {duration: 10m}}, {set_weight: 100}]}",
        "{interval: 1m, consecutive_error_limit: 2, inconclusive_limit: 0}",
    )
    outage = verdict(policy, UNDECIDED, Reason.QUERY_ERROR)
    good = verdict(policy, PASS)
    # the score passes, but a counted metric's query still fails: the run is over its limit
    flaky = good.model_copy(update={"metrics": [*good.metrics, *outage.metrics[:1]]})
    script = [outage, outage, outage, flaky, good]
    driver = at_weight(20, policy)
    for _ in range(4):
        driver.wake(lambda request: script[driver.state.tally.looks])
    assert driver.state.stage_index == 1 and driver.state.tally.consecutive_errors == 4
    assert driver.state.phase is Phase.PROGRESSING and driver.state.extensions == 0
    assert not platform(driver.emitted[-1:]) and not notices(driver.emitted)
    driver.wake(lambda request: script[driver.state.tally.looks])
    assert driver.state.stage_index == 2  # the first look without errors passes the step
    assert driver.state.phase is Phase.PROGRESSING


def test_an_outage_of_the_metric_source_pauses_and_never_aborts() -> None:
    policy = small(
        "{type: canary, steps: [{set_weight: 20}, {analyze: {duration: 10m}}, {set_weight: 100}]}",
        "{interval: 1m, consecutive_error_limit: 2, inconclusive_limit: 1}",
    )
    driver = at_weight(20, policy)
    driver.run(always(policy, UNDECIDED, Reason.QUERY_ERROR))
    assert driver.state.phase is Phase.PAUSED and driver.state.tally.consecutive_errors == 20
    assert not of_type(driver.emitted, Rollback)


# -- pauses ---------------------------------------------------------------------------------------

PAUSES = small(
    "{type: canary, steps: [{set_weight: 20}, {pause: {}}, {set_weight: 40},"
    " {pause: {duration: 5m}}, {set_weight: 100}]}"
)


def test_an_untimed_pause_waits_for_a_person_and_a_timed_one_for_its_time() -> None:
    driver = at_weight(20, PAUSES)
    assert driver.state.phase is Phase.PAUSED and driver.state.stage_index == 1
    assert driver.state.stage_ends_at is None  # no time ends it
    assert len(notices(driver.emitted, "paused")) == 1
    driver.run(always(PAUSES, UNDECIDED), until=lambda s: s.tally.looks == 5)
    assert driver.state.phase is Phase.PAUSED  # background looks go on, nothing moves

    driver.command("resume", "carol")
    driver.ready()
    assert driver.state.stage_index == 3 and driver.state.stage_ends_at == driver.now + 300
    driver.run(always(PAUSES, UNDECIDED), until=lambda s: s.stage_index == 4)
    assert driver.now == driver.state.stage_started_at == driver.history[-2][2].stage_ends_at


def test_background_analysis_aborts_during_a_pause() -> None:
    driver = at_weight(20, PAUSES)
    driver.wake(always(PAUSES, FAIL))
    assert driver.state.phase is Phase.ABORTING


# -- manual commands ------------------------------------------------------------------------


def test_pause_and_resume_restart_the_current_stage() -> None:
    driver = at_weight(5)
    actions = driver.at(T0 + 400).command("pause", "alice")
    assert driver.state.phase is Phase.PAUSED
    (paused,) = events(actions, "phase")
    assert paused.actor == "alice" and paused.data["to"] == "paused"
    assert not notices(actions)  # the person knows: no alert
    assert driver.state.analysis_due(T0 + 10_000) is not None  # background looks go on
    assert driver.state.analysis_due(T0 + 10_000).final is False  # type: ignore[union-attr]
    driver.at(T0 + 5000).command("resume", "alice")
    state = driver.state
    assert state.phase is Phase.PROGRESSING and state.final_look_at == T0 + 5600
    (moved,) = events(driver.history[-1][3], "phase")
    assert moved.actor == "alice" and moved.data["to"] == "progressing"


def test_promote_skips_the_current_analysis_and_goes_to_the_next_step() -> None:
    driver = at_weight(5)
    actions = driver.command("promote", "dave")
    assert driver.state.stage_index == 2 and platform(actions) == [SetTraffic(25)]
    (entered,) = events(actions, "stage")
    assert entered.data["stage"] == 2 and entered.actor == "dave"


def test_promote_full_skips_every_remaining_step() -> None:
    driver = at_weight(5)
    actions = driver.command("promote", "erin", full=True)
    assert driver.state.phase is Phase.PROMOTING and platform(actions) == [Promote()]
    (moved,) = events(actions, "phase")
    assert moved.actor == "erin" and moved.data["to"] == "promoting"
    assert not events(actions, "stage") and not events(actions, "analysis")  # nothing in between
    driver.ready()
    assert driver.state.phase is Phase.PROMOTED


def test_promote_waits_for_the_platform_to_apply_the_current_step() -> None:
    driver = started()
    waiting = driver.state
    actions = driver.command("promote", "dave")
    assert driver.state == waiting and not platform(actions)
    (ignored,) = events(actions, "command_ignored")
    assert ignored.actor == "dave"
    driver.ready()
    assert driver.state.stage_index == 1  # once applied, the step goes on as planned


def test_abort_rolls_back_and_retry_starts_again_from_the_first_step() -> None:
    driver = at_weight(25)
    actions = driver.command("abort", "frank")
    assert driver.state.phase is Phase.ABORTING and of_type(actions, Rollback)
    assert events(actions, "phase")[0].actor == "frank"
    assert len(notices(actions, "aborted")) == 1
    driver.ready()
    actions = driver.command("retry", "frank")
    state = driver.state
    assert (state.phase, state.attempt, state.stage_index, state.canary_weight) == (
        Phase.PROGRESSING,
        2,
        0,
        5,
    )
    assert platform(actions) == [EnsureCanary(), SetTraffic(5)] and state.tally.looks == 0
    assert state.abort_reason is None and state.awaiting  # the first weight, again
    driver.run(healthy(CANARY))
    assert driver.state.phase is Phase.PROMOTED


def test_commands_that_do_not_apply_are_recorded_and_change_nothing() -> None:
    driver = started()
    driver.run(healthy(CANARY))
    promoted = driver.state
    for kind in ("abort", "pause", "resume", "retry", "promote"):
        actions = driver.command(kind, "gina")
        assert driver.state == promoted and not platform(actions)
        (ignored,) = events(actions, "command_ignored")
        assert ignored.actor == "gina" and ignored.data["phase"] == "promoted"


def test_a_pending_rollout_aborted_by_a_person_never_touches_the_platform() -> None:
    driver = Driver(CANARY)
    actions = driver.command("abort", "hal")
    assert driver.state.phase is Phase.ABORTED and not platform(actions)
    assert len(notices(actions, "aborted")) == 1


# -- the platform ---------------------------------------------------------------------------


def test_a_tick_while_waiting_asserts_the_awaited_change_again() -> None:
    driver = started()
    actions = driver.at(T0 + 10).tick()
    assert platform(actions) == [EnsureCanary(), SetTraffic(5)]
    assert driver.state.next_due_at == T0 + 10 + POLL_SECONDS


def retried() -> tuple[Driver, str]:
    """A rollout on its second attempt, waiting for its first change, and the token its first
    attempt awaited for that change."""
    driver = started()
    first = driver.state.awaiting or ""
    driver.command("abort", "max")
    driver.ready()
    driver.command("retry", "max")
    assert driver.state.attempt == 2 and driver.state.awaiting not in (None, first)
    return driver, first


def test_the_awaiting_token_says_which_attempt_and_stage_asked_for_what() -> None:
    driver = started()
    assert driver.state.awaited == AwaitToken(1, 0, Awaited.STAGE)
    driver.command("abort", "max")
    assert driver.state.awaited == AwaitToken(1, 0, Awaited.ROLLBACK)
    driver.ready()
    assert driver.state.awaited is None
    driver.command("retry", "max")
    assert driver.state.awaited == AwaitToken(2, 0, Awaited.STAGE)


def test_stale_and_duplicate_readiness_is_harmless() -> None:
    driver, earlier = retried()
    token = driver.state.awaiting or ""
    waiting = driver.state
    assert driver.send(PlatformReady(earlier)) == [Schedule(waiting.next_due_at or 0.0)]
    assert driver.state == waiting  # the earlier attempt's change is not this one
    driver.ready()
    before = driver.state
    assert before.stage_index == 1 and before.awaiting is None
    assert driver.send(PlatformReady(token)) == [Schedule(before.next_due_at or 0.0)]
    assert driver.send(PlatformReady(earlier)) == [Schedule(before.next_due_at or 0.0)]
    assert driver.state == before


def test_a_platform_failure_fails_the_rollout_and_rolls_it_back() -> None:
    driver = started()
    token = driver.state.awaiting
    actions = driver.send(PlatformFailed("progress deadline exceeded", token))
    assert driver.state.phase is Phase.FAILED
    assert driver.state.abort_reason == "progress deadline exceeded"
    assert platform(actions) == [Rollback("progress deadline exceeded")]
    assert [n.kind for n in notices(actions)] == ["failed"]
    assert platform(driver.at(T0 + 60).tick()) == [Rollback("progress deadline exceeded")]
    driver.ready()
    assert driver.state.phase is Phase.FAILED and driver.state.next_due_at is None
    assert driver.command("retry", "ivy") and driver.state.phase is Phase.PROGRESSING


def test_crash_looping_pods_fail_the_rollout_whatever_was_asked() -> None:
    driver = at_weight(5)
    driver.send(PlatformFailed("crash-looping pods: 3 restarts in 5m"))
    assert driver.state.phase is Phase.FAILED


def test_a_failure_about_an_older_request_is_ignored() -> None:
    driver = started()
    first = driver.state.awaiting  # the first weight's change, applied since
    driver.run(healthy(CANARY), until=lambda s: s.canary_weight == 5 and not s.awaiting)
    before = driver.state
    driver.send(PlatformFailed("timed out", first))
    assert driver.state == before


def test_a_rollback_that_fails_is_asked_for_again_until_it_completes() -> None:
    driver = at_weight(5)
    driver.command("abort", "jo")
    actions = driver.send(PlatformFailed("503 from the API server", driver.state.awaiting))
    assert driver.state.phase is Phase.ABORTING and of_type(actions, Rollback)
    assert events(actions, "rollback_retry")
    driver.ready()
    assert driver.state.phase is Phase.ABORTED


def test_a_promotion_that_fails_rolls_back() -> None:
    driver = at_weight(5)
    driver.command("promote", "kim", full=True)
    driver.send(PlatformFailed("new pods crash-looping", driver.state.awaiting))
    assert driver.state.phase is Phase.FAILED and of_type(driver.history[-1][3], Rollback)


# -- stale analysis -------------------------------------------------------------------------


def test_a_look_for_a_stage_the_rollout_has_left_is_dropped() -> None:
    driver = at_weight(5)
    request = driver.at(T0 + 150).state.analysis_due(driver.now)
    assert request is not None
    driver.command("promote", "lee")
    driver.ready()
    before = driver.state
    driver.send(AnalysisResult(request, verdict(CANARY, FAIL)))
    assert driver.state == before and driver.state.phase is Phase.PROGRESSING


def test_a_duplicate_look_is_counted_once() -> None:
    driver = at_weight(5)
    request = driver.at(T0 + 150).state.analysis_due(driver.now)
    assert request is not None
    driver.send(AnalysisResult(request, verdict(CANARY, UNDECIDED)))
    before = driver.state
    driver.send(AnalysisResult(request, verdict(CANARY, UNDECIDED)))
    assert driver.state == before and before.tally.looks == 1


def test_a_look_from_an_earlier_attempt_is_dropped() -> None:
    driver = at_weight(5)
    request = driver.at(T0 + 150).state.analysis_due(driver.now)
    assert request is not None
    driver.command("abort", "max")
    driver.ready()
    driver.command("retry", "max")
    driver.ready()
    before = driver.state
    old = replace(request, window_start=before.window_start or 0.0, window_end=driver.now + 999)
    driver.send(AnalysisResult(old, verdict(CANARY, FAIL)))
    assert driver.state == before


# -- blue-green ------------------------------------------------------------------------------

BLUE_GREEN = shipped("blue-green")


def test_blue_green_previews_analyses_switches_and_scales_the_old_side_down() -> None:
    driver = started(BLUE_GREEN)
    assert platform(driver.history[-1][3]) == [EnsureCanary(), ScaleNew(percent=100)]
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 2)
    assert platform(driver.history[-1][3]) == [ScaleNew(percent=100), SwitchActive()]
    driver.run(healthy(BLUE_GREEN))
    assert driver.state.phase is Phase.PROMOTED
    order = [a for a in platform(driver.emitted) if isinstance(a, ScaleDownOld | Promote)]
    assert order == [ScaleDownOld(), Promote()]


def test_blue_green_keeps_the_old_side_for_the_scale_down_delay() -> None:
    driver = started(BLUE_GREEN)
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 4)
    state = driver.state
    assert state.stage_ends_at == driver.now + 900 and not of_type(driver.emitted, ScaleDownOld)
    assert state.next_look_at is not None  # the new side takes all traffic: it is watched


def test_an_abort_during_the_scale_down_delay_switches_straight_back() -> None:
    driver = started(BLUE_GREEN)
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 4)
    actions = driver.at(driver.now + 60).command("abort", "nina")
    assert platform(actions) == [Rollback(driver.state.abort_reason or "", switch_back=True)]
    assert driver.state.canary_weight == 0


def test_a_blue_green_abort_before_the_switch_has_nothing_to_switch_back() -> None:
    driver = started(BLUE_GREEN)
    driver.run(healthy(BLUE_GREEN), until=lambda s: s.stage_index == 1 and not s.awaiting)
    driver.wake(always(BLUE_GREEN, FAIL))
    assert platform(driver.history[-1][3])[0] == Rollback(
        driver.state.abort_reason or "", switch_back=False
    )


def test_blue_green_without_auto_promotion_waits_for_a_person_before_switching() -> None:
    policy = small("{type: blue_green, preview_replicas: 2, auto_promote: false}")
    driver = started(policy)
    driver.ready()
    assert driver.state.phase is Phase.PAUSED and driver.state.stage_index == 1
    assert driver.state.next_look_at is None  # the preview has no users: nothing to analyse
    assert driver.state.next_due_at == driver.now + 60  # but its platform is still watched
    actions = driver.command("promote", "olga")
    assert platform(actions) == [ScaleNew(percent=100), SwitchActive()]


# -- targeted and rolling ---------------------------------------------------------------------


def test_targeted_sends_its_audience_first_then_weights() -> None:
    policy = shipped("targeted-canary")
    audience = (Match("header", "x-region", "KR"), Match("cookie", "canary", "always"))
    driver = started(policy)
    assert platform(driver.history[-1][3]) == [EnsureCanary(), SetTraffic(0, audience)]
    driver.ready()
    assert driver.state.next_look_at is not None  # the audience is real users: watched
    driver.run(healthy(policy))
    weights = [(a.weight, a.match) for a in of_type(driver.emitted, SetTraffic)]
    assert weights == [(0, audience), (10, audience), (50, audience), (100, audience)]
    assert driver.state.phase is Phase.PROMOTED


def test_rolling_moves_batches_with_analysis_between_them() -> None:
    policy = shipped("rolling")
    driver = started(policy)
    driver.run(healthy(policy))
    batches = of_type(driver.emitted, ScaleNew)
    assert batches == [
        ScaleNew(replicas=1),
        ScaleNew(percent=25),
        ScaleNew(percent=50),
        ScaleNew(percent=100),
    ]
    assert driver.state.phase is Phase.PROMOTED


# -- superseding -----------------------------------------------------------------------------


def test_a_new_revision_supersedes_the_rollout_in_flight_never_running_two() -> None:
    old = at_weight(25)
    new = Driver(CANARY, rollout_id="r2", now=old.now, supersedes="r1")
    assert not platform(new.tick()) and new.state.phase is Phase.PENDING

    actions = old.send(Superseded("r2"))
    assert old.state.phase is Phase.ABORTING and old.state.superseded_by == "r2"
    assert of_type(actions, Rollback) and not notices(actions)  # a replacement, not an incident
    assert not of_type(actions, Release)
    actions = old.ready()
    assert old.state.phase is Phase.ABORTED and of_type(actions, Release) == [Release("r2")]

    actions = new.send(Released("r1"))
    assert new.state.phase is Phase.PROGRESSING and platform(actions)[0] == EnsureCanary()
    (ignored,) = events(old.command("retry", "pat"), "command_ignored")
    assert old.state.phase is Phase.ABORTED and old.state.superseded_by == "r2"
    assert ignored.actor == "pat"


def test_a_promotion_in_flight_finishes_before_its_successor_starts() -> None:
    old = at_weight(5)
    old.command("promote", "quinn", full=True)
    actions = old.send(Superseded("r2"))
    assert old.state.phase is Phase.PROMOTING and not of_type(actions, Release)
    assert of_type(old.ready(), Release) == [Release("r2")]


def test_a_finished_rollout_releases_its_successor_at_once() -> None:
    old = Driver(CANARY)
    old.command("abort", "ray")
    assert of_type(old.send(Superseded("r2")), Release) == [Release("r2")]
    assert of_type(old.send(Superseded("r2")), Release) == [Release("r2")]  # harmless again
    before = old.state
    assert not of_type(old.send(Superseded("r3")), Release) and old.state == before


def test_a_waiting_rollout_superseded_in_turn_passes_the_lane_on() -> None:
    middle = Driver(CANARY, rollout_id="r2", supersedes="r1")
    actions = middle.send(Superseded("r3"))
    assert middle.state.phase is Phase.ABORTED and not of_type(actions, Release)
    assert of_type(middle.send(Released("r1")), Release) == [Release("r3")]
    assert not of_type(middle.send(Released("r0")), Release)  # not its predecessor


def test_a_stale_release_does_not_restart_anything() -> None:
    new = Driver(CANARY, rollout_id="r2", supersedes="r1")
    new.send(Released("r1"))
    before = new.state
    new.send(Released("r1"))
    assert new.state == before


# -- the plan changed under the rollout ---------------------------------------------------


def test_a_policy_that_lost_stages_under_a_rollout_pauses_it() -> None:
    driver = at_weight(25)
    shorter = small("{type: canary, steps: [{set_weight: 100}]}")
    driver.policy = shorter
    actions = driver.tick()
    assert driver.state.phase is Phase.PAUSED and driver.state.stage_index == 3
    assert not platform(actions) and len(notices(actions, "paused")) == 1
    driver.command("promote", "sam")
    assert driver.state.phase is Phase.PROMOTING


@pytest.mark.parametrize("name", ["default-canary", "rolling", "blue-green", "targeted-canary"])
def test_every_phase_change_is_recorded(name: str) -> None:
    policy = shipped(name)
    driver = started(policy)
    driver.run(healthy(policy))
    for before, _, after, actions in driver.history:
        moves = [e.data["to"] for e in events(actions, "phase")]
        if before.phase is not after.phase:
            assert moves and moves[-1] == after.phase.value
        else:
            assert not moves or moves[-1] == after.phase.value
