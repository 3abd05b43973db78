"""The sessions contract, against Redis and in memory: a record kept under a key for a time,
read back until it expires on the store's clock, replaced, deleted; on Redis it lives under the
prefix with a TTL, and an unreachable server is StoreUnavailable, not a missing session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.workers.conftest import FakeClock
from tests.workers.test_store import each_store
from workers.errors import StoreUnavailable
from workers.store import MemoryStateStore, RedisStateStore, StateStore


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    yield from each_store(request)


@pytest.fixture
def elapse(store: StateStore, request: pytest.FixtureRequest) -> Callable[[float], None]:
    """Let time pass on the clock the store's sessions expire on (see test_store.elapse)."""
    if isinstance(store, MemoryStateStore):
        clock: FakeClock = request.getfixturevalue("clock")
        return clock.advance
    wait_out: Callable[[float], None] = request.getfixturevalue("wait_out_on_redis")
    return wait_out


def test_a_record_is_read_back_replaced_and_deleted(store: StateStore) -> None:
    sessions = store.sessions
    assert sessions.get("k1") is None
    sessions.put("k1", '{"token_name": "alice"}', 60)
    sessions.put("k2", "other", 60)
    assert sessions.get("k1") == '{"token_name": "alice"}'
    sessions.put("k1", "replaced", 60)
    assert sessions.get("k1") == "replaced"
    sessions.delete("k1")
    sessions.delete("k1")  # again, or never kept: nothing happens
    sessions.delete("unknown")
    assert sessions.get("k1") is None
    assert sessions.get("k2") == "other"


def test_a_record_expires_after_its_ttl(store: StateStore, elapse: Callable[[float], None]) -> None:
    store.sessions.put("short", "a", 0.3)
    store.sessions.put("long", "b", 60)
    assert store.sessions.get("short") == "a"
    elapse(0.3)
    assert store.sessions.get("short") is None
    assert store.sessions.get("long") == "b"


def test_a_session_lasts_a_positive_time(store: StateStore) -> None:
    for ttl in (0, -1):
        with pytest.raises(ValueError, match="positive"):
            store.sessions.put("k", "a", ttl)
    assert store.sessions.get("k") is None


def test_on_redis_a_session_is_a_key_under_the_prefix_with_a_ttl(
    redis_server: ServiceProcess,
) -> None:
    prefix = "test:sessions-layout:"
    store = RedisStateStore.from_url(redis_server.url, prefix=prefix)
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store.sessions.put("abc", "record", 120)
        assert raw.get(f"{prefix}session:abc") == "record"
        assert 0 < raw.pttl(f"{prefix}session:abc") <= 120_000
        assert list(raw.scan_iter(match=f"{prefix}*")) == [f"{prefix}session:abc"]
        store.sessions.delete("abc")
        assert raw.exists(f"{prefix}session:abc") == 0
    finally:
        raw.delete(*raw.scan_iter(match=f"{prefix}*"), f"{prefix}none")
        raw.close()
        store.close()


def test_an_unreachable_redis_is_unavailable_not_a_missing_session() -> None:
    store = RedisStateStore.from_url(f"redis://{HOST}:{free_port()}/0", timeout_seconds=1.0)
    try:
        for call in (
            lambda: store.sessions.get("k"),
            lambda: store.sessions.put("k", "a", 60),
            lambda: store.sessions.delete("k"),
        ):
            with pytest.raises(StoreUnavailable):
                call()
    finally:
        store.close()
