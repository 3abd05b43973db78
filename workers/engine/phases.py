"""The phase changes that many handlers share: pause, promote, roll back (abort or fail), and
handing the app's rollout lane on.

Each asks the platform for what the new phase needs, records the change (``Run.to_phase``) and,
where a person should hear of it, queues a notice.
"""

from __future__ import annotations

from typing import Any

from workers.actions import EventKind, Promote, Release, Rollback
from workers.engine.hooks import cleared
from workers.engine.run import Evidence, Run
from workers.state import Awaited, Phase


def pause(
    run: Run, reason: str, notify: bool = False, actor: str | None = None, evidence: Evidence = None
) -> None:
    run.update(pause_reason=reason)
    if notify:
        run.notify("paused", reason, evidence)
    run.to_phase(Phase.PAUSED, f"paused: {reason}", actor, verdict=evidence)


def promote(run: Run, because: str, actor: str | None = None) -> None:
    cleared(run)
    run.update(awaiting=run.token(Awaited.PROMOTE), pause_reason=None, canary_weight=100)
    run.actions.append(Promote())
    run.to_phase(Phase.PROMOTING, f"promoting: {because}", actor)


def roll_back(run: Run, phase: Phase, reason: str, actor: str | None, **data: Any) -> None:
    cleared(run)
    run.actions.append(Rollback(reason, run.exposure.active_is_new))
    run.update(abort_reason=reason, pause_reason=None, canary_weight=0)
    run.update(awaiting=run.token(Awaited.ROLLBACK))
    run.to_phase(phase, f"{phase.value}: {reason}", actor, **data)


def abort(run: Run, reason: str, actor: str | None = None, evidence: Evidence = None) -> None:
    run.notify("aborted", reason, evidence)
    roll_back(run, Phase.ABORTING, reason, actor, verdict=evidence)


def release(run: Run) -> None:
    """Let the rollout that superseded this one start, now that this one has stood down."""
    successor = run.state.superseded_by
    if successor is not None:
        run.actions.append(Release(successor))
        run.event(EventKind.RELEASE, f"{successor} may start: this rollout has stood down")
