"""One call of ``step``: the state so far, the actions to return, and the few primitives every
handler writes with.

A handler never builds a ``RecordEvent`` or a ``Notify`` itself: ``event`` stamps each with the
phase, stage and attempt it happened in, ``to_phase`` is the only way a phase changes (and it
records the change), and ``notify`` gives each notice its dedupe key and its time (the step's
``now``, which the step's events carry too). The rest of the engine is
plain functions of a ``Run``, grouped by what they react to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from analyzer.policy.models import Policy
from workers.actions import Action, EventKind, Notify, NotifyKind, RecordEvent
from workers.state import Awaited, AwaitToken, Phase, RolloutState
from workers.strategies import Exposure, Pause, Stage, exposure_after, plan_for

WAIT_FOR_PERSON = Pause(None)
"""The stage of a rollout whose policy lost stages under it (its index is past the plan)."""

Evidence = dict[str, Any] | None
FOLLOW_KINDS = frozenset({"started", "stage", "awaiting_approval"})
"""Notices of a rollout going its way (outbox format 3), queued only where a route may hear them."""


class Run:
    """The rollout as this step has changed it so far, and what it asks of the world."""

    def __init__(self, state: RolloutState, policy: Policy, now: float) -> None:
        self.before = self.state = state
        self.policy, self.analysis, self.now = policy, policy.analysis, now
        self.plan = plan_for(policy.strategy)
        self.actions: list[Action] = []

    @property
    def stage(self) -> Stage:
        """The stage the cursor is on."""
        index = self.state.stage_index
        return self.plan[index] if index < len(self.plan) else WAIT_FOR_PERSON

    @property
    def exposure(self) -> Exposure:
        """Who sees the new version once the stages up to the cursor have begun."""
        return exposure_after(self.plan, self.state.stage_index)

    def token(self, awaited: Awaited) -> str:
        """What ``state.awaiting`` holds while a platform change is in flight."""
        return AwaitToken(self.state.attempt, self.state.stage_index, awaited).format()

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def event(self, kind: EventKind, message: str, actor: str | None = None, **data: Any) -> None:
        state = self.state
        context = {"phase": state.phase.value, "stage": state.stage_index, "attempt": state.attempt}
        self.actions.append(RecordEvent(kind, message, {**context, **data}, actor))

    def to_phase(self, phase: Phase, message: str, actor: str | None = None, **data: Any) -> None:
        moved = {"from": self.state.phase.value, "to": phase.value}
        self.update(phase=phase)
        self.event(EventKind.PHASE, message, actor, **moved, **data)

    def notify(self, kind: NotifyKind, reason: str, evidence: Evidence = None) -> None:
        state = self.state
        key = f"{state.id}/{state.attempt}/{kind}"
        key += f"/{state.stage_index}@{self.now:.0f}" if kind == "paused" else ""
        key += f"/{state.stage_index}" if kind == "stage" else ""
        if kind in FOLLOW_KINDS and not self.policy.alerts:
            return  # a step's notice that no route can hear: nothing to queue
        version, routes = state.spec.version, tuple(self.policy.alerts)
        if kind in ("aborted", "failed") and state.spec.from_manifest:
            reason = f"{reason}. {manifest_hint(state)}"
        notice = Notify(kind, state.id, state.app, state.namespace, version, reason, routes)
        stamped = replace(notice, evidence=evidence or {}, dedupe_key=key, occurred_at=self.now)
        self.actions.append(stamped)


def manifest_hint(state: RolloutState) -> str:
    """What an aborted rollout started from a manifest change leaves to a person: the cluster
    serves the old version again, but the manifest (in Git, for Argo CD or Flux) still names the
    new one, and Canarist never writes to Git."""
    return (
        f"The cluster serves the previous version again; the manifest of Deployment "
        f"{state.namespace}/{state.app} still names {state.spec.version}: revert it in Git"
    )
