"""The rollout state machine: ``step(state, policy, observation, now) -> (state, actions)``.

Pure: no I/O, no clock, no randomness, so every path is unit-tested with a fake clock. The
policy's strategy compiles to a flat plan of stages (workers/strategies) that the engine walks the
same way for every strategy. Phases change only here, and every change records an event.

Analysis is an observation, not an action: before calling ``step`` the task asks
``state.analysis_due(now)`` and, when it returns a request, runs ``analyzer.analyze`` over that
window and passes ``AnalysisResult(request, verdict)``. That saves a store round trip per look,
keeps "analysis pending" out of the state, and lets a result that the rollout has moved past be
recognised by its request and dropped. A Celery task ``advance(id, revision)``:

    record = store.load(id); stop if record.revision != revision           # a stale task
    state = RolloutState.from_record(record.data); policy = ...; now = clock()
    if state.awaiting: PlatformReady(state.awaiting) | PlatformFailed(why, state.awaiting) | Tick()
    elif request := state.analysis_due(now): AnalysisResult(request, analyze(policy, ...))
    else: Tick()
    new, actions = step(state, policy, observation, now)
    revision = store.save(new, expected_revision=revision, outbox=Notify/RecordEvent/Release)
    apply the platform actions in order; requeue advance(id, revision) at Schedule.at

Commands, ``Superseded`` and ``Released`` go through the same load, step and save. Saving every
step bumps the revision, so one task chain survives. While a platform change is awaited, every
Tick re-asserts it (the actions are declarative), so one lost between save and act is redone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from analyzer.policy.models import Policy
from analyzer.run import RunTally
from analyzer.verdict import Outcome, Reason, Verdict
from workers.actions import (
    Action,
    AnalysisResult,
    EnsureCanary,
    ManualCommand,
    Notify,
    NotifyKind,
    Observation,
    PlatformAction,
    PlatformDrifted,
    PlatformFailed,
    PlatformReady,
    Promote,
    RecordEvent,
    Release,
    Released,
    Rollback,
    Schedule,
    Superseded,
    Tick,
)
from workers.state import AnalysisRequest, Phase, RolloutState, VerdictSummary
from workers.strategies import (
    Exposure,
    Gate,
    Pause,
    Plan,
    Stage,
    exposure_after,
    plan_for,
    required_after,
)

POLL_SECONDS = 10.0
"""How soon to look again at a platform change in flight (and re-assert it)."""

_WAIT_FOR_PERSON = Pause(None)  # the stage of a rollout whose policy lost stages under it
Evidence = dict[str, Any] | None


def step(
    state: RolloutState, policy: Policy, observation: Observation, now: float
) -> tuple[RolloutState, list[Action]]:
    """The rollout's next state and what to do about it; see the module docstring."""
    run = _Step(state, policy, now)
    if state.phase is Phase.PROGRESSING and state.stage_index >= len(run.plan):
        run.pause(f"the policy has {len(run.plan)} stages now: promote to finish or abort", True)
    match observation:
        case Tick():
            run.on_tick()
        case PlatformReady(token):
            run.on_ready(token)
        case PlatformFailed(reason, token):
            run.on_failed(reason, token)
        case PlatformDrifted(detail):
            run.on_drifted(detail)
        case AnalysisResult(request, verdict):
            run.on_analysis(request, verdict)
        case ManualCommand():
            run.on_command(observation)
        case Superseded(by_id):
            run.on_superseded(by_id)
        case Released(predecessor_id):
            run.on_released(predecessor_id)
    return run.finish()


def platform_wants(state: RolloutState, policy: Policy) -> tuple[PlatformAction, ...]:
    """What ``state`` requires of its platform now, as one declarative set of actions.

    A platform's readiness is judged against this, never against what it last happened to
    apply: a decision saved without its platform action (a person's abort through the API, a
    worker killed between two actions) then reads "not yet", and the next wake-up re-asserts
    these actions until the platform matches.
    """
    return _wants(state, plan_for(policy.strategy))


def _wants(state: RolloutState, plan: Plan) -> tuple[PlatformAction, ...]:
    phase, index = state.phase, state.stage_index
    if phase in (Phase.PROMOTING, Phase.PROMOTED):
        return (Promote(),)
    if phase in (Phase.ABORTING, Phase.ABORTED, Phase.FAILED):
        switch_back = exposure_after(plan, index).active_is_new
        return (Rollback(state.abort_reason or "", switch_back),)
    if phase.active and plan:
        return required_after(plan, min(index, len(plan) - 1))
    return ()


def no_data(verdict: Verdict) -> bool:
    """No counted metric had data: such a verdict never moves a rollout forward."""
    counted = [metric for metric in verdict.metrics if not metric.dry_run]
    return all(metric.judgement.reason_code is Reason.NO_DATA for metric in counted)


class _Step:
    """One call of ``step``: the state so far and the actions to return."""

    def __init__(self, state: RolloutState, policy: Policy, now: float) -> None:
        self.before = self.state = state
        self.policy, self.analysis, self.now = policy, policy.analysis, now
        self.plan = plan_for(policy.strategy)
        self.actions: list[Action] = []

    @property
    def stage(self) -> Stage:
        index = self.state.stage_index
        return self.plan[index] if index < len(self.plan) else _WAIT_FOR_PERSON

    @property
    def exposure(self) -> Exposure:
        return exposure_after(self.plan, self.state.stage_index)

    def token(self, purpose: str) -> str:
        return f"{self.state.attempt}:{self.state.stage_index}:{purpose}"

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def event(self, kind: str, message: str, actor: str | None = None, **data: Any) -> None:
        state = self.state
        context = {"phase": state.phase.value, "stage": state.stage_index, "attempt": state.attempt}
        self.actions.append(RecordEvent(kind, message, {**context, **data}, actor))

    def to_phase(self, phase: Phase, message: str, actor: str | None = None, **data: Any) -> None:
        moved = {"from": self.state.phase.value, "to": phase.value}
        self.update(phase=phase)
        self.event("phase", message, actor, **moved, **data)

    def notify(self, kind: NotifyKind, reason: str, evidence: Evidence = None) -> None:
        state = self.state
        key = f"{state.id}/{state.attempt}/{kind}"
        key += f"/{state.stage_index}@{self.now:.0f}" if kind == "paused" else ""
        version, routes = state.spec.version, tuple(self.policy.alerts)
        notice = Notify(kind, state.id, state.app, state.namespace, version, reason, routes)
        self.actions.append(replace(notice, evidence=evidence or {}, dedupe_key=key))

    # -- walking the plan ----------------------------------------------------------------------
    def start(self, because: str, actor: str | None = None) -> None:
        self.to_phase(Phase.PROGRESSING, f"started: {because}", actor)
        self.actions.append(EnsureCanary())
        self.update(window_start=None, last_look_at=None)
        self.enter(0, because, force_await=True)
        self.advance()

    def enter(
        self, index: int, because: str, force_await: bool = False, actor: str | None = None
    ) -> None:
        stage, weight = self.plan[index], exposure_after(self.plan, index).weight
        weight = max(weight, self.state.canary_weight)
        self.update(stage_index=index, stage_started_at=self.now, canary_weight=weight)
        self.update(extensions=0, stage_failures=0)
        asks = stage.enter()
        if asks:  # a traffic change: the analysis window restarts once it is applied
            self.actions.extend(asks)
            self.update(window_start=None, last_look_at=None)
        if asks or force_await:
            self.update(awaiting=self.token("stage"))
        label = stage.label
        message = f"stage {index + 1}/{len(self.plan)}: {label} ({because})"
        self.event("stage", message, actor, label=label)
        self.arm()
        if stage.gate is Gate.PERSON:
            self.pause(f"{label}: waiting for a person", notify=True)

    def arm(self) -> None:
        """Start the current stage's clocks from ``stage_started_at`` and the window."""
        state, stage = self.state, self.stage
        seconds, started = stage.seconds or 0.0, state.stage_started_at or self.now
        ends = started + seconds if stage.gate is Gate.TIMER else None
        final = None
        if stage.gate is Gate.ANALYSIS and state.window_start is not None:
            final = max(started, state.window_start) + seconds
        self.update(stage_ends_at=ends, final_look_at=final)

    def advance(self) -> None:
        """Complete, in order, every stage that is done by now."""
        while self.state.phase is Phase.PROGRESSING and self.state.awaiting is None:
            stage, ends = self.stage, self.state.stage_ends_at
            if stage.gate is Gate.READY:
                because = f"{stage.label} applied"
            elif stage.gate is Gate.TIMER and (ends is None or self.now >= ends):
                because = f"{stage.label} elapsed"
            else:
                return
            if not self.complete(because):
                return

    def complete(self, because: str, actor: str | None = None, automatic: bool = True) -> bool:
        """End the current stage; after the last one, promote. False when held for a person."""
        state, stage = self.state, self.stage
        last = state.stage_index >= len(self.plan) - 1
        if automatic and last and state.stage_failures:
            failures = f"{state.stage_failures} FAIL look(s) tolerated by failure_limit"
            self.pause(f"{failures} in the last stage: promote to finish or abort", True)
            return False
        self.actions.extend(stage.leave())
        if last:
            self.promote(because, actor)
        else:
            self.enter(state.stage_index + 1, because, actor=actor)
        return True

    def promote(self, because: str, actor: str | None = None) -> None:
        self.update(awaiting=self.token("promote"), pause_reason=None, canary_weight=100)
        self.actions.append(Promote())
        self.to_phase(Phase.PROMOTING, f"promoting: {because}", actor)

    def roll_back(self, phase: Phase, reason: str, actor: str | None, **data: Any) -> None:
        self.actions.append(Rollback(reason, self.exposure.active_is_new))
        self.update(abort_reason=reason, pause_reason=None, canary_weight=0)
        self.update(awaiting=self.token("rollback"))
        self.to_phase(phase, f"{phase.value}: {reason}", actor, **data)

    def abort(self, reason: str, actor: str | None = None, evidence: Evidence = None) -> None:
        self.notify("aborted", reason, evidence)
        self.roll_back(Phase.ABORTING, reason, actor, verdict=evidence)

    def pause(
        self, reason: str, notify: bool = False, actor: str | None = None, evidence: Evidence = None
    ) -> None:
        self.update(pause_reason=reason)
        if notify:
            self.notify("paused", reason, evidence)
        self.to_phase(Phase.PAUSED, f"paused: {reason}", actor, verdict=evidence)

    def release(self) -> None:
        successor = self.state.superseded_by
        if successor is not None:
            self.actions.append(Release(successor))
            self.event("release", f"{successor} may start: this rollout has stood down")

    def reassert(self) -> None:
        """Ask again for everything the state requires of the platform (``platform_wants``),
        not only the last stage's asks: a crash may have cut an earlier sequence short. The
        actions are declarative, so asking again is safe."""
        if self.state.awaiting is not None:
            self.actions.extend(_wants(self.state, self.plan))

    # -- observations --------------------------------------------------------------------------
    def on_tick(self) -> None:
        if self.state.phase is Phase.PENDING and self.state.supersedes is None:
            self.start("submitted")
            return
        self.reassert()
        self.advance()

    def on_ready(self, token: str) -> None:
        state = self.state
        if state.awaiting is None or token != state.awaiting:
            return  # stale or duplicate
        self.update(awaiting=None)
        if state.phase.active:
            self.event("platform_ready", f"the platform is ready: {self.stage.label}")
            if state.window_start is None:
                warm_up = self.analysis.begin_after.total_seconds()
                self.update(window_start=self.now + warm_up)
                self.arm()
            self.advance()
        elif state.phase is Phase.PROMOTING:
            version = state.spec.version
            self.to_phase(Phase.PROMOTED, f"promoted: {version} is the stable version")
            self.notify("promoted", f"{version} is the stable version of {state.app}")
            self.release()
        elif state.phase is Phase.ABORTING:
            self.to_phase(Phase.ABORTED, f"rolled back: {state.abort_reason}")
            self.release()
        elif state.phase is Phase.FAILED:
            self.event("rolled_back", "the rollback after the failure is complete")
            self.release()

    def on_failed(self, reason: str, token: str | None) -> None:
        state = self.state
        if token is not None and token != state.awaiting:
            return  # about something no longer asked for
        if state.phase.active or state.phase is Phase.PROMOTING:
            self.notify("failed", reason)
            self.roll_back(Phase.FAILED, reason, None)
        elif state.phase in (Phase.ABORTING, Phase.FAILED) and state.awaiting is not None:
            self.event("rollback_retry", f"the rollback is not done ({reason}); asking again")
            self.reassert()

    @property
    def blind(self) -> bool:
        """Paused with queries failing past ``consecutive_error_limit``: looking again every
        interval would only fail again, so a paused rollout stops looking until a person
        resumes it (while they work it keeps its background looks: a FAIL still aborts)."""
        errors, limit = self.state.tally.consecutive_errors, self.analysis.consecutive_error_limit
        return self.state.phase is Phase.PAUSED and errors >= limit

    def on_drifted(self, detail: str) -> None:
        """The platform no longer matches what the stage applied (a router died, an object was
        edited): re-apply it, and judge only data from after it is back."""
        state = self.state
        if not state.phase.active or state.awaiting is not None:
            return
        self.update(awaiting=self.token("repair"), window_start=None, last_look_at=None)
        self.arm()
        index, total = state.stage_index + 1, len(self.plan)
        self.event(
            "platform_drift",
            f"the platform no longer matches stage {index}/{total} ({detail}): re-applying it; "
            "the analysis window starts again once it matches",
            detail=detail,
        )
        self.reassert()

    def on_analysis(self, request: AnalysisRequest, verdict: Verdict) -> None:
        if not self.state.expects(request):
            return
        state, window = self.state, (request.window_start, request.window_end)
        tally = state.tally.observe(verdict)
        summary = VerdictSummary.of(verdict, window, request.final)
        self.update(tally=tally, last_look_at=request.window_end, last_verdict=summary)
        evidence = verdict.model_dump(mode="json")
        if tally.outcome(self.analysis) is Outcome.FAIL:
            limit = f"{tally.failures} FAIL look(s), failure_limit {self.analysis.failure_limit}"
            self.abort(f"{verdict.reason} ({limit})", evidence=evidence)
            return
        outcome, why = self.judge(verdict, tally)
        self.update(stage_failures=state.stage_failures + (verdict.outcome is Outcome.FAIL))
        if self.blind and state.tally.consecutive_errors < self.analysis.consecutive_error_limit:
            errors = f"{tally.consecutive_errors} failed queries in a row"
            self.event("looks_stopped", f"paused, and {errors}: no more looks until resumed")
        look = "final look" if request.final else "look"
        message = f"{look}: {outcome.value}: {why}"
        self.event(
            "analysis",
            message,
            outcome=outcome.value,
            score=verdict.score,
            window=list(window),
            verdict=evidence,
        )
        stage = self.stage
        if self.state.phase is not Phase.PROGRESSING or stage.gate is not Gate.ANALYSIS:
            return  # a background look: only a FAIL past failure_limit acts on it
        if outcome is Outcome.PASS:
            self.complete(f"{stage.label} passed: {verdict.reason}")
            self.advance()
        elif request.final:
            self.undecided(stage, why, evidence)

    def judge(self, verdict: Verdict, tally: RunTally) -> tuple[Outcome, str]:
        """What a look means for its stage: only evidence of health counts as PASS."""
        analysis = self.analysis
        if verdict.outcome is Outcome.FAIL:
            limit = f"{tally.failures} of failure_limit {analysis.failure_limit}"
            return Outcome.FAIL, f"tolerated ({limit}): {verdict.reason}"
        if tally.outcome(analysis) is Outcome.INCONCLUSIVE:
            errors = f"{tally.consecutive_errors} failed queries in a row"
            limit = f"consecutive_error_limit {analysis.consecutive_error_limit}"
            return Outcome.INCONCLUSIVE, f"{errors}, over {limit}"
        if no_data(verdict):
            return Outcome.INCONCLUSIVE, "no counted metric had data: missing data never promotes"
        return verdict.outcome, verdict.reason

    def undecided(self, stage: Stage, why: str, evidence: Evidence) -> None:
        """The last look of an analyze stage did not PASS: extend, then pause or abort."""
        state, limit = self.state, self.analysis.inconclusive_limit
        if state.extensions < limit:
            final_look_at = (state.final_look_at or self.now) + (stage.seconds or 0.0)
            self.update(extensions=state.extensions + 1, final_look_at=final_look_at)
            self.event(
                "extended", f"{stage.label} extended ({state.extensions + 1}/{limit}): {why}"
            )
            return
        reason = f"{stage.label} undecided after {limit} extension(s): {why}"
        if self.analysis.on_inconclusive == "abort":
            self.abort(reason, evidence=evidence)
        else:
            choice = "promote, resume for one more window, or abort"
            self.pause(f"{reason}; {choice}", notify=True, evidence=evidence)

    def on_command(self, command: ManualCommand) -> None:
        state, actor, kind, phase = self.state, command.actor, command.kind, self.state.phase
        said = f"{kind} by {actor}" + (f": {command.reason}" if command.reason else "")
        retryable = phase in (Phase.ABORTED, Phase.FAILED) and state.awaiting is None
        if kind == "abort" and phase is Phase.PENDING:
            self.update(abort_reason=said)
            self.notify("aborted", said)
            self.to_phase(Phase.ABORTED, said, actor)
        elif kind == "abort" and (phase.active or phase is Phase.PROMOTING):
            self.abort(said, actor)  # until the promotion is done, it can be undone
        elif kind == "promote" and phase.active and command.full:
            skipped = len(self.plan) - state.stage_index
            self.promote(f"full {said}: {skipped} stage(s) and their analysis skipped", actor)
        elif kind == "promote" and phase.active and state.awaiting is None:
            if phase is Phase.PAUSED:
                self.update(pause_reason=None)
                self.to_phase(Phase.PROGRESSING, said, actor)
            self.complete(f"skipped: {said}", actor, automatic=False)
            self.advance()
        elif kind == "pause" and phase is Phase.PROGRESSING:
            self.pause(said, actor=actor)
        elif kind == "resume" and phase is Phase.PAUSED:
            self.resume(said, actor)
        elif kind == "retry" and retryable and state.superseded_by is None:
            self.update(attempt=state.attempt + 1, stage_index=0, canary_weight=0, tally=RunTally())
            self.update(pause_reason=None, abort_reason=None, last_verdict=None)
            self.start(said, actor)
        else:
            self.event("command_ignored", f"{said} does not apply: {self.why_not(kind)}", actor)

    def resume(self, said: str, actor: str) -> None:
        self.update(pause_reason=None)
        self.to_phase(Phase.PROGRESSING, said, actor)
        if self.stage.gate is Gate.PERSON:
            self.complete(said, actor, automatic=False)
        else:  # the stage starts over: one more window, timer or readiness check
            self.update(stage_started_at=self.now, stage_failures=0)
            self.arm()
        self.advance()

    def why_not(self, kind: str) -> str:
        state = self.state
        if kind == "retry" and state.superseded_by is not None:
            return f"{state.superseded_by} replaced this rollout"
        if kind == "retry" and state.awaiting is not None:
            return "its rollback is still in progress"
        if kind == "promote" and state.awaiting is not None and state.phase.active:
            return f"'{self.stage.label}' is not applied yet: wait for it, or promote in full"
        return f"the rollout is {state.phase.value}"

    def on_superseded(self, successor: str) -> None:
        state, reason = self.state, f"superseded by {successor}"
        if state.superseded_by not in (None, successor):
            self.event("supersede_ignored", f"{reason} ignored: {state.superseded_by} was first")
            return
        self.update(superseded_by=successor)
        if state.phase is Phase.PENDING:
            self.update(abort_reason=reason)
            self.to_phase(Phase.ABORTED, reason)
        elif state.phase.active:  # a replacement, not an incident: no alert
            self.roll_back(Phase.ABORTING, reason, None)
        elif state.superseded_by is None and state.awaiting is not None:
            self.event("superseded", f"{reason}; it starts once this rollout stands down")
        waiting = state.phase is Phase.PENDING and state.supersedes is not None
        if self.state.phase.terminal and self.state.awaiting is None and not waiting:
            self.release()

    def on_released(self, predecessor: str) -> None:
        state = self.state
        if predecessor != state.supersedes:
            return
        if state.phase is Phase.PENDING:
            self.start(f"{predecessor} stood down")
        elif state.phase.terminal and state.awaiting is None:
            self.release()  # superseded while it waited: pass the lane on

    def finish(self) -> tuple[RolloutState, list[Action]]:
        """Derive the wake-up times, stamp a change, and ask to be woken."""
        watching = (self.exposure.serving or self.stage.gate is Gate.ANALYSIS) and not self.blind
        interval = self.analysis.interval.total_seconds()
        self.state = self.state.scheduled(self.now, interval, watching, POLL_SECONDS)
        if self.state != self.before:
            self.update(updated_at=self.now)
        if self.state.next_due_at is not None:
            self.actions.append(Schedule(self.state.next_due_at))
        return self.state, self.actions
