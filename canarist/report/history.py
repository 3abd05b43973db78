"""What the audit trail says about a rollout: its looks, its decision and its traffic changes.

The report is read from the same records the engine wrote, never recomputed: a look is an
``analysis`` event (its verdict, window and what it meant for the stage), and the look that
aborted or paused a rollout is the ``phase`` event that carries its verdict (the engine records
no separate ``analysis`` event for it). Weight changes come from ``stage`` events and the
policy's plan (the same ``exposure_after`` the engine uses), and the decision is the phase change
that settled the rollout, with who made it. Pure functions of a state, its events and a policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from analyzer.policy import Policy
from analyzer.verdict import Outcome, Verdict
from workers.actions import EventKind
from workers.state import Phase, RolloutState
from workers.store import AuditEvent
from workers.strategies import Plan, exposure_after, plan_for

CANARIST = "Canarist (automatic)"
CANARIST_ANALYSIS = "Canarist (automatic, on the analysis)"


@dataclass(frozen=True)
class Look:
    """One analysis the engine accepted: the verdict and what it meant for the rollout."""

    at: float  # the window's end: the data the look saw ends here
    window_start: float
    outcome: Outcome  # as the engine judged it for the stage (a tolerated FAIL stays FAIL)
    verdict: Verdict
    stage: int | None = None
    attempt: int | None = None
    final: bool = False
    decisive: bool = False  # this look aborted or paused the rollout


@dataclass(frozen=True)
class Decision:
    headline: str  # Aborted, Promoted, Paused, In progress...
    sentence: str  # why, in the engine's words
    by: str  # the person (a token's name) or Canarist
    at: float | None  # when it was decided (None while undecided)
    finished_at: float | None  # when the rollout reached a terminal phase


@dataclass(frozen=True)
class TrafficChange:
    at: float
    label: str  # "5%", "rollback", "100%"


@dataclass(frozen=True)
class Window:
    """The span an analysis stage looked at, from its first window start to its last look."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class History:
    state: RolloutState
    events: tuple[AuditEvent, ...]
    looks: tuple[Look, ...]
    decision: Decision
    traffic: tuple[TrafficChange, ...]
    windows: tuple[Window, ...]
    unreadable_looks: int = 0  # events whose verdict no longer parses (an older format)


def read_history(
    state: RolloutState, events: Sequence[AuditEvent], policy: Policy | None
) -> History:
    looks, unreadable = _looks(events)
    plan = _plan(policy)
    return History(
        state=state,
        events=tuple(events),
        looks=tuple(looks),
        decision=_decision(state, events, looks, plan),
        traffic=tuple(_traffic(events, plan)),
        windows=tuple(_windows(looks)),
        unreadable_looks=unreadable,
    )


def decisive_verdict(history: History) -> Verdict | None:
    """The verdict behind the decision: the look that aborted or paused, else the last look."""
    for look in reversed(history.looks):
        if look.decisive:
            return look.verdict
    return history.looks[-1].verdict if history.looks else None


def _plan(policy: Policy | None) -> Plan | None:
    if policy is None:
        return None
    try:
        return plan_for(policy.strategy)
    except Exception:  # an unknown strategy type: the report still shows the rest
        return None


def _looks(events: Sequence[AuditEvent]) -> tuple[list[Look], int]:
    looks, unreadable = [], 0
    for event in events:
        evidence = event.data.get("verdict")
        if event.kind not in (EventKind.ANALYSIS, EventKind.PHASE) or not evidence:
            continue
        try:
            verdict = Verdict.model_validate(evidence)
        except ValidationError:
            unreadable += 1
            continue
        window = event.data.get("window") or (verdict.window_start, verdict.window_end)
        start, end = window if len(window) == 2 else (None, None)
        if event.kind == EventKind.ANALYSIS:
            outcome = _outcome(event.data.get("outcome"), verdict.outcome)
            final, decisive = event.message.startswith("final look"), False
        else:
            outcome, final, decisive = verdict.outcome, False, True
        at = float(end if end is not None else event.at)
        looks.append(
            Look(
                at=at,
                window_start=float(start if start is not None else at),
                outcome=outcome,
                verdict=verdict,
                stage=_int(event.data.get("stage")),
                attempt=_int(event.data.get("attempt")),
                final=final,
                decisive=decisive,
            )
        )
    return looks, unreadable


def _outcome(recorded: object, otherwise: Outcome) -> Outcome:
    try:
        return Outcome(str(recorded))
    except ValueError:
        return otherwise


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_DECIDING = {
    Phase.PROMOTED: ("Promoted", (Phase.PROMOTING,)),
    Phase.PROMOTING: ("Promoting", (Phase.PROMOTING,)),
    Phase.ABORTED: ("Aborted", (Phase.ABORTING, Phase.ABORTED)),
    Phase.ABORTING: ("Aborting", (Phase.ABORTING,)),
    Phase.FAILED: ("Failed", (Phase.FAILED,)),
    Phase.PAUSED: ("Paused", (Phase.PAUSED,)),
    Phase.AWAITING_APPROVAL: ("Awaiting approval", (Phase.AWAITING_APPROVAL,)),
}


def _decision(
    state: RolloutState, events: Sequence[AuditEvent], looks: Sequence[Look], plan: Plan | None
) -> Decision:
    finished = next(
        (
            e.at
            for e in reversed(events)
            if e.kind == EventKind.PHASE and e.data.get("to") == state.phase
        ),
        None,
    )
    finished = finished if state.phase.terminal else None
    if state.phase not in _DECIDING:
        return _undecided(state, plan)
    headline, phases = _DECIDING[state.phase]
    event = next(
        (
            found
            for phase in phases  # the first phase named is the decision, the next its completion
            for found in reversed(events)
            if found.kind == EventKind.PHASE and found.data.get("to") == phase
        ),
        None,
    )
    by = (event.actor if event is not None else None) or CANARIST
    if by == CANARIST and event is not None and event.data.get("verdict"):
        by = CANARIST_ANALYSIS
    at = event.at if event is not None else None
    if state.phase in (Phase.ABORTED, Phase.ABORTING, Phase.FAILED):
        sentence = state.abort_reason or (event.message if event else "no reason recorded")
    elif state.phase is Phase.AWAITING_APPROVAL:
        sentence = event.message if event else "the promotion waits for a person's approval"
    elif state.phase is Phase.PAUSED:
        sentence = state.pause_reason or (event.message if event else "no reason recorded")
    else:
        sentence = _promotion(state, event, looks)
    if state.phase is Phase.FAILED and by == CANARIST:
        by = f"the {state.spec.platform} platform (Canarist rolled back)"
    return Decision(headline, sentence, by, at, finished)


def _promotion(state: RolloutState, event: AuditEvent | None, looks: Sequence[Look]) -> str:
    if event is not None and event.actor is not None:
        return event.message  # "promoting: full promote by alice: 2 stage(s) ... skipped"
    version, app = state.spec.version, state.app
    becomes = "is" if state.phase is Phase.PROMOTED else "is becoming"
    passed = [look for look in looks if look.outcome is Outcome.PASS and look.final]
    if not passed:
        return f"{version} {becomes} the stable version of {app}"
    steps = len({(look.attempt, look.stage) for look in passed})
    return (
        f"{version} passed the analysis of {steps} step(s) and {becomes} the stable version of "
        f"{app}; last analysis: {passed[-1].verdict.reason}"
    )


def _undecided(state: RolloutState, plan: Plan | None) -> Decision:
    if state.phase is Phase.PENDING:
        waiting = f"it waits for {state.supersedes} to stand down" if state.supersedes else ""
        return Decision(
            "Pending", waiting or "queued; it starts on the next wake-up", "", None, None
        )
    where = f"stage {state.stage_index + 1}"
    if plan is not None and state.stage_index < len(plan):
        where += f"/{len(plan)}: {plan[state.stage_index].label}"
    sentence = f"{where}, canary at {state.canary_weight}%"
    if state.last_verdict is not None:
        sentence += f"; last look: {state.last_verdict.outcome.value}: {state.last_verdict.reason}"
    return Decision("In progress", sentence, "", None, None)


def _traffic(events: Sequence[AuditEvent], plan: Plan | None) -> list[TrafficChange]:
    changes: list[TrafficChange] = []
    weight = 0
    for event in events:
        kind, target = event.kind, event.data.get("to")
        if kind == EventKind.PHASE and target in (Phase.ABORTING, Phase.FAILED) and weight:
            changes.append(TrafficChange(event.at, "rollback"))
            weight = 0
        elif kind == EventKind.PHASE and target == Phase.PROMOTING and weight < 100:
            changes.append(TrafficChange(event.at, "100%"))
            weight = 100
        elif (
            kind == EventKind.PHASE
            and target == Phase.PROGRESSING
            and event.data.get("from")
            in (
                Phase.ABORTED,
                Phase.FAILED,
            )
        ):
            weight = 0  # a retry starts from the first stage again
        elif kind == EventKind.STAGE and plan is not None:
            index = _int(event.data.get("stage"))
            if index is None or index >= len(plan):
                continue
            planned = max(exposure_after(plan, index).weight, weight)
            if planned != weight:
                changes.append(TrafficChange(event.at, f"{planned}%"))
                weight = planned
    return changes


def _windows(looks: Sequence[Look]) -> list[Window]:
    spans: dict[tuple[int | None, int | None], tuple[float, float]] = {}
    for look in looks:
        key = (look.attempt, look.stage)
        start, end = spans.get(key, (look.window_start, look.at))
        spans[key] = (min(start, look.window_start), max(end, look.at))
    windows = []
    for (attempt, stage), (start, end) in spans.items():
        label = f"stage {stage + 1}" if stage is not None else "analysis"
        if attempt is not None and attempt > 1:
            label += f" (attempt {attempt})"
        windows.append(Window(start, end, label))
    return windows
