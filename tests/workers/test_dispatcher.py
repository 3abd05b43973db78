"""The schedule and its dispatcher: a rollout's next step waits in the store, not in a message
one worker holds, and is sent to the shared queue when due, once, by whichever worker's
dispatcher takes it first. Against the memory store and the real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from canarist.demo.stack import ServiceProcess
from tests.workers.test_store import each_store
from workers.dispatcher import Dispatcher
from workers.store import RedisStateStore, StateStore

T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    yield from each_store(request)


def test_take_returns_the_due_entries_earliest_first_and_each_once(store: StateStore) -> None:
    store.schedule.put("cart-1", 4, T0 + 30)
    store.schedule.put("search-1", 2, T0 + 10)
    store.schedule.put("cart-1", 5, T0 + 20)  # a later revision is its own entry
    store.schedule.put("pay-1", 1, T0 + 90)

    assert store.schedule.take(T0) == []
    assert store.schedule.take(T0 + 30) == [("search-1", 2), ("cart-1", 5), ("cart-1", 4)]
    assert store.schedule.take(T0 + 30) == []  # taken once
    assert store.schedule.take(T0 + 1000, limit=1) == [("pay-1", 1)]


def test_putting_an_entry_again_moves_it(store: StateStore) -> None:
    store.schedule.put("cart-1", 4, T0 + 10)
    store.schedule.put("cart-1", 4, T0 + 60)
    assert store.schedule.take(T0 + 30) == []
    assert store.schedule.take(T0 + 60) == [("cart-1", 4)]


def test_two_dispatchers_on_one_redis_never_take_an_entry_twice(
    redis_server: ServiceProcess,
) -> None:
    prefix = f"test:dispatch:{time.time_ns()}:"
    stores = [RedisStateStore.from_url(redis_server.url, prefix) for _ in range(2)]
    try:
        for index in range(2000):
            stores[0].schedule.put(f"r{index}", 1, T0 + index % 100)
        taken: list[list[tuple[str, int]]] = [[], []]

        def drain(which: int) -> None:
            while found := stores[which].schedule.take(T0 + 100, limit=50):
                taken[which] += found

        threads = [threading.Thread(target=drain, args=(which,)) for which in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert taken[0] and taken[1]  # both took a share
        assert sorted(taken[0] + taken[1]) == sorted((f"r{i}", 1) for i in range(2000))
    finally:
        for one in stores:
            one.close()


class Broker:
    """What the dispatcher sends to: a list, or a broker that is down."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.down = False

    def send(self, rollout_id: str, revision: int) -> None:
        if self.down:
            raise ConnectionError("the broker is down")
        self.sent.append((rollout_id, revision))


def test_the_dispatcher_sends_what_is_due_and_keeps_what_it_cannot_send(
    store: StateStore,
) -> None:
    now = [T0]
    broker = Broker()
    dispatcher = Dispatcher(store.schedule, broker.send, lambda: now[0])
    store.schedule.put("cart-1", 3, T0 + 5)
    store.schedule.put("search-1", 7, T0 + 50)

    assert dispatcher.run_once() == 0
    now[0] = T0 + 10
    broker.down = True
    with pytest.raises(ConnectionError):
        dispatcher.run_once()
    broker.down = False
    assert dispatcher.run_once() == 1  # put back, due now, and sent once the broker is back
    assert broker.sent == [("cart-1", 3)]
    now[0] = T0 + 60
    assert dispatcher.run_once() == 1
    assert broker.sent == [("cart-1", 3), ("search-1", 7)]


def test_the_dispatchers_thread_outlives_failures_and_sends_within_its_period(
    store: StateStore,
) -> None:
    broker = Broker()
    broker.down = True
    dispatcher = Dispatcher(store.schedule, broker.send, time.time, every=0.05).start()
    try:
        store.schedule.put("cart-1", 3, time.time())
        time.sleep(0.3)  # failing: the entry stays on the schedule
        broker.down = False
        deadline = time.monotonic() + 5
        while not broker.sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert broker.sent == [("cart-1", 3)]
    finally:
        dispatcher.stop()
