"""The rollout state machine: ``step(state, policy, observation, now) -> (state, actions)``.

Pure: no I/O, no clock, no randomness, so every path is unit-tested with a fake clock. The
policy's strategy compiles to a flat plan of stages (workers/strategies) that the engine walks the
same way for every strategy. Phases change only here, and every change records an event.

``step`` is the one entry: it hands the observation to the module that handles its kind, each
a set of plain functions of one ``Run`` (run.py, the step's state so far and its actions):

    readiness.py   Tick, PlatformReady, PlatformFailed, PlatformDrifted (tables by phase)
    looks.py       AnalysisResult: the tally, what a look means for its stage
    commands.py    ManualCommand (a table by kind: abort, promote, pause, resume, retry, approve)
    approval.py    the manual confirm-promotion gate where the plan reaches promotion
    lane.py        Superseded, Released: the app's single rollout lane
    hook_answers.py  HookResult: HTTP hooks' answers (hooks.py: when a point's hooks are due)
    plan_walk.py   the stage cursor: enter, arm, advance, complete; ``platform_wants``
    phases.py      the shared phase changes: pause, promote, roll back, abort, release

Analysis is an observation, not an action: before calling ``step`` the task asks
``state.analysis_due(now)`` and, when it returns a request, runs ``analyzer.analyze`` over that
window and passes ``AnalysisResult(request, verdict)``. That saves a store round trip per look,
keeps "analysis pending" out of the state, and lets a result that the rollout has moved past be
recognised by its request and dropped. A Celery task ``advance(id, revision)`` (tasks.py):

    stored = store.load(id); stop if stored.revision != revision           # a stale task
    state = stored.state; policy = ...; now = clock()
    observe (observations.py):
        if state.awaiting: PlatformReady(state.awaiting) | PlatformFailed(why, token) | Tick()
        elif active, platform not as required: PlatformFailed(why) | PlatformDrifted(detail)
        elif request := state.analysis_due(now): AnalysisResult(request, analyze(policy, ...))
        else: Tick()
    stepping.step_and_save(store, stored, policy, observation, now):
        new, actions = step(state, policy, observation, now)
        store.save(new, revision, events=RecordEvent..., outbox=Notify/Release...)
    apply the platform actions in order; requeue advance(id, new revision) at Schedule.at

The save is one compare-and-set: the new state, the step's ``RecordEvent`` actions appended to
the rollout's audit trail (the store's event stream, stamped with the new revision and
``state.updated_at``), and its ``Notify`` and ``Release`` actions queued in the outbox, for the
delivery task to send with retries. Events go with the state, never through the outbox: a step
is saved with its events or not at all.

Commands, ``Superseded`` and ``Released`` go through the same ``step_and_save`` (intake's
``tell``). Saving every step bumps the revision, so one task chain survives. While a platform
change is awaited, every Tick re-asserts it (the actions are declarative), so one lost between
save and act is redone.
"""

from __future__ import annotations

from analyzer.policy.models import Policy
from workers.actions import (
    Action,
    AnalysisResult,
    HookResult,
    ManualCommand,
    Observation,
    PlatformDrifted,
    PlatformFailed,
    PlatformReady,
    Released,
    Schedule,
    Superseded,
    Tick,
)
from workers.engine.commands import on_command, refusal
from workers.engine.hook_answers import on_hook
from workers.engine.hooks import HookToken, schedule
from workers.engine.lane import on_released, on_superseded
from workers.engine.looks import blind, no_data, on_analysis
from workers.engine.phases import pause
from workers.engine.plan_walk import platform_wants
from workers.engine.readiness import on_drifted, on_failed, on_ready, on_tick
from workers.engine.run import Run
from workers.state import Phase, RolloutState
from workers.strategies import Gate

__all__ = [
    "FIRST_POLL_SECONDS",
    "POLL_SECONDS",
    "HookToken",
    "no_data",
    "platform_wants",
    "readiness_poll",
    "refusal",
    "step",
]

POLL_SECONDS = 10.0
"""The longest wait before looking again at a platform change in flight (and re-asserting it)."""
FIRST_POLL_SECONDS = 1.0
"""The first look at a change just asked for: most settle in seconds (a weight on a route, a
Service selector), so the polls back off from here, each twice the wait before it, up to
POLL_SECONDS: 1, 2, 4, 8, 10, 10 ... (five questions in the first 15 s, then one per 10 s)."""


def step(
    state: RolloutState, policy: Policy, observation: Observation, now: float
) -> tuple[RolloutState, list[Action]]:
    """The rollout's next state and what to do about it; see the module docstring."""
    run = Run(state, policy, now)
    if state.phase is Phase.PROGRESSING and state.stage_index >= len(run.plan):
        pause(run, f"the policy has {len(run.plan)} stages now: promote to finish or abort", True)
    match observation:
        case Tick():
            on_tick(run)
        case PlatformReady(token):
            on_ready(run, token)
        case PlatformFailed(reason, token):
            on_failed(run, reason, token)
        case PlatformDrifted(detail):
            on_drifted(run, detail)
        case AnalysisResult(request, verdict):
            on_analysis(run, request, verdict)
        case ManualCommand():
            on_command(run, observation)
        case Superseded(by_id):
            on_superseded(run, by_id)
        case Released(predecessor_id):
            on_released(run, predecessor_id)
        case HookResult():
            on_hook(run, observation)
    return _finish(run)


def _finish(run: Run) -> tuple[RolloutState, list[Action]]:
    """Derive the wake-up times, stamp a change, and ask to be woken."""
    watching = (run.exposure.serving or run.stage.gate is Gate.ANALYSIS) and not blind(run)
    interval = run.analysis.interval.total_seconds()
    poll = readiness_poll(run.before, run.state, run.now)
    run.state = run.state.scheduled(run.now, interval, watching, poll)
    schedule(run)  # due hooks wake it
    if run.state != run.before:
        run.update(updated_at=run.now)
    if run.state.next_due_at is not None:
        run.actions.append(Schedule(run.state.next_due_at))
    return run.state, run.actions


def readiness_poll(before: RolloutState, after: RolloutState, now: float) -> float:
    """Seconds until the next readiness question while ``after`` awaits a platform change.

    A change asked in this step gets FIRST_POLL_SECONDS; a change still awaited waits twice as
    long as the last wait did (``before.updated_at`` is when the last poll was scheduled: every
    poll re-schedules, and so stamps the state), at most POLL_SECONDS. Derived from fields the
    state already keeps, so the stored record is unchanged."""
    if after.awaiting is None:
        return POLL_SECONDS
    if before.awaiting != after.awaiting:
        return FIRST_POLL_SECONDS
    waited = max(0.0, now - before.updated_at)
    return min(POLL_SECONDS, max(FIRST_POLL_SECONDS, 2 * waited))
