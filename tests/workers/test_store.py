"""The StateStore contract, run against Redis (the real server) and the in-memory store alike.

Records and compare-and-set, idempotent creation, the app lane, the audit trail, due rollouts,
listing and leases. The outbox has its own file (test_store_outbox.py); what only Redis can show
(restarts, crashes, the key layout) is in test_store_redis.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from tests.workers.conftest import FakeClock
from tests.workers.rollout_driver import SPEC
from workers.actions import Notify, RecordEvent
from workers.errors import Conflict, LeaseLost, NotFound
from workers.state import Phase, RolloutState
from workers.store import Created, IdempotencyKey, MemoryStateStore, RedisStateStore, StateStore

T0 = 1_700_000_000.0


def rollout(
    rollout_id: str = "r1",
    *,
    app: str = "checkout",
    namespace: str = "shop",
    at: float = T0,
    supersedes: str | None = None,
    **changes: Any,
) -> RolloutState:
    state = RolloutState.new(
        rollout_id,
        app=app,
        namespace=namespace,
        policy="checkout-canary",
        spec=SPEC,
        now=at,
        supersedes=supersedes,
    )
    return replace(state, **changes)


def stepped(state: RolloutState, seconds: float = 60.0, **changes: Any) -> RolloutState:
    """The state a step ``seconds`` later would save."""
    return replace(state, updated_at=state.updated_at + seconds, **changes)


def wipe(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def each_store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    """An empty store of the kind ``request.param`` names: the memory one on the test's fake
    ``clock`` (tests/workers/conftest.py), Redis ones under their own prefix."""
    if request.param == "memory":
        yield MemoryStateStore(request.getfixturevalue("clock"))
        return
    server = request.getfixturevalue("redis_server")
    prefix = f"test:{uuid.uuid4().hex}:"
    redis_store = RedisStateStore.from_url(server.url, prefix=prefix)
    try:
        yield redis_store
    finally:
        redis_store.close()
        wipe(server.url, prefix)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    yield from each_store(request)


@pytest.fixture
def elapse(store: StateStore, request: pytest.FixtureRequest) -> Callable[[float], None]:
    """Let ``seconds`` pass on the clock the store's keys expire on: the memory store's injected
    clock is moved on; Redis keeps its own, so this waits until it has moved on."""
    if isinstance(store, MemoryStateStore):
        clock: FakeClock = request.getfixturevalue("clock")
        return clock.advance
    wait_out: Callable[[float], None] = request.getfixturevalue("wait_out_on_redis")
    return wait_out


def race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads released together: each result, or what it raised."""
    start, outcomes = threading.Barrier(count), list[Any]([None] * count)

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = work(index)
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


# -- records, revisions and compare-and-set ----------------------------------------------------


def test_a_created_rollout_loads_back_equal_at_revision_1(store: StateStore) -> None:
    state = rollout(next_due_at=T0)
    assert store.create(state) == Created(state.id, 1, created=True)
    assert store.load(state.id) == (state, 1)
    assert store.latest_for("checkout", "shop") == state.id


def test_unknown_rollouts_are_not_found(store: StateStore) -> None:
    with pytest.raises(NotFound, match="no rollout nope"):
        store.load("nope")
    with pytest.raises(NotFound):
        store.save(rollout("nope"), 1)
    with pytest.raises(NotFound):
        store.events("nope")
    assert store.latest_for("checkout", "shop") is None


def test_save_bumps_the_revision_and_a_stale_save_raises_conflict(store: StateStore) -> None:
    first = rollout()
    store.create(first)
    second = stepped(first, phase=Phase.PROGRESSING, canary_weight=10)
    assert store.save(second, 1) == 2
    third = stepped(second, canary_weight=25)
    assert store.save(third, 2) == 3
    with pytest.raises(Conflict, match="at revision 3, not 2"):
        store.save(stepped(second, canary_weight=50), 2)
    assert store.load(first.id) == (third, 3)


def test_a_conflicting_save_writes_nothing_at_all(store: StateStore) -> None:
    state = rollout(next_due_at=T0 + 10)
    store.create(state, events=[RecordEvent("submitted", "by ci", actor="ci")])
    winner = stepped(state, phase=Phase.PROGRESSING, next_due_at=T0 + 70)
    store.save(winner, 1, events=[RecordEvent("phase", "started")])
    loser = stepped(state, phase=Phase.ABORTED, abort_reason="stale", next_due_at=None)
    notice = Notify("aborted", state.id, "checkout", "shop", "v2", "stale", dedupe_key="k")
    with pytest.raises(Conflict):
        store.save(loser, 1, events=[RecordEvent("phase", "aborted")], outbox=[notice])
    assert store.load(state.id) == (winner, 2)
    assert [event.kind for event in store.events(state.id)] == ["submitted", "phase"]
    assert [event.message for event in store.events(state.id)][-1] == "started"
    assert store.outbox.claim("w", now=T0 + 1e6, lease_seconds=30) == []
    assert store.due(T0 + 100) == [state.id]


def test_a_replayed_save_returns_its_revision_and_writes_nothing_twice(store: StateStore) -> None:
    """A reply lost on the wire makes a client send the same save again."""
    state = rollout()
    store.create(state)
    new = stepped(state, phase=Phase.PROGRESSING)
    notice = Notify("promoted", state.id, "checkout", "shop", "v2", "done")
    events = [RecordEvent("phase", "started")]
    assert store.save(new, 1, events=events, outbox=[notice]) == 2
    assert store.save(new, 1, events=events, outbox=[notice]) == 2
    assert len(store.events(state.id)) == 1
    assert len(store.outbox.claim("w", now=T0 + 1e6, lease_seconds=30)) == 1
    with pytest.raises(Conflict):
        store.save(stepped(new), 1)


def test_concurrent_saves_at_one_revision_let_exactly_one_win(store: StateStore) -> None:
    state = rollout()
    store.create(state)
    outcomes = race(12, lambda i: store.save(stepped(state, canary_weight=i), 1))
    (winner,) = [index for index, outcome in enumerate(outcomes) if outcome == 2]
    losers = [outcome for index, outcome in enumerate(outcomes) if index != winner]
    assert all(isinstance(outcome, Conflict) for outcome in losers)
    assert store.load(state.id) == (stepped(state, canary_weight=winner), 2)


def test_a_rollout_id_is_created_once(store: StateStore) -> None:
    state = rollout()
    store.create(state)
    assert store.create(state) == Created(state.id, 1, created=False)  # the same, replayed
    store.save(stepped(state), 1)
    with pytest.raises(Conflict, match="r1 is taken"):
        store.create(state)
    with pytest.raises(Conflict, match="r1 is taken"):
        store.create(rollout(app="cart", namespace="shop"))


# -- idempotency and the app's lane ------------------------------------------------------------


def key(name: str = "ci-build-7", digest: str = "job-a", ttl: float = 3600) -> IdempotencyKey:
    return IdempotencyKey(name, digest, ttl)


def test_an_idempotency_key_returns_the_first_rollout(store: StateStore) -> None:
    first = rollout("r1")
    assert store.create(first, key()) == Created("r1", 1, created=True)
    store.save(stepped(first), 1)
    assert store.create(rollout("r2"), key()) == Created("r1", 2, created=False, same_job=True)
    with pytest.raises(NotFound):
        store.load("r2")
    assert store.latest_for("checkout", "shop") == "r1"
    assert [stored.state.id for stored in store.list_rollouts()] == ["r1"]


def test_a_key_used_for_another_job_says_so_and_writes_nothing(store: StateStore) -> None:
    store.create(rollout("r1"), key(digest="job-a"))
    again = store.create(rollout("r2", supersedes="r1"), key(digest="job-b"))
    assert again == Created("r1", 1, created=False, same_job=False)
    with pytest.raises(NotFound):
        store.load("r2")
    assert store.latest_for("checkout", "shop") == "r1"


def test_idempotency_keys_belong_to_a_namespace(store: StateStore) -> None:
    assert store.create(rollout("r1", namespace="inj"), key()).created
    elsewhere = store.create(rollout("r2", namespace="other"), key())
    assert elsewhere == Created("r2", 1, created=True)
    assert store.create(rollout("r3", namespace="other", supersedes="r2"), key()).rollout_id == "r2"


def test_an_idempotency_key_expires(store: StateStore, elapse: Callable[[float], None]) -> None:
    assert store.create(rollout("r1"), key(ttl=0.2)).created
    assert not store.create(rollout("r2", supersedes="r1"), key(ttl=0.2)).created
    elapse(0.2)
    assert store.create(rollout("r2", supersedes="r1"), key(ttl=0.2)) == Created("r2", 1, True)
    assert not store.create(rollout("r3", supersedes="r2"), key(ttl=0.2)).created
    with pytest.raises(ValueError, match="positive"):
        key(ttl=0)


def test_racing_creates_with_one_idempotency_key_make_one_rollout(store: StateStore) -> None:
    outcomes = race(16, lambda i: store.create(rollout(f"r{i}"), key("submit-42")))
    assert all(isinstance(outcome, Created) for outcome in outcomes)
    assert len({outcome.rollout_id for outcome in outcomes}) == 1
    assert sum(outcome.created for outcome in outcomes) == 1
    assert len(store.list_rollouts()) == 1


def test_a_new_rollout_must_supersede_the_apps_latest(store: StateStore) -> None:
    store.create(rollout("r1"))
    with pytest.raises(Conflict, match="latest rollout is r1, not None"):
        store.create(rollout("r2"))
    with pytest.raises(Conflict, match="latest rollout is r1, not r0"):
        store.create(rollout("r2", supersedes="r0"))
    with pytest.raises(NotFound):
        store.load("r2")
    assert store.create(rollout("r2", supersedes="r1")).created
    assert store.latest_for("checkout", "shop") == "r2"
    assert store.create(rollout("r3", app="cart")).created  # another app has its own lane
    assert store.create(rollout("r4", namespace="staging")).created


def test_racing_submissions_for_one_app_supersede_it_once(store: StateStore) -> None:
    store.create(rollout("r0"))
    outcomes = race(10, lambda i: store.create(rollout(f"r{i + 1}", supersedes="r0")))
    (created,) = [outcome for outcome in outcomes if isinstance(outcome, Created)]
    assert all(isinstance(outcome, Conflict) for outcome in outcomes if outcome is not created)
    assert store.latest_for("checkout", "shop") == created.rollout_id


# -- the audit trail ---------------------------------------------------------------------------


def test_events_come_back_in_order_with_actor_revision_and_evidence(store: StateStore) -> None:
    state = rollout()
    evidence = {"outcome": "fail", "metrics": [{"name": "errors", "p_value": 0.001, "n": [900]}]}
    store.create(state, events=[RecordEvent("submitted", "from ci", {"key": "k"}, "ci")])
    started = stepped(state, phase=Phase.PROGRESSING)
    store.save(started, 1, events=[RecordEvent("phase", "started", {"to": "progressing"})])
    aborting = stepped(started, phase=Phase.ABORTING)
    decision = RecordEvent("phase", "analysis failed", {"verdict": evidence}, "canarist")
    store.save(aborting, 2, events=[decision, RecordEvent("rollback", "traffic to stable")])

    trail = store.events(state.id)
    assert [(e.kind, e.message, e.revision) for e in trail] == [
        ("submitted", "from ci", 1),
        ("phase", "started", 2),
        ("phase", "analysis failed", 3),
        ("rollback", "traffic to stable", 3),
    ]
    assert [e.at for e in trail] == [T0, T0 + 60, T0 + 120, T0 + 120]
    assert [e.actor for e in trail] == ["ci", None, "canarist", None]
    assert trail[2].data == {"verdict": evidence}
    assert {e.rollout_id for e in trail} == {state.id}
    assert len({e.id for e in trail}) == 4


def test_events_page_after_an_id(store: StateStore) -> None:
    state = rollout()
    store.create(state, events=[RecordEvent("note", f"n{i}") for i in range(5)])
    first = store.events(state.id, limit=2)
    rest = store.events(state.id, after=first[-1].id, limit=10)
    assert [e.message for e in first + rest] == [f"n{i}" for i in range(5)]
    assert store.events(state.id, after=rest[-1].id) == []
    with pytest.raises(ValueError, match="not an event id"):
        store.events(state.id, after="yesterday")
    with pytest.raises(ValueError, match="limit"):
        store.events(state.id, limit=0)


# -- due rollouts and listing ------------------------------------------------------------------


def test_due_lists_unfinished_rollouts_most_overdue_first(store: StateStore) -> None:
    for name, due_at in [("a", T0 + 30), ("b", T0 + 10), ("c", T0 + 20), ("d", None)]:
        store.create(rollout(name, app=name, next_due_at=due_at))
    assert store.due(T0 + 25) == ["b", "c"]
    assert store.due(T0 + 1000) == ["b", "c", "a"]
    assert store.due(T0 + 1000, limit=1) == ["b"]
    assert store.due(T0) == []

    state, revision = store.load("b")
    store.save(stepped(state, phase=Phase.PROMOTED, next_due_at=None), revision)
    state, revision = store.load("a")
    store.save(stepped(state, next_due_at=T0 + 5), revision)
    assert store.due(T0 + 1000) == ["a", "c"]


def test_count_due_counts_what_due_lists(store: StateStore) -> None:
    for index in range(7):
        store.create(rollout(f"r{index}", app=f"app{index}", next_due_at=T0 + 10 * index))
    store.create(rollout("done", app="done", next_due_at=None))
    assert [store.count_due(T0 + seconds) for seconds in (-1, 0, 25, 1000)] == [0, 1, 3, 7]
    assert store.count_due(T0 + 25) == len(store.due(T0 + 25))


def test_list_rollouts_newest_first_by_namespace(store: StateStore) -> None:
    store.create(rollout("r1", app="a", namespace="shop", at=T0))
    store.create(rollout("r2", app="b", namespace="ops", at=T0 + 1))
    store.create(rollout("r3", app="c", namespace="shop", at=T0 + 2))
    listed = store.list_rollouts()
    assert [stored.state.id for stored in listed] == ["r3", "r2", "r1"]
    assert [stored.revision for stored in listed] == [1, 1, 1]
    assert [s.state.id for s in store.list_rollouts(namespace="shop")] == ["r3", "r1"]
    assert [s.state.id for s in store.list_rollouts(limit=1)] == ["r3"]
    assert store.list_rollouts(namespace="nowhere") == []


# -- leases ------------------------------------------------------------------------------------


def test_one_worker_holds_a_lease_at_a_time(store: StateStore) -> None:
    leases = store.leases
    assert leases.acquire("r1", "worker-a", 30)
    assert not leases.acquire("r1", "worker-b", 30)
    assert leases.acquire("r1", "worker-a", 30)  # the holder extends it
    assert leases.acquire("r2", "worker-b", 30)  # another rollout, another lease
    assert not leases.release("r1", "worker-b")  # only the holder may release
    assert not leases.acquire("r1", "worker-b", 30)
    assert leases.release("r1", "worker-a")
    assert not leases.release("r1", "worker-a")
    assert leases.acquire("r1", "worker-b", 30)
    with pytest.raises(ValueError, match="positive"):
        leases.acquire("r1", "worker-b", 0)


def test_a_lease_expires(store: StateStore, elapse: Callable[[float], None]) -> None:
    assert store.leases.acquire("r1", "crashed", 0.2)
    assert not store.leases.acquire("r1", "worker-b", 30)
    elapse(0.2)
    assert store.leases.acquire("r1", "worker-b", 30)
    assert not store.leases.release("r1", "crashed")


def test_racing_workers_get_one_lease(store: StateStore) -> None:
    outcomes = race(12, lambda i: store.leases.acquire("r1", f"worker-{i}", 30))
    assert outcomes.count(True) == 1


def test_a_save_for_a_lease_holder_checks_the_lease(store: StateStore) -> None:
    state = rollout()
    store.create(state)
    new = stepped(state, phase=Phase.PROGRESSING)
    store.leases.acquire(state.id, "worker-b", 30)
    with pytest.raises(LeaseLost, match="worker-a does not hold"):
        store.save(new, 1, events=[RecordEvent("phase", "started")], lease_owner="worker-a")
    assert store.load(state.id) == (state, 1)
    assert store.events(state.id) == []
    assert store.save(new, 1, lease_owner="worker-b") == 2
