"""The manual confirm-promotion gate (``strategy.confirm_promotion: manual``, Spinnaker's manual
judgment): where the plan reaches promotion on its own, hold in AWAITING_APPROVAL until a person
approves.

Two small functions at the one point where the plan turns into a promotion (``complete`` of the
last stage): ``hold_for_approval`` decides whether to hold, ``approve`` lets it go. Another gate
at that point (a webhook's confirmation) sits before this one: each holds or passes in turn.
While it waits the rollout stays active at its last stage: the platform is still watched, the
background looks go on, and a FAIL past ``failure_limit`` aborts as anywhere else. The last
stage's ``leave`` asks (a blue-green's old side scaled down) wait with it, so an abort while
waiting switches back as fast as before.
"""

from __future__ import annotations

from analyzer.policy.strategy import ConfirmPromotion
from workers.engine.phases import promote
from workers.engine.run import Run
from workers.state import Phase
from workers.strategies import Gate

_DOING = {
    Gate.READY: "applying it",
    Gate.TIMER: "waiting for its timer",
    Gate.PERSON: "waiting for a person",
    Gate.ANALYSIS: "analysing",
}


def manual(run: Run) -> bool:
    """The policy asks a person to confirm every promotion."""
    return run.policy.strategy.confirm_promotion is ConfirmPromotion.MANUAL


def hold_for_approval(run: Run, because: str, actor: str | None) -> bool:
    """At the last stage's end: True when the rollout now waits for an approval. A person's
    own promote or resume that ends the last stage is their approval: no second question."""
    if actor is not None or not manual(run):
        return False
    waiting = f"{because}; approve to promote, or abort"
    run.update(pause_reason=None)
    run.notify("awaiting_approval", waiting)
    run.to_phase(Phase.AWAITING_APPROVAL, f"awaiting approval: {waiting}")
    return True


def approve(run: Run, actor: str, said: str) -> str | None:
    """Promote a rollout awaiting approval, saying who approved and why; else why not."""
    if run.state.phase is not Phase.AWAITING_APPROVAL:
        return not_awaiting(run)
    run.actions.extend(run.stage.leave())
    promote(run, f"approved: {said}", actor)
    return None


def not_awaiting(run: Run) -> str:
    """Why an approval does not apply: where the rollout is instead."""
    state, total = run.state, len(run.plan)
    where = f"it is {state.phase.value}"
    if state.phase.active:
        doing = "paused" if state.phase is Phase.PAUSED else _DOING[run.stage.gate]
        doing = "applying it" if state.awaiting is not None else doing
        where = f"it is at stage {min(state.stage_index, total - 1) + 1} of {total}, {doing}"
    policy = "" if manual(run) else " (its policy promotes without one)"
    return f"not awaiting approval: {where}{policy}"
