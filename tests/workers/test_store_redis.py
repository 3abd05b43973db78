"""What only the Redis store can show: its data outlives a restart and a crash of the server
(AOF), an unreachable server is a temporary error, and every key lives under the prefix.

The Redis server is shared by the whole session: a test that stops it starts it again in a
``finally``, whatever happens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from canarist.demo.stack import ServiceProcess
from tests.workers.test_store import T0, rollout, stepped, wipe
from workers.actions import Notify, RecordEvent
from workers.errors import CorruptRecord, StoreError, StoreUnavailable, TemporaryError
from workers.state import Phase
from workers.store import (
    Created,
    IdempotencyKey,
    MemoryStateStore,
    RedisStateStore,
    store_from_url,
)

LATER = T0 + 3600


@pytest.fixture
def prefix(redis_server: ServiceProcess) -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    if redis_server.running:
        wipe(redis_server.url, prefix)


@pytest.fixture
def store(redis_server: ServiceProcess, prefix: str) -> Iterator[RedisStateStore]:
    redis_store = RedisStateStore.from_url(redis_server.url, prefix=prefix)
    yield redis_store
    redis_store.close()


@pytest.fixture
def raw(redis_server: ServiceProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


def advance(store: RedisStateStore, rollout_id: str, steps: int) -> int:
    """Save ``steps`` steps, each with an event and an alert; return the last revision."""
    state, revision = store.load(rollout_id)
    for index in range(steps):
        state = stepped(state, canary_weight=index, next_due_at=T0 + 60 * index)
        alert = Notify(
            "paused", rollout_id, "checkout", "shop", "v2", "look", dedupe_key=f"{index}"
        )
        event = RecordEvent("step", f"step {index}", {"weight": index}, "canarist")
        revision = store.save(state, revision, events=[event], outbox=[alert])
    return revision


def test_saved_data_survives_a_restart(
    store: RedisStateStore, redis_server: ServiceProcess
) -> None:
    submit_1 = IdempotencyKey("submit-1", "job-digest")
    store.create(rollout(next_due_at=T0), submit_1, events=[RecordEvent("submitted", "ci")])
    revision = advance(store, "r1", 3)
    before = store.load("r1")
    try:
        redis_server.restart()
    finally:
        if not redis_server.running:
            redis_server.start()
    # The same store carries on: it reconnects and reloads its scripts (the cache is gone).
    assert store.load("r1") == before
    assert [event.message for event in store.events("r1")] == ["ci", "step 0", "step 1", "step 2"]
    assert store.create(rollout("other"), submit_1) == Created("r1", revision, created=False)
    assert store.latest_for("checkout", "shop") == "r1"
    assert store.due(T0 + 120) == ["r1"]
    assert len(store.outbox.claim("w", now=LATER, lease_seconds=30)) == 3
    assert store.save(stepped(before.state), revision) == revision + 1


def test_acknowledged_saves_survive_a_crash_of_the_server(
    store: RedisStateStore, redis_server: ServiceProcess
) -> None:
    """SIGKILL: whatever Redis acknowledged was already written to the AOF (fsync or not, the
    kernel keeps it), so every acknowledged save is there after the restart."""
    store.create(rollout())
    revision = advance(store, "r1", 25)
    acknowledged = store.load("r1")
    try:
        redis_server.kill()
        with pytest.raises(StoreUnavailable) as unavailable:
            store.load("r1")
        assert isinstance(unavailable.value, TemporaryError)
        with pytest.raises(StoreUnavailable):
            store.save(stepped(acknowledged.state), revision)
    finally:
        redis_server.restart()
    assert store.load("r1") == acknowledged
    assert revision == 26
    assert len(store.events("r1", limit=1000)) == 25
    assert len(store.outbox.claim("w", now=LATER, lease_seconds=30, limit=100)) == 25


def test_every_key_lives_under_the_prefix(
    store: RedisStateStore, redis_server: ServiceProcess, prefix: str, raw: redis.Redis
) -> None:
    state = rollout(next_due_at=T0)
    store.create(state, IdempotencyKey("submit-1", "d"), events=[RecordEvent("submitted", "ci")])
    store.leases.acquire("r1", "w", 30)
    store.save(
        stepped(state, phase=Phase.PROGRESSING),
        1,
        outbox=[
            Notify("paused", "r1", "checkout", "shop", "v2", "look", dedupe_key="r1/1/paused"),
            Notify(
                "aborted", "r1", "checkout", "shop", "v2", "bad", ("oncall",), {}, "r1/1/aborted"
            ),
        ],
    )
    layout = {key.removeprefix(prefix): raw.type(key) for key in raw.scan_iter(f"{prefix}*")}
    assert layout == {
        "rollout:r1": "hash",
        "events:r1": "stream",
        "lease:r1": "string",
        "idempotency:shop/submit-1": "hash",
        "latest:shop/checkout": "string",
        "rollouts": "zset",
        "rollouts:shop": "zset",
        "due": "zset",
        "outbox:queue": "zset",
        "outbox:item:r1/1/paused": "hash",
        "outbox:item:r1/1/aborted>oncall": "hash",
    }
    assert raw.hget(f"{prefix}rollout:r1", "revision") == "2"
    assert 0 < raw.pttl(f"{prefix}idempotency:shop/submit-1") <= 86_400_000  # forgotten in a day
    other = RedisStateStore.from_url(redis_server.url, prefix=f"{prefix}other:")
    try:
        assert other.list_rollouts() == []
        assert other.latest_for("checkout", "shop") is None
    finally:
        other.close()


def test_a_record_that_does_not_parse_is_corrupt_not_missing(
    store: RedisStateStore, prefix: str, raw: redis.Redis
) -> None:
    store.create(rollout())
    raw.hset(f"{prefix}rollout:r1", "state", '{"format": 1, "id": "r1"}')
    with pytest.raises(CorruptRecord, match=r"rollout r1: bad rollout record: .*missing"):
        store.load("r1")
    raw.hset(f"{prefix}rollout:r1", "state", "{not json")
    with pytest.raises(CorruptRecord, match="rollout r1: Expecting property name"):
        store.load("r1")


def test_a_redis_error_that_retrying_cannot_fix_is_permanent(
    store: RedisStateStore, prefix: str, raw: redis.Redis
) -> None:
    raw.set(f"{prefix}rollout:r1", "not a hash")
    with pytest.raises(StoreError, match="WRONGTYPE") as refused:
        store.load("r1")
    assert not isinstance(refused.value, TemporaryError)


def test_the_url_picks_the_store(redis_server: ServiceProcess) -> None:
    assert isinstance(store_from_url("memory://"), MemoryStateStore)
    redis_store = store_from_url(redis_server.url, prefix="test:url:")
    assert isinstance(redis_store, RedisStateStore)
    redis_store.close()
    with pytest.raises(ValueError, match="no state store for 'postgres://db'"):
        store_from_url("postgres://db")
