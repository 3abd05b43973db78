"""The StateStore in memory, for unit tests and the engine's fakes: same contract as Redis.

It keeps the same JSON strings and formats (records.py) that Redis would and makes the same
checks in the same order, under one lock, so each call is as atomic as a Lua script. Orderings
copy Redis's: sorted sets break score ties by id. Event ids are stream-id shaped (``"0-<n>"``).
Leases, idempotency keys and sessions expire on the injected clock (monotonic by default), the
one place the store keeps time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workers.actions import Action, RecordEvent
from workers.errors import Conflict, LeaseLost, NotFound
from workers.state import RolloutState
from workers.store.base import Created, IdempotencyKey, Stored
from workers.store.memory_schedule import MemorySchedule
from workers.store.records import (
    OUTBOX_FORMAT,
    AuditEvent,
    OutboxItem,
    check_limit,
    decode_event,
    decode_item,
    decode_state,
    encode_event,
    encode_state,
    event_fields,
    event_position,
    listed,
    outbox_entries,
    policy_digest,
)


@dataclass(frozen=True)
class _Key:
    rollout_id: str
    digest: str
    expires_at: float


@dataclass
class _Record:
    text: str
    revision: int
    namespace: str
    created_at: float


class MemoryStateStore:
    """StateStore in a few dicts; safe to share between threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._records: dict[str, _Record] = {}
        self._events: dict[str, list[tuple[str, dict[str, str]]]] = {}  # (id, entry fields)
        self._event_count = 0
        self._idempotency: dict[tuple[str, str], _Key] = {}  # by (namespace, key)
        self._latest: dict[tuple[str, str], str] = {}
        self._due: dict[str, float] = {}
        self._leases = MemoryLeases(clock)
        self._outbox = MemoryOutbox(self._lock)
        self._policies = MemoryPolicyTexts()
        self._sessions = MemorySessionRecords(clock)
        self._schedule = MemorySchedule()

    @property
    def leases(self) -> MemoryLeases:
        return self._leases

    @property
    def outbox(self) -> MemoryOutbox:
        return self._outbox

    @property
    def policies(self) -> MemoryPolicyTexts:
        return self._policies

    @property
    def sessions(self) -> MemorySessionRecords:
        return self._sessions

    @property
    def schedule(self) -> MemorySchedule:
        return self._schedule

    def create(
        self,
        state: RolloutState,
        idempotency: IdempotencyKey | None = None,
        *,
        events: Sequence[RecordEvent] = (),
    ) -> Created:
        text, lane = encode_state(state), (state.namespace, state.app)
        encoded = [encode_event(state, 1, event) for event in events]
        scoped = None if idempotency is None else (state.namespace, idempotency.key)
        with self._lock:
            now = self._clock()
            self._forget_expired_keys(now)
            existing = None if scoped is None else self._idempotency.get(scoped)
            if idempotency is not None and existing is not None:
                revision = self._records[existing.rollout_id].revision
                same = existing.digest == idempotency.digest
                return Created(existing.rollout_id, revision, created=False, same_job=same)
            record = self._records.get(state.id)
            if record is not None:
                if record.revision == 1 and record.text == text:
                    return Created(state.id, 1, created=False)
                raise Conflict(f"rollout id {state.id} is taken")
            latest = self._latest.get(lane)
            if latest != state.supersedes:
                raise Conflict(
                    f"{state.app} in {state.namespace}: the latest rollout is {latest}, "
                    f"not {state.supersedes}; supersede the latest"
                )
            self._records[state.id] = _Record(text, 1, state.namespace, state.created_at)
            self._latest[lane] = state.id
            self._file_due(state)
            if idempotency is not None and scoped is not None:
                expires_at = now + idempotency.ttl_seconds
                self._idempotency[scoped] = _Key(state.id, idempotency.digest, expires_at)
            self._append(state.id, encoded)
        return Created(state.id, 1, created=True)

    def load(self, rollout_id: str) -> Stored:
        with self._lock:
            record = self._records.get(rollout_id)
        if record is None:
            raise NotFound(f"no rollout {rollout_id}")
        return Stored(decode_state(record.text, rollout_id), record.revision)

    def save(
        self,
        state: RolloutState,
        expected_revision: int,
        *,
        events: Sequence[RecordEvent] = (),
        outbox: Sequence[Action] = (),
        lease_owner: str | None = None,
    ) -> int:
        rollout_id, revision, text = state.id, expected_revision + 1, encode_state(state)
        encoded = [encode_event(state, revision, event) for event in events]
        items = outbox_entries(state, revision, outbox)
        with self._lock:
            record = self._records.get(rollout_id)
            if record is None:
                raise NotFound(f"no rollout {rollout_id}")
            if record.revision == revision and record.text == text:
                return revision
            if record.revision != expected_revision:
                raise Conflict(
                    f"rollout {rollout_id} is at revision {record.revision}, "
                    f"not {expected_revision}"
                )
            if lease_owner is not None and not self._leases.held(rollout_id, lease_owner):
                raise LeaseLost(f"{lease_owner} does not hold the lease of rollout {rollout_id}")
            record.text, record.revision = text, revision
            self._file_due(state)
            self._append(rollout_id, encoded)
            self._outbox.enqueue(rollout_id, items, state.updated_at)
        return revision

    def events(
        self, rollout_id: str, after: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        start = (-1, -1) if after is None else event_position(after)
        check_limit(limit)
        with self._lock:
            if rollout_id not in self._records:
                raise NotFound(f"no rollout {rollout_id}")
            entries = self._events.get(rollout_id, [])
            picked = [entry for entry in entries if event_position(entry[0]) > start][:limit]
        return [decode_event(event_id, fields, rollout_id) for event_id, fields in picked]

    def due(self, now: float, limit: int = 100) -> list[str]:
        check_limit(limit)
        with self._lock:
            ranked = sorted((score, rollout_id) for rollout_id, score in self._due.items())
        return [rollout_id for score, rollout_id in ranked if score <= now][:limit]

    def count_due(self, now: float) -> int:
        with self._lock:
            return sum(1 for score in self._due.values() if score <= now)

    def list_rollouts(self, namespace: str | None = None, limit: int = 100) -> list[Stored]:
        check_limit(limit)
        with self._lock:
            ranked = sorted(
                (
                    (record.created_at, rollout_id)
                    for rollout_id, record in self._records.items()
                    if namespace is None or record.namespace == namespace
                ),
                reverse=True,
            )
            records = [(rollout_id, self._records[rollout_id]) for _, rollout_id in ranked]
        return [
            Stored(state, record.revision)
            for rollout_id, record in records[:limit]
            if (state := listed(rollout_id, record.text)) is not None
        ]

    def latest_for(self, app: str, namespace: str) -> str | None:
        with self._lock:
            return self._latest.get((namespace, app))

    def _forget_expired_keys(self, now: float) -> None:
        expired = [key for key, entry in self._idempotency.items() if entry.expires_at <= now]
        for key in expired:
            del self._idempotency[key]

    def _file_due(self, state: RolloutState) -> None:
        if state.phase.terminal:
            self._due.pop(state.id, None)
        else:
            due_at = state.next_due_at
            self._due[state.id] = float("inf") if due_at is None else due_at

    def _append(self, rollout_id: str, encoded: list[str]) -> None:
        trail = self._events.setdefault(rollout_id, [])
        for text in encoded:
            self._event_count += 1
            trail.append((f"0-{self._event_count}", event_fields(text)))


class MemoryLeases:
    """Leases as owner and expiry time on the injected clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}

    def acquire(self, rollout_id: str, owner: str, ttl_seconds: float) -> bool:
        if ttl_seconds <= 0:
            raise ValueError(f"a lease lasts a positive time, not {ttl_seconds} s")
        with self._lock:
            now = self._clock()
            holder, expires_at = self._leases.get(rollout_id, (owner, now))
            if holder != owner and expires_at > now:
                return False
            self._leases[rollout_id] = (owner, now + ttl_seconds)
            return True

    def release(self, rollout_id: str, owner: str) -> bool:
        with self._lock:
            if not self.held(rollout_id, owner):
                return False
            del self._leases[rollout_id]
            return True

    def held(self, rollout_id: str, owner: str) -> bool:
        holder, expires_at = self._leases.get(rollout_id, ("", 0.0))
        return holder == owner and expires_at > self._clock()


@dataclass
class _Item:
    rollout_id: str
    payload: str
    format: str = str(OUTBOX_FORMAT)  # as Redis keeps it
    attempts: int = 0
    last_error: str | None = None
    claimed_by: str | None = None
    settled: bool = False  # delivered or given up: never claimed again


class MemoryOutbox:
    """Outbox items kept forever (for dedupe) and a queue of when each may be claimed."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._items: dict[str, _Item] = {}
        self._queue: dict[str, float] = {}

    def enqueue(self, rollout_id: str, entries: list[tuple[str, str]], at: float) -> None:
        with self._lock:
            for item_id, payload in entries:
                if item_id not in self._items:
                    self._items[item_id] = _Item(rollout_id, payload)
                    self._queue[item_id] = at

    def claim(
        self, worker: str, now: float, lease_seconds: float, limit: int = 10
    ) -> list[OutboxItem]:
        check_limit(limit)
        with self._lock:
            ready = sorted((at, item_id) for item_id, at in self._queue.items() if at <= now)
            claimed = []
            for _, item_id in ready[:limit]:
                item = self._items[item_id]
                self._queue[item_id] = now + lease_seconds
                item.attempts, item.claimed_by = item.attempts + 1, worker
                claimed.append((item_id, item))
            return [
                decode_item(
                    {
                        "id": item_id,
                        "rollout_id": item.rollout_id,
                        "payload": item.payload,
                        "format": item.format,
                        "attempts": item.attempts,
                        "last_error": item.last_error,
                        "claimed_by": item.claimed_by,
                    }
                )
                for item_id, item in claimed
            ]

    def ack(self, item_id: str) -> None:
        with self._lock:
            item = self._settled(item_id)
            if item is not None:
                item.settled = True
                self._queue.pop(item_id, None)

    def give_up(self, item_id: str, error: str) -> None:
        with self._lock:
            item = self._settled(item_id)
            if item is not None:
                item.settled, item.last_error = True, error
                self._queue.pop(item_id, None)

    def fail(self, item_id: str, error: str, retry_at: float) -> None:
        with self._lock:
            item = self._settled(item_id)
            if item is not None:
                item.last_error = error
                self._queue[item_id] = retry_at

    def _settled(self, item_id: str) -> _Item | None:
        """The item to settle, unclaimed; None if it was settled for good already."""
        item = self._items.get(item_id)
        if item is None:
            raise NotFound(f"no outbox item {item_id}")
        if item.settled:
            return None
        item.claimed_by = None
        return item


class MemoryPolicyTexts:
    """Pinned policy texts by digest; the first text kept under a digest stays."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, text: str) -> str:
        digest = policy_digest(text)
        with self._lock:
            self._texts.setdefault(digest, text)
        return digest

    def get(self, digest: str) -> str:
        with self._lock:
            text = self._texts.get(digest)
        if text is None:
            raise NotFound(f"no policy {digest}")
        return text


class MemorySessionRecords:
    """Session records by key, each with its expiry on the injected clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock, self._lock = clock, threading.Lock()
        self._records: dict[str, tuple[str, float]] = {}

    def put(self, key: str, record: str, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"a session lasts a positive time, not {ttl_seconds} s")
        with self._lock:
            now = self._clock()
            for gone in [k for k, (_, until) in self._records.items() if until <= now]:
                del self._records[gone]
            self._records[key] = (record, now + ttl_seconds)

    def get(self, key: str) -> str | None:
        with self._lock:
            kept = self._records.get(key)
            if kept is not None and kept[1] <= self._clock():
                del self._records[key]
                return None
        return None if kept is None else kept[0]

    def delete(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)
