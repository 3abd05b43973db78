"""A wake-up with no look to take: time passed (``Tick``), or the platform answered about the
change the state awaits (``PlatformReady``, ``PlatformFailed``) or about one it lost
(``PlatformDrifted``).

What an answer means depends on the phase it finds the rollout in, so each answer has a table
from phase to handler; a phase missing from a table ignores that answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from analyzer.policy.hooks import HookPoint
from workers.actions import EventKind
from workers.engine.hooks import after
from workers.engine.phases import release, roll_back
from workers.engine.plan_walk import advance, arm, reassert, start
from workers.engine.run import Run
from workers.state import Awaited, Phase


def on_tick(run: Run) -> None:
    if run.state.phase is Phase.PENDING and run.state.supersedes is None:
        if run.state.hook_due is None:  # else its pre_rollout hooks are being asked
            start(run, "submitted")
        return
    reassert(run)
    advance(run)


# -- the platform did what the state awaits ----------------------------------------------------
def on_ready(run: Run, token: str) -> None:
    if run.state.awaiting is None or token != run.state.awaiting:
        return  # stale or duplicate
    run.update(awaiting=None)
    handler = ON_READY.get(run.state.phase)
    if handler is not None:
        handler(run)


def _stage_applied(run: Run) -> None:
    """The stage's change is live: the analysis window opens after the warm-up."""
    run.event(EventKind.PLATFORM_READY, f"the platform is ready: {run.stage.label}")
    if run.state.window_start is None:
        warm_up = run.analysis.begin_after.total_seconds()
        run.update(window_start=run.now + warm_up)
        arm(run)
    advance(run)


def _promoted(run: Run) -> None:
    state = run.state
    version = state.spec.version
    run.to_phase(Phase.PROMOTED, f"promoted: {version} is the stable version")
    run.notify("promoted", f"{version} is the stable version of {state.app}")
    release(run)
    after(run, HookPoint.POST_PROMOTION)


def _rolled_back(run: Run) -> None:
    run.to_phase(Phase.ABORTED, f"rolled back: {run.state.abort_reason}")
    release(run)
    after(run, HookPoint.POST_ROLLBACK)


def _rolled_back_after_failure(run: Run) -> None:
    run.event(EventKind.ROLLED_BACK, "the rollback after the failure is complete")
    release(run)
    after(run, HookPoint.POST_ROLLBACK)


ON_READY: Mapping[Phase, Callable[[Run], None]] = {
    Phase.PROGRESSING: _stage_applied,
    Phase.PAUSED: _stage_applied,
    Phase.AWAITING_APPROVAL: _stage_applied,
    Phase.PROMOTING: _promoted,
    Phase.ABORTING: _rolled_back,
    Phase.FAILED: _rolled_back_after_failure,
}


# -- the platform cannot do it -----------------------------------------------------------------
def on_failed(run: Run, reason: str, token: str | None) -> None:
    if token is not None and token != run.state.awaiting:
        return  # about something no longer asked for
    handler = ON_FAILED.get(run.state.phase)
    if handler is not None:
        handler(run, reason)


def _fail(run: Run, reason: str) -> None:
    """Until the promotion is done, a platform failure rolls the new version back."""
    run.notify("failed", reason)
    roll_back(run, Phase.FAILED, reason, None)


def _rollback_failed(run: Run, reason: str) -> None:
    if run.state.awaiting is not None:
        run.event(EventKind.ROLLBACK_RETRY, f"the rollback is not done ({reason}); asking again")
        reassert(run)


ON_FAILED: Mapping[Phase, Callable[[Run, str], None]] = {
    Phase.PROGRESSING: _fail,
    Phase.PAUSED: _fail,
    Phase.AWAITING_APPROVAL: _fail,
    Phase.PROMOTING: _fail,
    Phase.ABORTING: _rollback_failed,
    Phase.FAILED: _rollback_failed,
}


# -- the platform no longer matches ------------------------------------------------------------
def on_drifted(run: Run, detail: str) -> None:
    """The platform no longer matches what the stage applied (a router died, an object was
    edited): re-apply it, and judge only data from after it is back."""
    state = run.state
    if not state.phase.active or state.awaiting is not None:
        return
    run.update(awaiting=run.token(Awaited.REPAIR), window_start=None, last_look_at=None)
    arm(run)
    index, total = state.stage_index + 1, len(run.plan)
    run.event(
        EventKind.PLATFORM_DRIFT,
        f"the platform no longer matches stage {index}/{total} ({detail}): re-applying it; "
        "the analysis window starts again once it matches",
        detail=detail,
    )
    reassert(run)
