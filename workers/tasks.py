"""The Celery tasks, thin and idempotent, over plain functions that take a ``Runtime``.

``canarist.advance(rollout_id, revision)`` walks one rollout one step (see workers/engine)::

    take the rollout's lease (held elsewhere: try again once it would have expired; a thread
    renews it while the task works) -> load; revision moved on: stop (stale)
    observe (observations.py): state.awaiting -> platform readiness against
             engine.platform_wants (Ready/NotYet/Failed); an active rollout awaiting nothing ->
             the same check as a watch (NotYet: PlatformDrifted, Failed: PlatformFailed), then
             state.analysis_due(now) -> analyzer.analyze over the window, against Prometheus
             else Tick
    stepping.step_and_save: engine.step -> save (compare-and-set + lease check; events,
             outbox) -> wake the outbox if it got items; Conflict or LeaseLost: stop
    apply the platform actions in order
    requeue advance(id, new revision) with countdown min(Schedule.at - now, max_countdown)

The analysis runs inline, within the task and its lease, rather than as a task of its own: its
result is only valid for the revision it was asked at, a handful of range queries take seconds
(PrometheusSource bounds each request), and a failed query is data (an ERROR look), never an
exception. A separate ``canarist.analysis`` queue would add a round trip and a second place where
a revision can go stale, for no isolation we need: alerts, the one thing that must never wait
behind an analysis, have their own queue.

``canarist.deliver_outbox()`` delivers a batch of saved alerts and hand-overs (delivery.py).
``canarist.reconcile()`` re-enqueues every unfinished rollout overdue by more than a grace
period: a lost message (a killed worker's countdown, a Redis restart) delays a rollout, never
strands it (a revision is re-enqueued again only once it has been late half as long again, so
overloaded workers' late messages are not doubled every period); it also heals what a platform
serves outside any rollout (the local platform's router). Beat sends both with ``period``: a
run of a period that another beat's run already did is skipped (a lock in the store), so two
beats are safe and one of them may die. ``canarist.submit_rollout(payload, actor="celery")`` is
the Celery door (workers/celery_door.py says what it takes and answers).

No task raises on a store or broker failure it can outlive: it logs, requeues if it can, and
otherwise leaves the rollout to the reconciler (acks_late acks a failed task: a retry loop of
a poison message is worse than a late step). A rollout whose record this release cannot read
(a newer release's, mid-upgrade: store/records.py) is logged and left as it is, among the
due rollouts, where the reconciler of a release that reads it finds it and carries it on.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from analyzer.policy import Policy
from analyzer.sources.base import MetricSource
from workers import metrics
from workers.actions import Action, PlatformAction, Schedule
from workers.celery_door import submit
from workers.delivery import Delivery
from workers.engine import platform_wants
from workers.errors import (
    Conflict,
    CorruptRecord,
    IntakeError,
    LeaseLost,
    NotFound,
    TemporaryError,
    WorkerError,
)
from workers.hooks import HookCaller
from workers.intake import Intake
from workers.leases import renewed
from workers.metrics import RolloutLog, rollout_log
from workers.observations import observe
from workers.platforms import Failed, Platform, Ready
from workers.state import Phase, RolloutState
from workers.stepping import step_and_save
from workers.store import StateStore

ADVANCE, DELIVER = "canarist.advance", "canarist.deliver_outbox"
RECONCILE, SUBMIT = "canarist.reconcile", "canarist.submit_rollout"
POLICY_RETRY_SECONDS = 60.0  # a rollout whose policy cannot be read waits this long
PERIODIC_LOCK = "periodic:{task}"  # the lease a beat-sent run of ``task`` takes for its period
REQUEUE_HOLD = "requeued:{rollout}:{revision}"  # the reconciler re-enqueued this revision
# Celery message priorities (over Redis, the lower is taken first; kombu keeps one list per
# priority step and a worker pops them in that order). URGENT is also what a message sent with
# no priority gets: a person's command, an event, a submission from any Celery client, and a
# rolling-back rollout's next step; ROUTINE is a rollout's own timetable (its next look, sent
# when due by the dispatcher or as a countdown, and the reconciler's re-enqueues). So under
# overload an abort waits for the task in hand, not behind every late look.
URGENT, ROUTINE = 0, 6
URGENT_BUSY_RETRY = 1.0  # s: an urgent task that finds the lease held tries again this soon


class AdvanceResult(StrEnum):
    """What one ``advance`` did; the values are what logs and tests have always seen."""

    STEPPED = "stepped"  # observed, stepped and saved; the platform actions applied
    STALE = "stale"  # the revision moved on (or another task won the save): nothing to do
    IDLE = "idle"  # the revision is current but nothing is due (a finished rollout)
    BUSY = "busy"  # another task holds the lease: requeued for when it would have expired
    RETRY = "retry"  # a temporary failure (the store, a lease): requeued after its wait
    GONE = "gone"  # the rollout does not exist
    UNREADABLE = "unreadable"  # a record this release cannot read: left as it is
    NO_POLICY = "no-policy"  # its policy cannot be read: requeued after POLICY_RETRY_SECONDS
    BLOCKED = "blocked"  # the rollout it supersedes cannot be told: requeued likewise


@dataclass
class Runtime:
    """What the tasks work with, built once per worker process (celery_app.py)."""

    store: StateStore
    intake: Intake
    source: MetricSource
    platforms: Callable[[str], Platform]
    delivery: Delivery
    clock: Callable[[], float]
    # advance(id, revision) after countdown seconds; urgent=True: ahead of the routine steps
    requeue: Callable[..., None]
    wake_outbox: Callable[[], None]
    heal: Callable[[], Sequence[str]] = tuple  # platform repairs outside rollouts, described
    lease_seconds: float = 15.0  # renewed every third of it while a task works
    max_countdown: float = 1800.0  # half the broker's visibility timeout
    reconcile_grace: float = 15.0
    worker_id: str = "worker"
    hooks: HookCaller | None = None  # the policies' HTTP hooks (None: no hook route defined)


def advance(
    runtime: Runtime, rollout_id: str, revision: int, urgent: bool = False
) -> AdvanceResult:
    """One step of one rollout; returns what happened. ``urgent``: this task came ahead of the
    routine steps (a person's command, an event, a rollback: ``urgent_step`` says which), and
    goes on so when it has to wait (a lease held, a store busy)."""
    log, owner = rollout_log(rollout_id), f"{runtime.worker_id}/{uuid.uuid4().hex[:8]}"
    try:
        if not runtime.store.leases.acquire(rollout_id, owner, runtime.lease_seconds):
            # Another task holds it: a live one moves the revision on and this one is then
            # stale; a dead one's lease runs out within lease_seconds, and this one carries on.
            metrics.STALE_TASKS.labels("leased").inc()
            # Urgent: the holder is most likely a routine step about to find its revision
            # stale (a command saved a new one), so a second, not half a lease.
            wait = URGENT_BUSY_RETRY if urgent else runtime.lease_seconds / 2
            _requeue(runtime, rollout_id, revision, wait, log, urgent)
            return AdvanceResult.BUSY
        try:
            with renewed(runtime.store.leases, rollout_id, owner, runtime.lease_seconds, log):
                return _advance_leased(runtime, rollout_id, revision, owner, log, urgent)
        finally:
            with contextlib.suppress(WorkerError):
                runtime.store.leases.release(rollout_id, owner)
    except TemporaryError as exc:
        log.warning("revision %d: %s; again in %.0f s", revision, exc, exc.wait_seconds())
        _requeue(runtime, rollout_id, revision, exc.wait_seconds(), log, urgent)
        return AdvanceResult.RETRY


def urgent_step(state: RolloutState) -> bool:
    """Whether a rollout's next step goes ahead of the routine ones: while it rolls back. A
    rollback must not wait behind the looks of overloaded workers (README, Scale)."""
    return state.phase is Phase.ABORTING


def _advance_leased(
    runtime: Runtime,
    rollout_id: str,
    revision: int,
    owner: str,
    log: RolloutLog,
    urgent: bool,
) -> AdvanceResult:
    try:
        loaded = runtime.store.load(rollout_id)
    except NotFound:
        return AdvanceResult.GONE
    except CorruptRecord as exc:
        log.error("revision %d cannot be read, so it is left as it is: %s", revision, exc)
        return AdvanceResult.UNREADABLE
    state, stored = loaded
    if stored != revision or state.next_due_at is None:
        result = AdvanceResult.STALE if stored != revision else AdvanceResult.IDLE
        metrics.STALE_TASKS.labels(result).inc()
        return result
    try:
        policy = runtime.intake.policy_for(state)  # pinned at submit
    except IntakeError as exc:
        log.error("policy %s: %s; again in %.0f s", state.policy, exc, POLICY_RETRY_SECONDS)
        _requeue(runtime, rollout_id, revision, POLICY_RETRY_SECONDS, log, urgent)
        return AdvanceResult.NO_POLICY
    if state.phase is Phase.PENDING and state.supersedes is not None:
        try:  # heals a submission that crashed between creating this and telling its predecessor
            runtime.intake.ensure_superseded(state)
        except (IntakeError, CorruptRecord) as exc:
            log.error("cannot supersede %s: %s", state.supersedes, exc)
            _requeue(runtime, rollout_id, revision, POLICY_RETRY_SECONDS, log, urgent)
            return AdvanceResult.BLOCKED
    now = runtime.clock()
    metrics.record_lateness(state.next_due_at, now)
    observation = observe(runtime.platforms, runtime.source, state, policy, now, log, runtime.hooks)
    try:
        stepped = step_and_save(
            runtime.store,
            loaded,
            policy,
            observation,
            now,
            lease_owner=owner,
            wake_outbox=runtime.wake_outbox,
        )
    except (Conflict, LeaseLost) as exc:
        log.info("revision %d lost the race (%s): another task carries on", revision, exc)
        metrics.STALE_TASKS.labels("conflict").inc()
        return AdvanceResult.STALE
    metrics.record_step(stepped.actions)
    for event in stepped.events:
        log.info("%s: %s", event.kind, event.message)
    wake_in = apply_platform(runtime, stepped.state, policy, stepped.actions, log)
    _schedule(runtime, stepped.state, stepped.revision, stepped.actions, wake_in, log)
    return AdvanceResult.STEPPED


def apply_platform(
    runtime: Runtime,
    state: RolloutState,
    policy: Policy,
    actions: Sequence[Action],
    log: RolloutLog,
) -> float | None:
    """Apply the platform actions in order; return how soon to wake the rollout instead of its
    schedule: 0 when what the state awaits is already settled (ready, or failed for good: the
    next step should run now, not after a poll), the platform's own wait on a temporary failure
    (a busy apiserver: the task gives the worker back and comes again after it, never sleeping
    inside), None to keep the schedule."""
    asks = [action for action in actions if isinstance(action, PlatformAction)]
    if not asks and state.awaiting is None:
        return None
    try:
        platform = runtime.platforms(state.spec.platform)
        for action in asks:
            platform.apply(state, action)
        if state.awaiting is None:
            return None
        answer = platform.readiness(state, platform_wants(state, policy))
        return 0.0 if isinstance(answer, Ready | Failed) else None
    except TemporaryError as exc:
        log.warning("platform %s: %s; again in %.0f s", state.spec.platform, exc,
                    exc.wait_seconds())  # fmt: skip
        return exc.wait_seconds()
    except WorkerError as exc:  # the engine re-asserts at the next wake-up
        log.warning("platform %s: %s; asked again at the next wake-up", state.spec.platform, exc)
        return None


def _schedule(
    runtime: Runtime,
    state: RolloutState,
    revision: int,
    actions: Sequence[Action],
    wake_in: float | None,
    log: RolloutLog,
) -> None:
    wake = [action.at for action in actions if isinstance(action, Schedule)]
    if not wake:
        return
    scheduled = max(0.0, min(wake) - runtime.clock())
    delay = scheduled if wake_in is None else min(scheduled, wake_in)
    _requeue(runtime, state.id, revision, delay, log, urgent_step(state))


def _requeue(
    runtime: Runtime,
    rollout_id: str,
    revision: int,
    delay: float,
    log: RolloutLog,
    urgent: bool = False,
) -> None:
    countdown = min(max(0.0, delay), runtime.max_countdown)
    try:
        runtime.requeue(rollout_id, revision, countdown, urgent=urgent)
    except Exception as exc:  # the broker is down too: the reconciler will find it overdue
        log.warning("could not requeue revision %d (%s): the reconciler will", revision, exc)


def first_of_period(runtime: Runtime, task: str, period: float | None) -> bool:
    """Whether this run of a periodic ``task`` is the first of its ``period`` (None: a run not
    sent by beat, always made). Several beats may send the same schedule; one run a period
    does the work, whichever beat's message a worker takes first."""
    if period is None:
        return True
    owner = f"{runtime.worker_id}/{uuid.uuid4().hex[:8]}"
    lock = PERIODIC_LOCK.format(task=task)
    return runtime.store.leases.acquire(lock, owner, max(0.001, period * 0.9))


def reconcile(runtime: Runtime, limit: int = 500, period: float | None = None) -> list[str]:
    """Re-enqueue unfinished rollouts overdue by more than ``reconcile_grace`` seconds, and let
    the platforms heal what they serve outside rollouts. Skipped when another run of this
    ``period`` was first (see ``first_of_period``)."""
    if not first_of_period(runtime, RECONCILE, period):
        return []
    log = metrics.worker_log()
    try:
        for repair in runtime.heal():
            log.warning("healed: %s", repair)
    except (WorkerError, TemporaryError) as exc:
        log.error("could not heal the platform: %s", exc)
    now = runtime.clock()
    overdue = runtime.store.due(now - runtime.reconcile_grace, limit)
    owner = f"{runtime.worker_id}/{uuid.uuid4().hex[:8]}"  # a hold is never this run's own
    for rollout_id in overdue:
        try:
            state, revision = runtime.store.load(rollout_id)
        except NotFound:
            continue
        except CorruptRecord as exc:  # the others are still re-enqueued
            rollout_log(rollout_id).error("overdue, but cannot be read: %s", exc)
            continue
        # Once per revision until it has been late half as long again: a lost message is
        # replaced at once, while the messages of overloaded workers (late, not lost) are not
        # doubled every period, which would only overload them more.
        late = now - (state.next_due_at or now)
        hold = REQUEUE_HOLD.format(rollout=rollout_id, revision=revision)
        if not runtime.store.leases.acquire(hold, owner, max(runtime.reconcile_grace, late / 2)):
            continue
        rollout_log(rollout_id).info("overdue at revision %d: re-enqueued", revision)
        runtime.requeue(rollout_id, revision, 0.0, urgent=urgent_step(state))
    return overdue


def register(app: Any, runtime: Callable[[], Runtime]) -> None:
    """Register the four tasks on a Celery ``app``; ``runtime()`` is built lazily per process."""

    def advance_task(task: Any, rollout_id: str, revision: int) -> str:
        # An urgent message (Celery priority URGENT, or none: any sender's default) stays
        # urgent when it has to be requeued. The plain word: Celery logs what a task returns.
        priority = (task.request.delivery_info or {}).get("priority")
        urgent = not isinstance(priority, int) or priority < ROUTINE
        return advance(runtime(), rollout_id, revision, urgent).value

    def deliver_task(period: float | None = None) -> int:
        if not first_of_period(runtime(), DELIVER, period):
            return 0
        return len(runtime().delivery.run())

    def reconcile_task(period: float | None = None) -> int:
        return len(reconcile(runtime(), period=period))

    def submit_task(task: Any, payload: dict[str, Any], actor: str = "celery") -> dict[str, Any]:
        try:
            return submit(runtime().intake, payload, actor)
        except TemporaryError as exc:  # the store is down: try the submission again later
            raise task.retry(exc=exc, countdown=exc.wait_seconds(), max_retries=30) from exc

    # shared=False: Celery would otherwise attach these closures, and so this runtime, to every
    # app created later in the process.
    app.task(name=ADVANCE, bind=True, ignore_result=True, shared=False)(advance_task)
    app.task(name=DELIVER, ignore_result=True, shared=False)(deliver_task)
    app.task(name=RECONCILE, ignore_result=True, shared=False)(reconcile_task)
    app.task(name=SUBMIT, bind=True, shared=False)(submit_task)
