"""The StateStore over Redis: the only module that imports redis.

Every write is one Lua script (scripts.py), so it is atomic and a refused call writes nothing.
Key layout, under a prefix (default ``canarist:``) so tests and tenants stay apart::

    rollout:{id}             hash    state (JSON of RolloutState.to_record), revision
    events:{id}              stream  event (JSON: revision, at, kind, message, actor, data),
                                     format
    lease:{id}               string  the owner; expires (SET NX PX)
    idempotency:{ns}/{key}   hash    rollout (the id created with that key), digest (of the
                                     job); expires (PEXPIRE) after the key's ttl
    latest:{namespace}/{app} string  the app's latest rollout id
    rollouts, rollouts:{ns}  zset    rollout ids by created_at, for listing
    due                      zset    unfinished rollout ids by next_due_at (+inf when none)
    outbox:queue             zset    undelivered item ids by when each may be claimed
    outbox:item:{key}        hash    id, rollout_id, payload, format, attempts, last_error,
                                     claimed_by, delivered or given_up (kept once settled:
                                     dedupe)
    policy:{digest}          string  a pinned policy's text (SET NX: never changed; kept)
    session:{key}            string  a dashboard session (canarist/ui/sessions.py: the key
                                     is a hash of its id); expires (SET PX)
    schedule                 zset    "{revision}:{id}" by when that advance is due

Formats, and what a record this release cannot read does, are in records.py.

The scripts touch keys named in ``KEYS`` except ``claim``, which derives item keys from ids;
that is fine on one Redis (or Sentinel), not on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from workers.actions import Action, RecordEvent
from workers.errors import Conflict, LeaseLost, NotFound, StoreError, StoreUnavailable
from workers.state import RolloutState
from workers.store import scripts
from workers.store.base import Created, IdempotencyKey, Stored
from workers.store.records import (
    EVENT_FORMAT,
    OUTBOX_FORMAT,
    AuditEvent,
    OutboxItem,
    check_limit,
    decode_event,
    decode_item,
    decode_state,
    encode_event,
    encode_state,
    event_position,
    listed,
    outbox_entries,
    policy_digest,
)

DEFAULT_PREFIX = "canarist:"
_TEMPORARY_REPLIES = ("LOADING", "MISCONF", "OOM", "READONLY", "MASTERDOWN", "TRYAGAIN", "BUSY")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Redis errors become store errors; unreachable or busy means try again later."""
    try:
        yield
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
        raise StoreError(f"redis refused {what}: {exc}") from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise StoreUnavailable(f"redis unavailable for {what}: {exc}") from exc
    except redis.exceptions.ResponseError as exc:
        if str(exc).startswith(_TEMPORARY_REPLIES):
            raise StoreUnavailable(f"redis busy for {what}: {exc}") from exc
        raise StoreError(f"redis failed {what}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"redis failed {what}: {exc}") from exc


def _due_score(state: RolloutState) -> str:
    """The rollout's score in ``due``, or "" when it is finished and leaves the set."""
    if state.phase.terminal:
        return ""
    return "+inf" if state.next_due_at is None else repr(state.next_due_at)


class RedisStateStore:
    """StateStore over one Redis (see the module docstring for keys and atomicity)."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._client, self._prefix = client, prefix
        script = client.register_script
        self._create, self._save = script(scripts.CREATE), script(scripts.SAVE)
        self._leases = RedisLeases(client, prefix)
        self._outbox = RedisOutbox(client, prefix)
        self._policies = RedisPolicyTexts(client, prefix)
        self._sessions = RedisSessionRecords(client, prefix)
        self._schedule = RedisSchedule(client, prefix)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        timeout_seconds: float = 5.0,
        retries: int = 2,
        retry_timeouts: bool = True,
    ) -> RedisStateStore:
        """A store on its own client; a dropped connection is retried ``retries`` times, briefly,
        and a timeout too unless ``retry_timeouts`` is False (each retry waits out the timeout
        again, so a caller that must answer quickly turns it off)."""
        backoff = ExponentialWithJitterBackoff(base=0.05, cap=0.5)
        if retry_timeouts:
            retry = Retry(backoff, retries=retries)
        else:
            retry = Retry(backoff, retries=retries, supported_errors=(redis.ConnectionError,))
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=retry,
            health_check_interval=30,
        )
        return cls(client, prefix)

    def close(self) -> None:
        self._client.close()

    @property
    def leases(self) -> RedisLeases:
        return self._leases

    @property
    def outbox(self) -> RedisOutbox:
        return self._outbox

    @property
    def policies(self) -> RedisPolicyTexts:
        return self._policies

    @property
    def sessions(self) -> RedisSessionRecords:
        return self._sessions

    @property
    def schedule(self) -> RedisSchedule:
        return self._schedule

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def create(
        self,
        state: RolloutState,
        idempotency: IdempotencyKey | None = None,
        *,
        events: Sequence[RecordEvent] = (),
    ) -> Created:
        rollout_id = state.id
        keys = [
            self._key("rollout", rollout_id),
            self._key("events", rollout_id),
            self._key("latest", f"{state.namespace}/{state.app}"),
            self._key("due"),
            self._key("rollouts"),
            self._key("rollouts", state.namespace),
        ]
        digest, ttl_ms = "", ""
        if idempotency is not None:
            keys.append(self._key("idempotency", f"{state.namespace}/{idempotency.key}"))
            digest = idempotency.digest
            ttl_ms = str(max(1, round(idempotency.ttl_seconds * 1000)))
        args = [rollout_id, encode_state(state), state.supersedes or "", _due_score(state)]
        args += [repr(state.created_at), digest, ttl_ms, str(EVENT_FORMAT)]
        args += [encode_event(state, 1, event) for event in events]
        with _translated(f"create {rollout_id}"):
            outcome, *detail = self._create(keys=keys, args=args)
            if outcome == "existing":
                existing, same = detail
                revision = self._client.hget(self._key("rollout", existing), "revision")
                return Created(existing, int(revision or 0), created=False, same_job=bool(same))
        if outcome == "replayed":
            return Created(rollout_id, 1, created=False)
        if outcome == "taken":
            raise Conflict(f"rollout id {rollout_id} is taken")
        if outcome == "lane":
            latest = detail[0] or None
            raise Conflict(
                f"{state.app} in {state.namespace}: the latest rollout is {latest}, "
                f"not {state.supersedes}; supersede the latest"
            )
        return Created(rollout_id, 1, created=True)

    def load(self, rollout_id: str) -> Stored:
        key = self._key("rollout", rollout_id)
        with _translated(f"load {rollout_id}"):
            text, revision = self._client.hmget(key, ["state", "revision"])
        if text is None or revision is None:
            raise NotFound(f"no rollout {rollout_id}")
        return Stored(decode_state(str(text), rollout_id), int(revision))

    def save(
        self,
        state: RolloutState,
        expected_revision: int,
        *,
        events: Sequence[RecordEvent] = (),
        outbox: Sequence[Action] = (),
        lease_owner: str | None = None,
    ) -> int:
        rollout_id, revision = state.id, expected_revision + 1
        items = outbox_entries(state, revision, outbox)
        keys = [
            self._key("rollout", rollout_id),
            self._key("events", rollout_id),
            self._key("due"),
            self._key("lease", rollout_id),
            self._key("outbox", "queue"),
            *(self._key("outbox", "item", item_id) for item_id, _ in items),
        ]
        args = [rollout_id, str(expected_revision), encode_state(state), _due_score(state)]
        args += [lease_owner or "", repr(state.updated_at), str(len(events))]
        args += [str(EVENT_FORMAT), str(OUTBOX_FORMAT)]
        args += [encode_event(state, revision, event) for event in events]
        args += [part for item in items for part in item]
        with _translated(f"save {rollout_id}"):
            outcome, *detail = self._save(keys=keys, args=args)
        if outcome == "missing":
            raise NotFound(f"no rollout {rollout_id}")
        if outcome == "stale":
            raise Conflict(
                f"rollout {rollout_id} is at revision {detail[0]}, not {expected_revision}"
            )
        if outcome == "lease":
            raise LeaseLost(f"{lease_owner} does not hold the lease of rollout {rollout_id}")
        return int(detail[0])

    def events(
        self, rollout_id: str, after: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        start = "-" if after is None else f"({'-'.join(map(str, event_position(after)))}"
        key = self._key("events", rollout_id)
        with _translated(f"read events of {rollout_id}"):
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(self._key("rollout", rollout_id))
            pipe.xrange(key, min=start, count=check_limit(limit))
            exists, entries = pipe.execute()
        if not exists:
            raise NotFound(f"no rollout {rollout_id}")
        return [decode_event(event_id, fields, rollout_id) for event_id, fields in entries]

    def due(self, now: float, limit: int = 100) -> list[str]:
        with _translated("list due rollouts"):
            ids = self._client.zrangebyscore(
                self._key("due"), "-inf", repr(now), start=0, num=check_limit(limit)
            )
        return [str(rollout_id) for rollout_id in ids]

    def count_due(self, now: float) -> int:
        with _translated("count due rollouts"):
            return int(self._client.zcount(self._key("due"), "-inf", repr(now)))

    def list_rollouts(self, namespace: str | None = None, limit: int = 100) -> list[Stored]:
        listing = self._key("rollouts") if namespace is None else self._key("rollouts", namespace)
        check_limit(limit)
        with _translated("list rollouts"):
            ids = [str(rollout_id) for rollout_id in self._client.zrevrange(listing, 0, limit - 1)]
            pipe = self._client.pipeline(transaction=False)
            for rollout_id in ids:
                pipe.hmget(self._key("rollout", rollout_id), ["state", "revision"])
            records = pipe.execute()
        return [
            Stored(state, int(revision))
            for rollout_id, (text, revision) in zip(ids, records, strict=True)
            if text is not None and (state := listed(rollout_id, text)) is not None
        ]

    def latest_for(self, app: str, namespace: str) -> str | None:
        with _translated(f"find the latest rollout of {app} in {namespace}"):
            latest = self._client.get(self._key("latest", f"{namespace}/{app}"))
        return None if latest is None else str(latest)


class RedisPolicyTexts:
    """Pinned policy texts, one string key per digest, written once (SET NX)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def put(self, text: str) -> str:
        digest = policy_digest(text)
        with _translated("keeping a policy"):
            self._client.set(f"{self._prefix}policy:{digest}", text, nx=True)
        return digest

    def get(self, digest: str) -> str:
        with _translated("reading a policy"):
            text = self._client.get(f"{self._prefix}policy:{digest}")
        if text is None:
            raise NotFound(f"no policy {digest}")
        return str(text)


class RedisSessionRecords:
    """Dashboard sessions as string keys that expire on Redis's clock (SET PX)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client, self._prefix = client, f"{prefix}session:"

    def put(self, key: str, record: str, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"a session lasts a positive time, not {ttl_seconds} s")
        with _translated("keeping a session"):
            self._client.set(self._prefix + key, record, px=max(1, round(ttl_seconds * 1000)))

    def get(self, key: str) -> str | None:
        with _translated("reading a session"):
            record = self._client.get(self._prefix + key)
        return None if record is None else str(record)

    def delete(self, key: str) -> None:
        with _translated("ending a session"):
            self._client.delete(self._prefix + key)


class RedisSchedule:
    """Due advances in one sorted set; ``take`` pops the due ones in one script (each once)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client, self._key = client, f"{prefix}schedule"
        self._take = client.register_script(scripts.TAKE_DUE)

    def put(self, rollout_id: str, revision: int, at: float) -> None:
        with _translated(f"schedule {rollout_id}"):
            self._client.zadd(self._key, {f"{revision}:{rollout_id}": at})

    def take(self, now: float, limit: int = 500) -> list[tuple[str, int]]:
        with _translated("take due advances"):
            taken = self._take(keys=[self._key], args=[repr(now), check_limit(limit)])
        pairs = (str(member).split(":", 1) for member in taken)
        return [(rollout_id, int(revision)) for revision, rollout_id in pairs]


class RedisLeases:
    """Leases as keys that expire on Redis's clock; only the owner extends or deletes one."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._release = client.register_script(scripts.RELEASE)

    def acquire(self, rollout_id: str, owner: str, ttl_seconds: float) -> bool:
        if ttl_seconds <= 0:
            raise ValueError(f"a lease lasts a positive time, not {ttl_seconds} s")
        key, ttl_ms = f"{self._prefix}lease:{rollout_id}", max(1, round(ttl_seconds * 1000))
        with _translated(f"take the lease of {rollout_id}"):
            return bool(self._acquire(keys=[key], args=[owner, ttl_ms]))

    def release(self, rollout_id: str, owner: str) -> bool:
        with _translated(f"release the lease of {rollout_id}"):
            return bool(self._release(keys=[f"{self._prefix}lease:{rollout_id}"], args=[owner]))


class RedisOutbox:
    """Outbox items as hashes, queued in a sorted set by when each may next be claimed."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._queue, self._items = f"{prefix}outbox:queue", f"{prefix}outbox:item:"
        self._claim = client.register_script(scripts.CLAIM)
        self._settle = client.register_script(scripts.SETTLE)

    def claim(
        self, worker: str, now: float, lease_seconds: float, limit: int = 10
    ) -> list[OutboxItem]:
        until, limit = repr(now + lease_seconds), check_limit(limit)
        args: list[str | int] = [repr(now), until, limit, worker, self._items]
        with _translated("claim outbox items"):
            claimed = self._claim(keys=[self._queue], args=args)
        return [
            decode_item(dict(zip(fields[::2], fields[1::2], strict=True))) for fields in claimed
        ]

    def ack(self, item_id: str) -> None:
        self._settle_item(item_id, "ack", "", "0")

    def fail(self, item_id: str, error: str, retry_at: float) -> None:
        self._settle_item(item_id, "fail", error, repr(retry_at))

    def give_up(self, item_id: str, error: str) -> None:
        self._settle_item(item_id, "give_up", error, "0")

    def _settle_item(self, item_id: str, how: str, error: str, retry_at: str) -> None:
        keys = [self._queue, self._items + item_id]
        with _translated(f"{how} outbox item {item_id}"):
            found = self._settle(keys=keys, args=[item_id, how, error, retry_at])
        if not found:
            raise NotFound(f"no outbox item {item_id}")
