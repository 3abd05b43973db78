"""The one way in: every door (HTTP API, CLI through the API, Celery task) validates a job and
changes a rollout through this module, so they cannot disagree.

``RolloutJob`` (workers/job.py) is the validated, bounded job; ``Intake`` does the operations:

- ``submit(job, actor)``: check the job against its policy (a router the platform needs, alert
  routes the settings define, every query rendered with the job's args), pin that policy (its
  text kept in the store by digest, workers/policies.py; the rollout keeps the digest and runs
  under it to the end, retries included, whatever becomes of the file), create the rollout
  PENDING and due now, make it the app's latest (superseding the previous one, retried when
  the lane moves), tell the previous one ``Superseded`` and enqueue ``advance``. An idempotency
  key belongs to the job's namespace and is bound to the digest of the whole job for a day
  (``idempotency_ttl``): the same job again returns the rollout it created (``created=False``),
  a different job under the key is refused without a word about the other job.
- ``command(id, kind, actor)``: a person's abort/promote/pause/resume/retry; a
  ``CommandResult``: applied, or ignored and why (the engine's reason, as recorded).
- ``get(id)``, ``list(namespace)``: read-only.
- ``tell(id, observation)``: the load -> step -> compare-and-set save -> enqueue path that
  commands, ``Superseded`` and ``Released`` share (retried on Conflict), through the same
  ``stepping.step_and_save`` as the ``advance`` task, but without a lease (it says why). Platform
  actions are not applied here: the enqueued ``advance`` task applies them (the engine re-asserts
  what its state awaits), so the API process needs no platform credentials.
- ``record(id, event)``: an audit event that is no step (an alert given up), saved the same way.

Errors (drawn in workers/errors.py), for the doors to translate (the API: 404, 422, 404, 503):
``UnknownPolicyError``, ``InvalidJobError`` (args refused, alert route undefined, policy file
invalid, idempotency key used for another job), the store's ``NotFound`` (no rollout with that
id) and ``TemporaryError`` / ``StoreUnavailable`` (the store is busy or down: retry later).
"""

from __future__ import annotations

import builtins
import contextlib
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

from analyzer.analysis import check_args
from analyzer.errors import PolicyError, TemplateError
from analyzer.policy import Policy
from analyzer.policy.strategy import StrategyType
from analyzer.policy.traffic import Router, sticky_refusal
from workers.actions import (
    CommandKind,
    EventKind,
    ManualCommand,
    Observation,
    RecordEvent,
    Superseded,
)
from workers.engine import refusal
from workers.errors import (
    Conflict,
    InvalidJobError,
    NotFound,
    TemporaryError,
)
from workers.job import RolloutJob, rollout_traffic
from workers.load.checks import load_refusal
from workers.policies import PinnedPolicies, PolicyDir
from workers.state import RolloutState
from workers.stepping import Stepped, split, step_and_save
from workers.store import IDEMPOTENCY_TTL_SECONDS, AuditEvent, IdempotencyKey, StateStore, Stored

CAS_ATTEMPTS = 8
# The platforms that start a fresh baseline beside the canary (analysis.baseline fresh); memory
# is the tests' fake, which records actions and starts nothing.
FRESH_BASELINE_PLATFORMS = frozenset({"kubernetes", "local", "memory"})
COMMANDS: tuple[str, ...] = get_args(CommandKind)
Enqueue = Callable[[str, int], None]

__all__ = [
    "CommandResult",
    "Intake",
    "PolicyDir",
    "RolloutJob",
    "Submitted",
    "rollout_traffic",
    "split",
]


def invalid_policy(name: str, error: PolicyError) -> InvalidJobError:
    # The file's name and line, not the server's directory: callers see this message.
    problems = "\n".join(problem.render(Path(error.source).name) for problem in error.problems)
    return InvalidJobError(f"policy {name!r} is invalid:\n{problems}")


@dataclass(frozen=True)
class CommandResult:
    """What a person's command did: the rollout after it and, when the command does not apply
    to the rollout as it is, why (the engine's words, as the audit trail records them)."""

    state: RolloutState
    ignored: str | None = None

    @property
    def applied(self) -> bool:
        return self.ignored is None


@dataclass(frozen=True)
class Submitted:
    rollout_id: str
    created: bool  # False: the idempotency key named an existing rollout
    superseded: str | None  # the app's previous rollout, told to stand down


class Intake:
    """Validated submissions and commands over a StateStore; see the module docstring."""

    def __init__(
        self,
        store: StateStore,
        policy_dir: Path,
        clock: Callable[[], float],
        enqueue: Enqueue,
        *,
        alert_routes: Collection[str],
        hook_routes: Collection[str] = (),
        on_outbox: Callable[[], None] | None = None,
        idempotency_ttl: float = IDEMPOTENCY_TTL_SECONDS,
    ) -> None:
        """``enqueue(id, revision)`` schedules ``advance`` now; ``on_outbox()`` (optional) wakes
        the outbox delivery after a save queued an alert or a hand-over. ``alert_routes`` are
        the route names the service's settings define: a policy naming another is refused at
        submit, not discovered when its alert cannot be delivered. An idempotency key names
        its rollout for ``idempotency_ttl`` seconds (a day by default). ``hook_routes`` are
        the hook route names the settings define, checked at submit the same way."""
        self.store, self.clock = store, clock
        self.policies = PolicyDir(policy_dir)
        self.pinned = PinnedPolicies(store.policies)
        self.alert_routes = frozenset(alert_routes)
        self.hook_routes = frozenset(hook_routes)
        self.idempotency_ttl = idempotency_ttl
        self._enqueue, self._on_outbox = enqueue, on_outbox

    # -- submit ---------------------------------------------------------------------------------
    def policy(self, name: str) -> Policy:
        """The named policy file's; UnknownPolicyError, or InvalidJobError naming file and line."""
        try:
            return self.policies.load(name)
        except PolicyError as exc:
            raise invalid_policy(name, exc) from exc

    def policy_for(self, state: RolloutState) -> Policy:
        """The policy a rollout runs under: the one it pinned at submit (by digest, from the
        store), or, for a rollout stored before pinning, its policy file as it is now."""
        if state.policy_digest is None:
            return self.policy(state.policy)
        return self.pinned.load(state.policy, state.policy_digest)

    def check(self, job: RolloutJob, policy: Policy | None = None) -> tuple[Policy, dict[str, str]]:
        """The job's policy (``policy``, or its file's) and its resolved args, or the reason the
        job cannot run: a router the platform needs, an alert route the service lacks, an arg a
        query would refuse."""
        policy = policy if policy is not None else self.policy(job.policy)
        targeted = policy.strategy.type == StrategyType.TARGETED
        if job.platform == "kubernetes" and targeted and policy.traffic.router == Router.REPLICAS:
            raise InvalidJobError(
                f"policy {job.policy!r} targets an audience, which on Kubernetes needs a router "
                "that matches requests: set traffic.router to gateway_api or nginx_ingress "
                "(replica counts cannot send a chosen audience to the canary)"
            )
        sticky = policy.traffic.sticky
        refusal = sticky_refusal(policy.traffic.router, sticky.key()) if sticky else None
        if job.platform == "kubernetes" and refusal is not None:
            raise InvalidJobError(f"policy {job.policy!r}: traffic.sticky: {refusal}")
        if policy.analysis.baseline == "fresh" and job.platform not in FRESH_BASELINE_PLATFORMS:
            raise InvalidJobError(
                f"policy {job.policy!r} compares the canary with a fresh baseline, which platform "
                f"{job.platform} cannot start (it runs on "
                f"{', '.join(sorted(FRESH_BASELINE_PLATFORMS))}): use one of those, or "
                "analysis.baseline stable"
            )
        if job.fresh_baseline is not None and policy.analysis.baseline != "fresh":
            raise InvalidJobError(
                f"fresh_baseline is given, but policy {job.policy!r} compares the canary with the "
                "stable fleet (analysis.baseline stable): drop it, or use a policy with "
                "analysis.baseline fresh"
            )
        load_refused = load_refusal(policy, job.platform, self.policies.root)
        if load_refused:
            raise InvalidJobError(f"policy {job.policy!r} {load_refused}")
        undefined = [route for route in policy.alerts if route not in self.alert_routes]
        if undefined:
            defined = ", ".join(sorted(self.alert_routes)) or "none"
            raise InvalidJobError(
                f"policy {job.policy!r} sends alerts to {', '.join(map(repr, undefined))}, which "
                f"the service's settings do not define (alert_routes defined: {defined}); its "
                "alerts would be lost"
            )
        unrouted = [hook for hook in policy.hooks if hook.route not in self.hook_routes]
        if unrouted:
            defined = ", ".join(sorted(self.hook_routes)) or "none"
            named = ", ".join(f"{hook.name!r} ({hook.route!r})" for hook in unrouted)
            raise InvalidJobError(
                f"policy {job.policy!r} calls hooks {named} whose routes the service's settings "
                f"do not define (hook_routes defined: {defined}; set CANARIST_HOOK_ROUTES)"
            )
        try:
            return policy, check_args(policy, job.args)
        except TemplateError as exc:
            raise InvalidJobError(f"args: {exc}") from exc

    def submit(self, job: RolloutJob, actor: str) -> Submitted:
        read = self.policies.read(job.policy)  # checked and pinned as this one read
        if read.error is not None:
            raise invalid_policy(job.policy, read.error)
        policy, args = self.check(job, read.loaded())
        fresh = policy.analysis.baseline == "fresh"
        spec = job.spec(
            args,
            policy.strategy.type,
            policy.traffic,
            fresh_baseline=fresh,
            pod_label=policy.analysis.pod_label,
        )
        now = self.clock()
        summary = f"{job.app} {job.version} in {job.namespace} with policy {job.policy}"
        event = RecordEvent(
            EventKind.SUBMITTED,
            f"submitted by {actor}: {summary} on {job.platform}",
            job.model_dump(mode="json", exclude={"idempotency_key"}),
            actor,
        )
        key = job.idempotency_key
        idempotency = (
            None if key is None else IdempotencyKey(key, job.digest(), self.idempotency_ttl)
        )
        digest = self.pinned.pin(read)  # before the rollout: it never exists without its policy
        for _ in range(CAS_ATTEMPTS):
            latest = self.store.latest_for(job.app, job.namespace)
            state = RolloutState.new(
                f"{job.app}-{uuid.uuid4().hex[:12]}",
                app=job.app,
                namespace=job.namespace,
                policy=job.policy,
                spec=spec,
                now=now,
                supersedes=latest,
                policy_digest=digest,
            )
            state = replace(state, next_due_at=now)  # the reconciler's safety net from the start
            try:
                created = self.store.create(state, idempotency, events=[event])
            except Conflict:
                continue  # another submission for the app won the lane: supersede it instead
            break
        else:
            raise TemporaryError(f"{job.app} in {job.namespace}: submissions keep racing")
        if not created.created:
            if not created.same_job:
                # Say nothing of the other job, not even that a rollout exists: only the key.
                raise InvalidJobError(
                    f"idempotency key {key!r} was already used in namespace {job.namespace!r} "
                    f"for a different job within the last {self.idempotency_ttl / 3600:g} h; "
                    "use a new key"
                )
            return self._replayed(created.rollout_id)
        if latest is not None:
            self._stand_down(latest, state.id)
        self._enqueue(state.id, created.revision)
        return Submitted(state.id, True, latest)

    def _replayed(self, rollout_id: str) -> Submitted:
        existing = self.store.load(rollout_id).state
        if existing.supersedes is not None:  # heal a crash between create and stand-down
            self.ensure_superseded(existing)
        return Submitted(rollout_id, False, existing.supersedes)

    def ensure_superseded(self, state: RolloutState) -> None:
        """Make sure the rollout ``state`` replaces knows it (idempotent)."""
        predecessor = state.supersedes
        if predecessor is None:
            return
        try:
            told = self.store.load(predecessor).state.superseded_by == state.id
        except NotFound:
            return
        if not told:
            self._stand_down(predecessor, state.id)

    def _stand_down(self, predecessor: str, successor: str) -> None:
        # A predecessor that is gone has nothing to stand down.
        with contextlib.suppress(NotFound):
            self.tell(predecessor, Superseded(successor))

    # -- commands and observations --------------------------------------------------------------
    def command(
        self,
        rollout_id: str,
        kind: CommandKind,
        actor: str,
        full: bool = False,
        reason: str = "",
    ) -> CommandResult:
        """Apply a person's command: applied, or ignored and why (recorded as ignored too)."""
        if kind not in COMMANDS:
            raise InvalidJobError(f"unknown command {kind!r}; known: {', '.join(COMMANDS)}")
        saved = self._stepped(rollout_id, ManualCommand(kind, actor, full, reason))
        return CommandResult(saved.state, refusal(saved.actions))

    def tell(
        self, rollout_id: str, observation: Observation, events: Sequence[RecordEvent] = ()
    ) -> RolloutState:
        """load -> step -> save (compare-and-set, retried on Conflict) -> enqueue advance.

        Without the rollout's lease, on purpose: ``stepping.step_and_save`` says why."""
        return self._stepped(rollout_id, observation, events).state

    def _stepped(
        self, rollout_id: str, observation: Observation, events: Sequence[RecordEvent] = ()
    ) -> Stepped:

        def stepped(loaded: Stored) -> Stepped:
            policy, now = self.policy_for(loaded.state), self.clock()
            return step_and_save(
                self.store,
                loaded,
                policy,
                observation,
                now,
                events=events,
                wake_outbox=self._on_outbox,
            )

        return self._until_saved(rollout_id, stepped)

    def record(self, rollout_id: str, event: RecordEvent) -> None:
        """Add ``event`` to the audit trail of a rollout without stepping it (an alert given up,
        say): the same state stamped now, saved with compare-and-set, and ``advance`` enqueued
        for the new revision, since the task queued for the old one will find it stale."""

        def stamped(loaded: Stored) -> Stepped:
            state = replace(loaded.state, updated_at=max(loaded.state.updated_at, self.clock()))
            saved = self.store.save(state, loaded.revision, events=[event])
            return Stepped(state, saved, (), (event,))

        self._until_saved(rollout_id, stamped)

    def _until_saved(self, rollout_id: str, change: Callable[[Stored], Stepped]) -> Stepped:
        """Load, ``change`` and save until a save wins its compare-and-set; then enqueue
        ``advance`` for the saved revision if the rollout is due at all."""
        for _ in range(CAS_ATTEMPTS):
            loaded = self.store.load(rollout_id)  # NotFound: "no rollout <id>", the doors' 404
            try:
                saved = change(loaded)
            except Conflict:
                continue
            if saved.state.next_due_at is not None:
                self._enqueue(rollout_id, saved.revision)
            return saved
        raise TemporaryError(f"rollout {rollout_id} keeps changing under us; try again", 1.0)

    # -- reading --------------------------------------------------------------------------------
    def get(self, rollout_id: str) -> tuple[RolloutState, builtins.list[AuditEvent]]:
        """The rollout and its whole audit trail, oldest first."""
        state = self.store.load(rollout_id).state  # NotFound: "no rollout <id>"
        trail: builtins.list[AuditEvent] = []
        while page := self.store.events(rollout_id, trail[-1].id if trail else None, 500):
            trail.extend(page)
        return state, trail

    def list(self, namespace: str | None = None) -> builtins.list[RolloutState]:
        """Rollouts, newest first, in ``namespace`` or in all (the newest 100)."""
        return [stored.state for stored in self.store.list_rollouts(namespace)]
