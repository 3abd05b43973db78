"""Outbox delivery: the side effects a step saved, carried out at least once, retried with backoff.

A step's alerts (``Notify``) and lane hand-overs (``Release``) are saved atomically with the step
in the store's outbox; this module claims due items and settles each:

- ``Notify``: the store keeps one item per (notice, route), so each route is settled on its own
  and a retry never posts again where delivery succeeded. The item is built into a ``Notice``
  (``occurred_at`` is the transition's time, which the engine put on the ``Notify``, so every
  retry renders the same alert) and posted. A temporary failure: retried after exponential
  backoff, or after the receiver's ``Retry-After`` when that is longer. A permanent failure (a
  4xx, a route the service does not configure), or ``Backoff.give_up_after`` failed attempts
  (about a day): the item is given up, and that is never silent: an ``alert_undelivered`` event
  on the rollout's audit trail (``canarist status`` shows it), ``canarist_alerts_undelivered_total``
  and an error log line.
- ``Release``: the successor is told ``Released`` through the intake's load -> step -> save path;
  retried until it is (the successor's lane depends on it), given up only when the successor
  does not exist (``hand_over``).
- A route receives only the kinds its settings' ``events`` name (``DEFAULT_EVENTS`` without
  them): an item of another kind is settled without a post, so a route that follows
  ``promoted`` gets one message per promotion and a pager only what should page.
- An item in a format this release does not read (a newer release's, during an upgrade) is
  retried with backoff and never given up: a worker of a release that reads it delivers it.

The dedupe key (the engine's ``{id}/{attempt}/{kind}``, per route ``…>{route}``) makes each
transition's alert one item per route, delivered once; a worker that dies mid-post leaves its
claim to expire and the item is posted again, which Alertmanager merges (same labels) and
webhooks dedupe (``Idempotency-Key``).

Delivery runs as its own task on its own queue (``canarist.notify``): a slow or failing receiver
delays the next alert, never a rollout's step or an abort's rollback.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import get_args

from workers.actions import EventKind, Notify, NotifyKind, RecordEvent, Release
from workers.errors import (
    CanaristError,
    CorruptRecord,
    DeliveryError,
    IntakeError,
    NotFound,
    PermanentDeliveryError,
    PermanentError,
    TemporaryDeliveryError,
    TemporaryError,
)
from workers.metrics import (
    ALERT_DELIVERIES,
    ALERT_FAILURES,
    ALERTS_UNDELIVERED,
    RolloutLog,
    rollout_log,
)
from workers.notify.base import Notice, Notifier
from workers.settings import DEFAULT_EVENTS
from workers.store import OutboxItem, StateStore

_KINDS: tuple[str, ...] = get_args(NotifyKind)
_PHASES_OF = {"aborted": ("aborting", "aborted"), "failed": ("failed",), "promoted": ("promoted",)}
_ERROR_CHARS = 300  # of a receiver's error kept in the audit event


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry number ``attempts`` (1-based): base x 2^(attempts-1), capped; a
    receiver's longer ``Retry-After`` is honoured up to ``longest_wait``. A notice is given up
    on a route after ``give_up_after`` failed attempts: 300 is about a day at the 5-minute cap,
    by when a page has long stopped being useful."""

    base: float = 5.0
    cap: float = 300.0
    longest_wait: float = 86_400.0
    give_up_after: int = 300

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        delay = min(self.cap, self.base * 2.0 ** max(0, attempts - 1))
        return min(self.longest_wait, max(delay, retry_after or 0.0))


@dataclass(frozen=True)
class Settled:
    item_id: str
    outcome: str  # delivered | retry | given_up
    error: str | None = None


class Delivery:
    """Claims and settles outbox items; ``run()`` is one batch (what the task calls)."""

    def __init__(
        self,
        store: StateStore,
        notifiers: Mapping[str, Notifier],
        clock: Callable[[], float],
        release: Callable[[str, str], object],
        *,
        record: Callable[[str, RecordEvent], object],
        worker: str = "delivery",
        lease_seconds: float = 60.0,
        base_url: str | None = None,
        report_secret: str | None = None,
        backoff: Backoff = Backoff(),
        events: Mapping[str, Collection[NotifyKind]] | None = None,
    ) -> None:
        """``notifiers`` by route name; ``release(successor_id, predecessor_id)`` tells the
        successor that its lane is free (Intake.tell with ``Released``); ``record(rollout_id,
        event)`` adds an event to a rollout's audit trail (Intake.record); ``events`` by route
        name: the kinds it subscribes to (a route not named there: ``DEFAULT_EVENTS``)."""
        self.store, self.notifiers, self.clock = store, notifiers, clock
        self.release, self.record = release, record
        self.worker, self.lease_seconds = worker, lease_seconds
        self.base_url, self.backoff = base_url, backoff
        self.report_secret = report_secret  # signs the report links (?sig=)
        self.events = events or {}

    def subscribed(self, route: str, kind: NotifyKind) -> bool:
        """Whether ``route`` receives notices of ``kind`` (its settings' ``events``)."""
        return kind in self.events.get(route, DEFAULT_EVENTS)

    def run(self, limit: int = 20) -> list[Settled]:
        items = self.store.outbox.claim(self.worker, self.clock(), self.lease_seconds, limit)
        return [self.settle(item) for item in items]

    def settle(self, item: OutboxItem) -> Settled:
        log = rollout_log(item.rollout_id, outbox_item=item.id)
        try:
            action = item.action
            if isinstance(action, Notify):
                self.notify(action)
            elif isinstance(action, Release):
                self.hand_over(action.successor_id, item.rollout_id)
            else:
                raise PermanentDeliveryError(f"{type(action).__name__} is not an outbox action")
        except (CanaristError, ValueError) as exc:
            return self._failed(item, exc, log)
        except Exception as exc:  # one broken item must not hold back the others' alerts
            log.exception("delivering outbox item %s failed unexpectedly", item.id)
            return self._failed(item, exc, log)
        self.store.outbox.ack(item.id)
        log.info("outbox item %s delivered (attempt %d)", item.id, item.attempts)
        return Settled(item.id, "delivered")

    def notify(self, action: Notify) -> None:
        """Post the notice to its route (an item saved before items were per route names
        several: then to each); raise the worst DeliveryError if any failed."""
        try:
            policy = self.store.load(action.rollout_id).state.policy
        except NotFound:
            policy = ""
        notice = Notice.from_action(
            action,
            policy=policy,
            occurred_at=self.occurred_at(action),
            base_url=self.base_url,
            report_secret=self.report_secret,
        )
        failures: list[DeliveryError] = []
        for route in action.routes:
            if not self.subscribed(route, action.kind):
                continue  # settled: the route does not follow this kind
            notifier = self.notifiers.get(route)
            try:
                if notifier is None:
                    raise PermanentDeliveryError(f"alert route {route!r} is not configured")
                notifier.post(notice)
            except DeliveryError as exc:
                ALERT_FAILURES.labels(route, str(exc.temporary).lower()).inc()
                failures.append(exc)
                continue
            ALERT_DELIVERIES.labels(route, action.kind).inc()
        if failures:
            temporary = [failure for failure in failures if failure.temporary]
            worst = temporary[0] if temporary else failures[0]
            waits = [failure.retry_after for failure in temporary if failure.retry_after]
            message = "; ".join(str(failure) for failure in failures)
            if temporary:
                wait = max(waits, default=None)
                raise TemporaryDeliveryError(message, retry_after=wait, status=worst.status)
            raise PermanentDeliveryError(message, status=worst.status)

    def hand_over(self, successor_id: str, predecessor_id: str) -> None:
        """Tell the successor that its lane is free, until it is told: its lane depends on it.

        Given up only when the successor does not exist (``NotFound``, permanent). A refusal of
        intake is permanent for a person's request but not here: the successor's policy file is
        broken, say, which a person can fix, so it is retried like any temporary failure."""
        try:
            self.release(successor_id, predecessor_id)
        except IntakeError as exc:
            message = f"the hand-over to {successor_id} waits for a person: {exc}"
            raise TemporaryError(message, retry_after=None) from exc

    def occurred_at(self, action: Notify) -> float:
        """When the engine decided, stable across retries: the notice says it (outbox format
        2), or an item written before says it in its dedupe key and the audit trail."""
        if action.occurred_at is not None:
            return action.occurred_at
        return self.legacy_occurred_at(action)

    def legacy_occurred_at(self, action: Notify) -> float:
        """The transition's time for a notice of an outbox item of format 0 or 1 (no
        ``occurred_at``): a pause's is in its dedupe key, the others' is the time of the phase
        change of the key's attempt in the audit trail; else the delivery's time, logged.
        Remove with the support for those formats (workers/store/records.py)."""
        rollout_id, attempt, kind, rest = _parse_key(action.dedupe_key)
        if kind == "paused" and "@" in rest:
            return float(rest.rpartition("@")[2])
        phases, after = _PHASES_OF.get(kind, ()), None
        try:
            while page := self.store.events(rollout_id or action.rollout_id, after, 500):
                for event in page:
                    to, at = event.data.get("to"), event.data.get("attempt")
                    if (
                        event.kind == EventKind.PHASE
                        and to in phases
                        and (attempt is None or at == attempt)
                    ):
                        return event.at
                after = page[-1].id
        except NotFound:
            pass
        rollout_log(action.rollout_id).warning(
            "no transition found for %s: the notice is stamped with the delivery time",
            action.dedupe_key,
        )
        return self.clock()

    def _failed(self, item: OutboxItem, exc: Exception, log: RolloutLog) -> Settled:
        now, error = self.clock(), f"{type(exc).__name__}: {exc}"
        temporary = _retryable(exc)
        retry_after = exc.retry_after if isinstance(exc, TemporaryError) else None
        notice = _notice_of(item)
        exhausted = notice is not None and item.attempts >= self.backoff.give_up_after
        if temporary and not exhausted:
            delay = self.backoff.delay(item.attempts, retry_after)
            self.store.outbox.fail(item.id, error, now + delay)
            log.warning(
                "outbox item %s not delivered (attempt %d), retry in %.0f s: %s",
                *(item.id, item.attempts, delay, error),
            )
            return Settled(item.id, "retry", error)
        if notice is not None:
            why = f"{item.attempts} attempts failed" if temporary else "refused for good"
            try:
                self._undelivered(item, notice, f"{why}: {error}")
            except TemporaryError as record_failed:  # keep the item, or the loss goes unsaid
                delay = self.backoff.delay(1, record_failed.retry_after)
                self.store.outbox.fail(item.id, error, now + delay)
                log.warning("cannot record the undelivered alert yet (%s)", record_failed)
                return Settled(item.id, "retry", error)
        self.store.outbox.give_up(item.id, error)
        log.error("outbox item %s given up after %d attempt(s): %s", item.id, item.attempts, error)
        return Settled(item.id, "given_up", error)

    def _undelivered(self, item: OutboxItem, notice: Notify, error: str) -> None:
        """Say that people were not told: an audit event on the rollout, then the counter."""
        routes = ", ".join(repr(route) for route in notice.routes) or "(none)"
        error = error if len(error) <= _ERROR_CHARS else error[:_ERROR_CHARS] + "..."
        event = RecordEvent(  # ``canarist status`` lists them
            EventKind.ALERT_UNDELIVERED,
            f"{notice.kind} alert not delivered to route {routes}: {error}",
            {"routes": list(notice.routes), "kind": notice.kind, "error": error},
        )
        try:
            self.record(item.rollout_id, event)
        except NotFound:
            rollout_log(item.rollout_id).error("rollout gone: %s", event.message)
        except TemporaryError:
            raise
        except Exception as exc:  # a corrupt record, a broker refusing the requeue: the log
            # line and the metric remain, and the item is given up all the same
            rollout_log(item.rollout_id).error("cannot record %s (%s)", event.message, exc)
        for route in notice.routes:
            ALERTS_UNDELIVERED.labels(route, notice.kind).inc()


def _retryable(exc: Exception) -> bool:
    """Whether retrying can help: not when the error's class says it will not (a
    ``PermanentError``: a receiver's 4xx, a successor that does not exist), nor for a malformed
    payload (a ``ValueError`` stays malformed). Anything else is retried: a ``TemporaryError``
    says so, a record this release cannot read may be read by a worker of another release, and
    an unexpected error may be an outage."""
    return not isinstance(exc, PermanentError | ValueError)


def _notice_of(item: OutboxItem) -> Notify | None:
    """The item's notice, or None for a hand-over, a payload that does not parse, or an item in
    a format this release does not read (retried until a worker that reads it delivers it)."""
    try:
        action = item.action
    except (ValueError, CorruptRecord):
        return None
    return action if isinstance(action, Notify) else None


def _parse_key(key: str) -> tuple[str | None, int | None, str, str]:
    """``{id}/{attempt}/{kind}[/{stage}@{time}]`` as (id, attempt, kind, rest)."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[1].isdigit() and parts[2] in _KINDS:
        return parts[0], int(parts[1]), parts[2], "/".join(parts[3:])
    return None, None, "", ""
