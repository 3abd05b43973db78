"""The StateStore seam: where rollouts, their audit trail, leases and the outbox persist.

A task loads a rollout with its revision, steps the engine, and saves with compare-and-set: a
save against a stale revision raises ``Conflict`` and writes nothing. The same atomic save
appends the step's events to the rollout's audit trail, enqueues its side effects in the
outbox, and files the rollout under ``next_due_at`` for the beat reconciler (``due``). Leases
keep two workers from stepping one rollout at once; the revision keeps a worker whose lease
ran out from overwriting the one that took over.

Two implementations behave identically and pass the same contract tests: ``redis.py`` (the
only module that imports redis) and ``memory.py``. Both keep records and payloads as the same
JSON text, so whatever one cannot store, neither can.

The store reads no clock for anything it compares: the caller passes ``now`` (to ``due`` and
``Outbox.claim``) and ``retry_at``; events are stamped with ``state.updated_at``. Only expiry
runs on the store's own clock (Redis ``PX``), as it must across machines: leases, and
idempotency keys, which are forgotten ``ttl_seconds`` after the rollout they created.

Idempotency keys belong to a namespace (the same key in two namespaces names two rollouts) and
are bound to a digest of the whole job: ``create`` with a known key returns its rollout with
``same_job`` saying whether the digests match, so intake can refuse a different job under an
old key. The outbox keeps one item per (notice, route), so a route that failed is retried
without posting again to the routes that succeeded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from workers.actions import Action, Notify, RecordEvent, action_from_record, action_record
from workers.errors import CorruptRecord
from workers.state import RolloutState


class Stored(NamedTuple):
    """A rollout as saved, and the revision to compare-and-set against."""

    state: RolloutState
    revision: int


IDEMPOTENCY_TTL_SECONDS = 86_400.0
"""How long an idempotency key names its rollout: a day, enough for any CI retry."""


class Created(NamedTuple):
    """What ``create`` did: ``created`` is False when an idempotency key named an existing
    rollout (then ``rollout_id`` and ``revision`` are that rollout's, and ``same_job`` says
    whether it was created for a job with the same digest)."""

    rollout_id: str
    revision: int
    created: bool
    same_job: bool = True


@dataclass(frozen=True)
class IdempotencyKey:
    """A caller's key for one submission, in the rollout's namespace: ``digest`` fingerprints
    the whole job, and the key is forgotten ``ttl_seconds`` after it was first used."""

    key: str
    digest: str
    ttl_seconds: float = IDEMPOTENCY_TTL_SECONDS

    def __post_init__(self) -> None:
        if self.ttl_seconds <= 0:
            raise ValueError(f"an idempotency key lasts a positive time, not {self.ttl_seconds}")


@dataclass(frozen=True)
class AuditEvent:
    """One line of a rollout's audit trail; ``id`` orders it (a Redis stream id)."""

    id: str
    rollout_id: str
    revision: int  # the revision the event's step saved
    at: float  # the step's time: the state's updated_at
    kind: str
    message: str
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxItem:
    """A side effect waiting for delivery; ``id`` is its dedupe key."""

    id: str
    rollout_id: str
    payload: Mapping[str, Any]  # action_record() of the action
    attempts: int = 0  # claims so far, including the one that returned it
    last_error: str | None = None
    claimed_by: str | None = None

    @property
    def action(self) -> Action:
        return action_from_record(self.payload)


class Leases(Protocol):
    """One holder at a time per name: a worker stepping a rollout (the name is its id), or the
    first run of a periodic task in its period (``periodic:<task>``, never released)."""

    def acquire(self, rollout_id: str, owner: str, ttl_seconds: float) -> bool:
        """Take the lease, or extend it if ``owner`` holds it; False if another does."""
        ...

    def release(self, rollout_id: str, owner: str) -> bool:
        """Give the lease up if ``owner`` still holds it; False otherwise."""
        ...


class Outbox(Protocol):
    """Side effects saved with the step that decided them, delivered at least once."""

    def claim(
        self, worker: str, now: float, lease_seconds: float, limit: int = 10
    ) -> list[OutboxItem]:
        """Items due by ``now`` that are not delivered nor claimed; each claim lasts
        ``lease_seconds``, after which a crashed worker's item is claimable again."""
        ...

    def ack(self, item_id: str) -> None:
        """Delivered: never claimed again; its key still dedupes. NotFound if unknown."""
        ...

    def fail(self, item_id: str, error: str, retry_at: float) -> None:
        """Not delivered: claimable again from ``retry_at``; a settled item stays so."""
        ...

    def give_up(self, item_id: str, error: str) -> None:
        """Never delivered: not claimed again, its key still dedupes, ``error`` is kept. A
        settled (delivered or given up) item stays so; NotFound if unknown."""
        ...


class StateStore(Protocol):
    """Rollout records with revisions, their audit trail, and the indexes around them."""

    @property
    def leases(self) -> Leases: ...

    @property
    def outbox(self) -> Outbox: ...

    def create(
        self,
        state: RolloutState,
        idempotency: IdempotencyKey | None = None,
        *,
        events: Sequence[RecordEvent] = (),
    ) -> Created:
        """Store a new rollout at revision 1 and make it its app's latest.

        ``state.supersedes`` must name the app's latest rollout (None for an app's first), else
        Conflict: intake reads ``latest_for`` and retries. An idempotency key used in the
        state's namespace within its ttl returns that rollout, created=False (``same_job`` False
        when its digest differs), and writes nothing. An id already taken is a Conflict.
        """
        ...

    def load(self, rollout_id: str) -> Stored:
        """The rollout and its revision; NotFound if unknown, CorruptRecord if unreadable."""
        ...

    def save(
        self,
        state: RolloutState,
        expected_revision: int,
        *,
        events: Sequence[RecordEvent] = (),
        outbox: Sequence[Action] = (),
        lease_owner: str | None = None,
    ) -> int:
        """Compare-and-set ``state`` at ``expected_revision``; return the new revision.

        In one atomic step: the record, its events, its outbox items (an item whose dedupe key
        was ever enqueued is skipped) and its place among due rollouts. Conflict on a stale
        revision, LeaseLost if ``lease_owner`` no longer holds the lease, NotFound for an
        unknown rollout: then nothing is written. A replay of the save that produced the
        current revision (same state) returns that revision without writing again.
        """
        ...

    def events(
        self, rollout_id: str, after: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The audit trail in order, after the event id ``after``; NotFound if unknown."""
        ...

    def due(self, now: float, limit: int = 100) -> list[str]:
        """Ids of unfinished rollouts whose next_due_at <= now, most overdue first."""
        ...

    def list_rollouts(self, namespace: str | None = None, limit: int = 100) -> list[Stored]:
        """Rollouts, newest first, in ``namespace`` or in all."""
        ...

    def latest_for(self, app: str, namespace: str) -> str | None:
        """The id of the app's latest rollout: the one a new revision supersedes."""
        ...


# -- the shared encoding: both implementations store exactly these strings ---------------------


def encode_state(state: RolloutState) -> str:
    """Canonical JSON, so a replayed save compares equal to the stored record."""
    return json.dumps(state.to_record(), sort_keys=True, separators=(",", ":"))


def decode_state(text: str, where: str) -> RolloutState:
    try:
        return RolloutState.from_record(json.loads(text))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CorruptRecord(f"{where}: {exc}") from exc


def encode_event(state: RolloutState, revision: int, event: RecordEvent) -> str:
    payload = {
        "rollout_id": state.id,
        "revision": revision,
        "at": state.updated_at,
        "kind": event.kind,
        "message": event.message,
        "actor": event.actor,
        "data": dict(event.data),
    }
    return json.dumps(payload, separators=(",", ":"))


def decode_event(event_id: str, text: str, where: str) -> AuditEvent:
    try:
        payload = json.loads(text)
        return AuditEvent(event_id, **payload)
    except (ValueError, TypeError) as exc:
        raise CorruptRecord(f"{where} event {event_id}: {exc}") from exc


def outbox_entries(
    state: RolloutState, revision: int, actions: Sequence[Action]
) -> list[tuple[str, str]]:
    """``(item id, payload JSON)`` per outbox item, first of each id kept.

    The id is the action's dedupe key; an action without one gets a key unique to this save
    (deduplicated only against a replay). A ``Notify`` to several routes becomes one item per
    route, ``{dedupe_key}>{route}``, carrying only that route: each route is delivered, retried
    and given up on its own. (Route names are policy names: they hold no ``>``.)
    """
    entries: dict[str, str] = {}
    for index, action in enumerate(actions):
        key = getattr(action, "dedupe_key", "") or f"{state.id}@{revision}#{index}"
        for item_id, item in _items_of(key, action):
            entries.setdefault(item_id, json.dumps(action_record(item), separators=(",", ":")))
    return list(entries.items())


def _items_of(key: str, action: Action) -> list[tuple[str, Action]]:
    if isinstance(action, Notify) and action.routes:
        return [(f"{key}>{route}", replace(action, routes=(route,))) for route in action.routes]
    return [(key, action)]


def event_position(event_id: str) -> tuple[int, int]:
    """A stream id ``"<ms>-<seq>"`` as a sortable pair; ValueError if it is not one."""
    millis, dash, sequence = event_id.partition("-")
    if not (dash and millis.isdigit() and sequence.isdigit()):
        raise ValueError(f"{event_id!r} is not an event id like '1718000000000-0'")
    return int(millis), int(sequence)


def check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return limit
