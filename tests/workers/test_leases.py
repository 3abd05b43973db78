"""The lease keeper over the real Redis: one thread per process renews every lease its tasks
hold, a short lease is renewed in time even while the keeper sleeps for a long one, and a lease
given up while its renewal is in flight stays given up."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from canarist.demo.stack import ServiceProcess
from tests.waiting import wait_until
from workers.leases import LeaseKeeper, renewed
from workers.metrics import rollout_log
from workers.store import RedisStateStore
from workers.store.base import Leases


@pytest.fixture
def leases(redis_server: ServiceProcess) -> Iterator[Leases]:
    store = RedisStateStore.from_url(redis_server.url, prefix=f"keeper:{uuid.uuid4().hex}:")
    yield store.leases
    store.close()


def kept_for(leases: Leases, name: str, seconds: float, wait_out: Callable[[float], None]) -> bool:
    """Whether ``name``'s lease, taken by its holder before, is still held by it after its
    own length has run out twice (an intruder tries meanwhile)."""
    wait_out(2 * seconds)
    return not leases.acquire(name, "intruder", 60.0)


def test_a_lease_is_kept_past_its_length_while_held_and_free_at_once_when_given_up(
    leases: Leases, wait_out_on_redis: Callable[[float], None]
) -> None:
    keeper = LeaseKeeper()
    assert leases.acquire("r1", "task-a", 0.6)
    with keeper.held(leases, "r1", "task-a", 0.6, rollout_log("r1")):
        assert kept_for(leases, "r1", 0.6, wait_out_on_redis)
    assert leases.release("r1", "task-a")
    assert leases.acquire("r1", "next-task", 0.6)


def test_a_short_lease_is_renewed_while_the_keeper_sleeps_for_a_long_one(
    leases: Leases, wait_out_on_redis: Callable[[float], None]
) -> None:
    keeper = LeaseKeeper()
    assert leases.acquire("slow", "task-a", 30.0)
    assert leases.acquire("quick", "task-b", 0.6)
    with keeper.held(leases, "slow", "task-a", 30.0, rollout_log("slow")):
        wait_out_on_redis(0.1)  # the keeper now sleeps until the long lease's renewal, in 10 s
        with keeper.held(leases, "quick", "task-b", 0.6, rollout_log("quick")):
            assert kept_for(leases, "quick", 0.6, wait_out_on_redis)


def test_the_leases_of_concurrent_tasks_are_all_kept(
    leases: Leases, wait_out_on_redis: Callable[[float], None]
) -> None:
    """The threads pool: four tasks of one process hold leases at once."""
    keeper = LeaseKeeper()
    names = [f"r{i}" for i in range(4)]
    entered, leave = threading.Barrier(len(names) + 1), threading.Event()

    def task(name: str) -> None:
        assert leases.acquire(name, f"task-{name}", 0.6)
        with keeper.held(leases, name, f"task-{name}", 0.6, rollout_log(name)):
            entered.wait(10)
            leave.wait(30)
        leases.release(name, f"task-{name}")

    threads = [threading.Thread(target=task, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    try:
        entered.wait(10)
        wait_out_on_redis(1.2)
        assert not any(leases.acquire(name, "intruder", 60.0) for name in names)
    finally:
        leave.set()
        for thread in threads:
            thread.join(10)
    assert all(leases.acquire(name, "intruder", 60.0) for name in names)


class BlockingRenewal:
    """Real leases whose renewals (every acquire through this wrapper) wait for ``go``."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.renewing, self.go = threading.Event(), threading.Event()

    def acquire(self, rollout_id: str, owner: str, ttl_seconds: float) -> bool:
        self.renewing.set()
        assert self.go.wait(30), "the test never let the renewal through"
        return self.leases.acquire(rollout_id, owner, ttl_seconds)

    def release(self, rollout_id: str, owner: str) -> bool:
        return self.leases.release(rollout_id, owner)


def test_a_lease_given_up_during_its_renewal_is_not_taken_again(
    leases: Leases, wait_out_on_redis: Callable[[float], None]
) -> None:
    keeper, slow = LeaseKeeper(), BlockingRenewal(leases)
    assert leases.acquire("r1", "task-a", 0.3)
    left = threading.Event()

    def task() -> None:
        with keeper.held(slow, "r1", "task-a", 0.3, rollout_log("r1")):
            wait_until("the keeper to start renewing", slow.renewing.is_set)
        left.set()
        leases.release("r1", "task-a")  # as the advance task does once the block is left

    worker = threading.Thread(target=task)
    worker.start()
    wait_until("the keeper to start renewing", slow.renewing.is_set)
    assert not left.wait(0.3), "the task left while its lease was being renewed"
    slow.go.set()
    worker.join(10)
    assert left.is_set()
    wait_out_on_redis(0.5)  # renewals every 0.1 s would have taken it again by now
    assert leases.acquire("r1", "next-task", 0.3)


def test_one_thread_renews_the_leases_of_every_task_in_a_process(leases: Leases) -> None:
    """A task no longer starts and joins a thread of its own (a clone and four thread wake-ups
    an advance, measured with strace in the scale benchmark)."""
    inside: list[int] = []

    def task(name: str) -> None:
        assert leases.acquire(name, "task", 15.0)
        with renewed(leases, name, "task", 15.0, rollout_log(name)):
            inside.append(threading.active_count())
        assert leases.release(name, "task")

    task("first")  # starts the process's keeper, if no test before did
    before = threading.active_count()
    for index in range(50):
        task(f"r{index}")
    assert max(inside[1:]) == before
