"""The app's single rollout lane: a newer revision supersedes this rollout (``Superseded``), or
the rollout this one supersedes has stood down (``Released``).

A superseded rollout stands down (a replacement, not an incident: no alert) and, once its
platform is back to the stable version, hands the lane on with a ``Release`` action; the
successor waits in PENDING until then.
"""

from __future__ import annotations

from workers.actions import EventKind
from workers.engine.phases import release, roll_back
from workers.engine.plan_walk import start
from workers.engine.run import Run
from workers.state import Phase


def on_superseded(run: Run, successor: str) -> None:
    state, reason = run.state, f"superseded by {successor}"
    if state.superseded_by not in (None, successor):
        run.event(EventKind.SUPERSEDE_IGNORED, f"{reason} ignored: {state.superseded_by} was first")
        return
    run.update(superseded_by=successor)
    if state.phase is Phase.PENDING and state.hook_due is None:
        run.update(abort_reason=reason)
        run.to_phase(Phase.ABORTED, reason)
    elif state.phase.active or state.phase is Phase.PENDING:  # a replacement: no alert
        roll_back(run, Phase.ABORTING, reason, None)
    elif state.superseded_by is None and state.awaiting is not None:
        run.event(EventKind.SUPERSEDED, f"{reason}; it starts once this rollout stands down")
    waiting = state.phase is Phase.PENDING and state.supersedes is not None
    if run.state.phase.terminal and run.state.awaiting is None and not waiting:
        release(run)


def on_released(run: Run, predecessor: str) -> None:
    state = run.state
    if predecessor != state.supersedes:
        return
    if state.phase is Phase.PENDING:
        start(run, f"{predecessor} stood down")
    elif state.phase.terminal and state.awaiting is None:
        release(run)  # superseded while it waited: pass the lane on
