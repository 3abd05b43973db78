"""Walking the plan: the stage cursor, its clocks, the next stage, and what the stages so far
require of the platform.

The policy's strategy compiles to a flat plan of stages (workers/strategies); this module walks
it the same way for every strategy and holds no per-strategy knowledge. A stage's gate says
what ends it: ``READY`` once its platform change is applied, ``TIMER`` when its time is up,
``ANALYSIS`` on a passing look (looks.py), ``PERSON`` on a command (commands.py). The last
stage's end promotes, unless a gate holds it there (approval.py).
"""

from __future__ import annotations

from analyzer.policy.models import Policy
from workers.actions import EnsureCanary, EventKind, PlatformAction, Promote, Rollback
from workers.engine.approval import hold_for_approval
from workers.engine.hooks import cleared, pre_rollout_held, promotion_gate
from workers.engine.phases import pause, promote
from workers.engine.run import Run
from workers.state import Awaited, Phase, RolloutState
from workers.strategies import Gate, Plan, exposure_after, plan_for, required_after


def platform_wants(state: RolloutState, policy: Policy) -> tuple[PlatformAction, ...]:
    """What ``state`` requires of its platform now, as one declarative set of actions.

    A platform's readiness is judged against this, never against what it last happened to
    apply: a decision saved without its platform action (a person's abort through the API, a
    worker killed between two actions) then reads "not yet", and the next wake-up re-asserts
    these actions until the platform matches.
    """
    return wants(state, plan_for(policy.strategy))


def wants(state: RolloutState, plan: Plan) -> tuple[PlatformAction, ...]:
    phase, index = state.phase, state.stage_index
    if phase in (Phase.PROMOTING, Phase.PROMOTED):
        return (Promote(),)
    if phase in (Phase.ABORTING, Phase.ABORTED, Phase.FAILED):
        switch_back = exposure_after(plan, index).active_is_new
        return (Rollback(state.abort_reason or "", switch_back),)
    if phase.active and plan:
        return required_after(plan, min(index, len(plan) - 1))
    return ()


def reassert(run: Run) -> None:
    """Ask again for everything the state requires of the platform (``platform_wants``), not
    only the last stage's asks: a crash may have cut an earlier sequence short. The actions are
    declarative, so asking again is safe."""
    if run.state.awaiting is not None:
        run.actions.extend(wants(run.state, run.plan))


def start(run: Run, because: str, actor: str | None = None, hooks_passed: bool = False) -> None:
    """Deploy the new version and enter the first stage (after its pre_rollout hooks pass)."""
    if not hooks_passed:
        cleared(run)
    if not hooks_passed and pre_rollout_held(run):
        run.actions.append(EnsureCanary())  # at 0%, for the hooks to reach it
        return
    run.to_phase(Phase.PROGRESSING, f"started: {because}", actor)
    run.notify("started", f"started: {because}")
    run.actions.append(EnsureCanary())
    run.update(window_start=None, last_look_at=None)
    enter(run, 0, because, force_await=True)
    advance(run)


def enter(
    run: Run, index: int, because: str, force_await: bool = False, actor: str | None = None
) -> None:
    """Move the cursor to stage ``index``: apply its asks, start its clocks, and hold for a
    person when its gate says so."""
    stage, weight = run.plan[index], exposure_after(run.plan, index).weight
    weight = max(weight, run.state.canary_weight)
    run.update(stage_index=index, stage_started_at=run.now, canary_weight=weight)
    run.update(extensions=0, stage_failures=0)
    asks = stage.enter()
    if asks:  # a traffic change: the analysis window restarts once it is applied
        run.actions.extend(asks)
        run.update(window_start=None, last_look_at=None)
    if asks or force_await:
        run.update(awaiting=run.token(Awaited.STAGE))
    label = stage.label
    message = f"stage {index + 1}/{len(run.plan)}: {label} ({because})"
    run.event(EventKind.STAGE, message, actor, label=label)
    run.notify("stage", message)
    arm(run)
    if stage.gate is Gate.PERSON:
        pause(run, f"{label}: waiting for a person", notify=True)


def arm(run: Run) -> None:
    """Start the current stage's clocks from ``stage_started_at`` and the window."""
    state, stage = run.state, run.stage
    seconds, started = stage.seconds or 0.0, state.stage_started_at or run.now
    ends = started + seconds if stage.gate is Gate.TIMER else None
    final = None
    if stage.gate is Gate.ANALYSIS and state.window_start is not None:
        final = max(started, state.window_start) + seconds
    run.update(stage_ends_at=ends, final_look_at=final)


def advance(run: Run) -> None:
    """Complete, in order, every stage that is done by now."""
    while run.state.phase is Phase.PROGRESSING and run.state.awaiting is None:
        if run.state.hook_due is not None:  # held at the confirm_promotion gate
            return
        stage, ends = run.stage, run.state.stage_ends_at
        if stage.gate is Gate.READY:
            because = f"{stage.label} applied"
        elif stage.gate is Gate.TIMER and (ends is None or run.now >= ends):
            because = f"{stage.label} elapsed"
        else:
            return
        if not complete(run, because):
            return


def complete(
    run: Run, because: str, actor: str | None = None, automatic: bool = True, confirm: bool = True
) -> bool:
    """End the current stage; after the last one, promote (through the confirm_promotion gate
    unless a person's promote says ``confirm`` False). False when held for a person or a gate."""
    state, stage = run.state, run.stage
    last = state.stage_index >= len(run.plan) - 1
    if automatic and last and state.stage_failures:
        failures = f"{state.stage_failures} FAIL look(s) tolerated by failure_limit"
        pause(run, f"{failures} in the last stage: promote to finish or abort", True)
        return False
    if last and confirm and not promotion_gate(run):
        return False  # the confirm_promotion hooks answer first (hook_answers.py goes on)
    if last:
        return promote_after_gates(run, because, actor)
    run.actions.extend(stage.leave())
    enter(run, state.stage_index + 1, because, actor=actor)
    return True


def promote_after_gates(run: Run, because: str, actor: str | None = None) -> bool:
    """The last stage is done and the webhook gate said yes (or has none): hold for a person's
    approval when the policy asks for one (with the stage's leave actions: approval.approve
    applies them), else leave the stage and promote. False when held."""
    if hold_for_approval(run, because, actor):
        return False
    run.actions.extend(run.stage.leave())
    promote(run, because, actor)
    return True
