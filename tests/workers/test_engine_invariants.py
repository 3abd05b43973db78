"""Random sequences of observations: what must hold whatever the world and the people do.

Hypothesis drives a rollout with wake-ups (the platform ready or not, scripted verdicts of every
kind), commands from people, platform failures, supersession and replays of old observations,
and checks after every step that:

- the canary's weight never goes down except in a step that rolls back;
- an analyze stage is left only on a PASS look with data, or by a person's promote;
- no rollout reaches PROMOTED by itself with a FAIL look seen since its last stage began;
- an abort alerts at most once per attempt;
- terminal phases are absorbing: only a retry leaves ABORTED or FAILED, and they emit no
  platform action except the rollback they still see through;
- the app's lane is released only by a rollout that has stood down;
- every phase change is recorded, and every state reads back equal from its record.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analyzer.policy import Policy
from analyzer.verdict import Outcome, Reason, Verdict
from tests.workers.rollout_driver import (
    Driver,
    events,
    notices,
    of_type,
    platform,
    shipped,
    small,
    verdict,
)
from workers.actions import (
    Action,
    AnalysisResult,
    CommandKind,
    ManualCommand,
    Observation,
    PlatformFailed,
    PlatformReady,
    Release,
    Rollback,
    SetTraffic,
    Superseded,
    Tick,
)
from workers.state import Phase, RolloutState
from workers.strategies import Analyze, plan_for

POLICIES = [
    shipped("default-canary"),
    shipped("rolling"),
    shipped("blue-green"),
    shipped("targeted-canary"),
    small(
        "{type: canary, steps: [{set_weight: 10}, {pause: {duration: 2m}}, {analyze: "
        "{duration: 2m}}, {set_weight: 50}, {pause: {}}, {set_weight: 100}, {pause: "
        "{duration: 1m}}]}",
        "{interval: 1m, failure_limit: 1, inconclusive_limit: 1, consecutive_error_limit: 1}",
    ),
    small(  # a long last stage at full weight with FAIL looks tolerated
        "{type: canary, steps: [{set_weight: 50}, {set_weight: 100}, {pause: {duration: 15m}}]}",
        "{interval: 1m, failure_limit: 3}",
    ),
    small(
        "{type: blue_green, auto_promote: false, analyze: {duration: 2m}, "
        "post_promotion_analyze: {duration: 2m}, scale_down_delay: 3m}",
        "{interval: 1m, failure_limit: 2, inconclusive_limit: 0, on_inconclusive: abort}",
    ),
]


def _weighted(*choices: tuple[int, object]) -> list[object]:
    return [value for weight, value in choices for _ in range(weight)]


LOOKS = _weighted(
    (40, (Outcome.PASS, Reason.EVIDENCE)),
    (45, (Outcome.INCONCLUSIVE, Reason.EVIDENCE)),
    (3, (Outcome.FAIL, Reason.EVIDENCE)),
    (6, (Outcome.PASS, Reason.NO_DATA)),
    (6, (Outcome.INCONCLUSIVE, Reason.QUERY_ERROR)),
)
COMMANDS: list[CommandKind] = [
    "abort",
    "promote",
    "promote",
    "pause",
    "resume",
    "resume",
    "retry",
    "retry",
]
KINDS = _weighted(
    (80, "wake"), (5, "command"), (2, "platform_failed"), (1, "superseded"), (6, "replay"),
    (6, "wait"),
)  # fmt: skip
# Mostly the world getting on with it; now and then a person, a failure, a newer revision.
operations = st.tuples(
    st.integers(0, len(KINDS) - 1).map(KINDS.__getitem__),
    st.integers(0, len(LOOKS) - 1).map(LOOKS.__getitem__),
    st.integers(0, 9),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POLICIES), st.lists(operations, min_size=50, max_size=400))
def test_invariants_hold_for_any_sequence(
    policy: Policy, ops: list[tuple[object, object, int, bool]]
) -> None:
    driver = Driver(policy)
    checker = Checker(policy)
    for kind, look, number, flag in ops:
        observation = observe(driver, policy, kind, look, number, flag)
        if observation is None:
            continue
        before = driver.state
        actions = driver.send(observation)
        checker.check(before, observation, driver.state, actions)
    # coverage, shown by --hypothesis-show-statistics: most runs should go deep
    for phase in {s.phase for _, _, s, _ in driver.history}:
        event(f"reached {phase}")
    event(f"stages reached: {max((s.stage_index for _, _, s, _ in driver.history), default=0)}")


def observe(
    driver: Driver, policy: Policy, kind: object, look: object, number: int, flag: bool
) -> Observation | None:
    state = driver.state
    if kind == "wait":
        driver.at(driver.now + 100 * number)
        return None
    if kind == "wake":
        driver.at(state.next_due_at or driver.now + 60)
        request = state.analysis_due(driver.now)
        if state.awaiting is not None and number < 8:  # the platform is ready, mostly
            return PlatformReady(state.awaiting)
        if request is not None:
            outcome, code = look  # type: ignore[misc]
            if policy.analysis.failure_limit and number == 9:  # tolerated FAILs: seen often
                outcome, code = Outcome.FAIL, Reason.EVIDENCE
            return AnalysisResult(request, verdict(policy, outcome, code))
        return Tick()
    if kind == "command":
        return ManualCommand(COMMANDS[number % len(COMMANDS)], "tester", full=flag)
    if kind == "platform_failed":
        return PlatformFailed("crash-looping pods", state.awaiting if flag else None)
    if kind == "superseded":
        return Superseded("r2")
    if not driver.history:
        return None
    return driver.history[number * 37 % len(driver.history)][1]  # stale or a duplicate


class Checker:
    def __init__(self, policy: Policy) -> None:
        self.plan = plan_for(policy.strategy)
        self.aborts: Counter[int] = Counter()
        self.fails: set[tuple[int, int, float | None]] = set()  # attempt, stage, stage start
        self.touched: set[int] = set()  # attempts a person promoted by hand
        self.highest: dict[int, int] = {}  # highest weight asked for, per attempt

    def check(
        self,
        before: RolloutState,
        observation: Observation,
        after: RolloutState,
        actions: list[Action],
    ) -> None:
        rolled_back = bool(of_type(actions, Rollback))
        attempt = after.attempt
        assert (
            after.canary_weight >= before.canary_weight
            or rolled_back
            or (after.attempt > before.attempt)
        )
        for traffic in of_type(actions, SetTraffic):
            assert traffic.weight >= self.highest.get(attempt, 0)
            self.highest[attempt] = traffic.weight

        promoted_by_hand = isinstance(observation, ManualCommand) and observation.kind == "promote"
        if promoted_by_hand and not events(actions, "command_ignored"):
            self.touched.add(attempt)
        accepted_look = isinstance(observation, AnalysisResult) and (
            after.last_look_at != before.last_look_at or after.attempt != before.attempt
        )
        if accepted_look and observation.verdict.outcome is Outcome.FAIL:  # type: ignore[union-attr]
            self.fails.add((attempt, before.stage_index, before.stage_started_at))

        self._analyze_stages_need_a_pass(before, observation, after)
        just_promoted = after.phase is Phase.PROMOTED and before.phase is not Phase.PROMOTED
        if just_promoted and attempt not in self.touched:
            last = (attempt, after.stage_index, after.stage_started_at)
            assert last not in self.fails, "promoted with a FAIL look in its last stage"

        self.aborts[attempt] += len(notices(actions, "aborted"))
        assert self.aborts[attempt] <= 1

        if before.phase.terminal:
            retried = after.attempt == before.attempt + 1
            assert after.phase is before.phase or (retried and after.phase is Phase.PROGRESSING)
            if not retried:
                assert all(isinstance(a, Rollback) for a in platform(actions))

        if of_type(actions, Release):
            assert after.phase.terminal and after.awaiting is None

        moves = [e.data["to"] for e in events(actions, "phase")]
        if after.phase is not before.phase:
            assert moves and moves[-1] == after.phase.value

    def _analyze_stages_need_a_pass(
        self, before: RolloutState, observation: Observation, after: RolloutState
    ) -> None:
        index = before.stage_index
        if not before.phase.active or index >= len(self.plan) or after.attempt != before.attempt:
            return
        if not isinstance(self.plan[index], Analyze):
            return
        left = after.stage_index > index or after.phase is Phase.PROMOTING
        if not left or isinstance(observation, ManualCommand):
            return
        assert isinstance(observation, AnalysisResult), f"left {index} on {observation}"
        assert _passed_with_data(observation.verdict)


def _passed_with_data(verdict: Verdict) -> bool:
    counted = [metric for metric in verdict.metrics if not metric.dry_run]
    return verdict.outcome is Outcome.PASS and any(
        metric.judgement.reason_code is not Reason.NO_DATA for metric in counted
    )
