"""The StateStore seam: where rollouts, their audit trail, leases and the outbox persist.

A task loads a rollout with its revision, steps the engine, and saves with compare-and-set: a
save against a stale revision raises ``Conflict`` and writes nothing. The same atomic save
appends the step's events to the rollout's audit trail, enqueues its side effects in the
outbox, and files the rollout under ``next_due_at`` for the beat reconciler (``due``). Leases
keep two workers from stepping one rollout at once; the revision keeps a worker whose lease
ran out from overwriting the one that took over.

Two implementations behave identically and pass the same contract tests: ``redis.py`` (the
only module that imports redis) and ``memory.py``. Both keep records and payloads as the same
JSON text, written and read by ``records.py``, so whatever one cannot store, neither can.

The store reads no clock for anything it compares: the caller passes ``now`` (to ``due`` and
``Outbox.claim``) and ``retry_at``; events are stamped with ``state.updated_at``. Only expiry
runs on the store's own clock (Redis ``PX``), as it must across machines: leases, and
idempotency keys, which are forgotten ``ttl_seconds`` after the rollout they created.

Idempotency keys belong to a namespace (the same key in two namespaces names two rollouts) and
are bound to a digest of the whole job: ``create`` with a known key returns its rollout with
``same_job`` saying whether the digests match, so intake can refuse a different job under an
old key. The outbox keeps one item per (notice, route), so a route that failed is retried
without posting again to the routes that succeeded. A rollout's policy is kept once per digest
(``policies``), the text it was submitted with. ``sessions`` keeps the dashboard's sign-ins
(canarist/ui/sessions.py) as opaque text that expires on the store's clock, so every API
process sees the same sessions and a restart of the API ends none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from workers.actions import Action, RecordEvent
from workers.state import RolloutState
from workers.store.records import AuditEvent, OutboxItem

__all__ = [
    "IDEMPOTENCY_TTL_SECONDS",
    "AuditEvent",
    "Created",
    "IdempotencyKey",
    "Leases",
    "Outbox",
    "OutboxItem",
    "PolicyTexts",
    "SessionRecords",
    "StateStore",
    "Stored",
]


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


class PolicyTexts(Protocol):
    """The policies rollouts pinned, by digest (``records.policy_digest``): content-addressed,
    written once and never changed, so a rollout reads the very policy it was submitted with."""

    def put(self, text: str) -> str:
        """Keep ``text`` (again: nothing changes); return its digest."""
        ...

    def get(self, digest: str) -> str:
        """The text kept under ``digest``; NotFound if none is."""
        ...


class SessionRecords(Protocol):
    """Short-lived text under a key, forgotten ``ttl_seconds`` after it was put (on the store's
    clock: Redis ``PX``). The caller owns the text's format and picks unguessable keys."""

    def put(self, key: str, record: str, ttl_seconds: float) -> None:
        """Keep ``record`` under ``key`` (replacing any) for ``ttl_seconds`` (> 0)."""
        ...

    def get(self, key: str) -> str | None:
        """The record kept under ``key``; None if none is, or it expired."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens if it is unknown."""
        ...


class Schedule(Protocol):
    """When each rollout is next due, kept in the store rather than in a message a worker
    holds: ``take`` hands due entries to whichever dispatcher asks first (workers/dispatcher.py),
    each once."""

    def put(self, rollout_id: str, revision: int, at: float) -> None:
        """Advance ``revision`` of the rollout at ``at`` (Unix seconds)."""
        ...

    def take(self, now: float, limit: int = 500) -> list[tuple[str, int]]:
        """Remove and return the entries due at ``now``, earliest first."""
        ...


class StateStore(Protocol):
    """Rollout records with revisions, their audit trail, and the indexes around them."""

    @property
    def leases(self) -> Leases: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def policies(self) -> PolicyTexts: ...

    @property
    def sessions(self) -> SessionRecords: ...

    @property
    def schedule(self) -> Schedule: ...

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
        """The rollout and its revision; NotFound if unknown, CorruptRecord if unreadable
        (UnsupportedFormat: in a format this release does not read, records.py)."""
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
        """The audit trail in order, after the event id ``after``; NotFound if unknown. An
        event this release cannot read is an ``unreadable_event`` that says why."""
        ...

    def due(self, now: float, limit: int = 100) -> list[str]:
        """Ids of unfinished rollouts whose next_due_at <= now, most overdue first."""
        ...

    def count_due(self, now: float) -> int:
        """How many unfinished rollouts have next_due_at <= now (one cheap count, for the
        overdue gauge: no ids are read)."""
        ...

    def list_rollouts(self, namespace: str | None = None, limit: int = 100) -> list[Stored]:
        """Rollouts, newest first, in ``namespace`` or in all; one this release cannot read
        is logged and left out (``load`` says why)."""
        ...

    def latest_for(self, app: str, namespace: str) -> str | None:
        """The id of the app's latest rollout: the one a new revision supersedes."""
        ...
