"""Leases and periodic runs over the real Redis: a short lease renewed while a task works, a
task that finds the lease held coming back by itself, and one reconcile a period however many
beats send it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analyzer.sources.base import Series
from canarist.demo.stack import ServiceProcess
from tests.waiting import wait_until
from tests.workers.conftest import FakeClock, FakeSource, Queued, job, task_runtime
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.platforms.memory import MemoryPlatform
from workers.store import RedisStateStore
from workers.tasks import RECONCILE, Runtime, advance, first_of_period, reconcile


@dataclass
class SlowSource(FakeSource):
    """Prometheus at its timeout: while ``hanging``, a query answers only once ``let_go`` is
    set, and ``asked`` says one is waiting."""

    hanging: bool = False
    asked: threading.Event = field(default_factory=threading.Event)
    let_go: threading.Event = field(default_factory=threading.Event)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        if self.hanging:
            self.asked.set()
            assert self.let_go.wait(30), "the test never let the query answer"
        return super().query_range(promql, start, end, step)


@pytest.fixture
def store(redis_server: ServiceProcess) -> Iterator[RedisStateStore]:
    redis_store = RedisStateStore.from_url(redis_server.url, prefix=f"lease:{uuid.uuid4().hex}:")
    yield redis_store
    redis_store.close()


@pytest.fixture
def runtime(store: RedisStateStore, policy_dir: Path, clock: FakeClock, queued: Queued) -> Runtime:
    intake = Intake(
        store, policy_dir, clock, queued.enqueue, alert_routes=["oncall"], on_outbox=queued.wake
    )
    runtime = task_runtime(
        store, intake, SlowSource(), MemoryPlatform(), clock, queued, MemoryNotifier()
    )
    return replace(runtime, lease_seconds=0.6)


def test_a_task_slower_than_its_lease_keeps_it_by_renewing_it(
    runtime: Runtime, queued: Queued, clock: FakeClock, wait_out_on_redis: Callable[[float], None]
) -> None:
    rollout_id = runtime.intake.submit(job(), "ci").rollout_id
    advance(runtime, *queued.advance.pop()[:2])  # started: the weight is set and ready
    advance(runtime, *queued.advance.pop()[:2])
    state, revision = runtime.store.load(rollout_id)
    assert state.window_start is not None
    clock.advance(5.0)  # the first look is due
    source = runtime.source
    assert isinstance(source, SlowSource)
    source.hanging = True  # the look's queries answer when the intruder has tried
    taken: list[bool] = []

    def another_worker() -> None:
        try:
            wait_until("the look's first query", source.asked.is_set)
            wait_out_on_redis(runtime.lease_seconds)  # the lease, taken before it, would be out
            taken.append(runtime.store.leases.acquire(rollout_id, "intruder", 5.0))
        finally:
            source.let_go.set()

    intruder = threading.Thread(target=another_worker)
    intruder.start()
    assert advance(runtime, rollout_id, revision) == "stepped"
    intruder.join()
    assert taken == [False]
    assert runtime.store.load(rollout_id).state.tally.looks == 1  # the look was kept


def test_a_task_that_finds_the_lease_held_comes_back_when_it_would_have_run_out(
    runtime: Runtime, queued: Queued, wait_out_on_redis: Callable[[float], None]
) -> None:
    rollout_id = runtime.intake.submit(job(), "ci").rollout_id
    queued.advance.clear()
    runtime.store.leases.acquire(rollout_id, "a-worker-that-died", runtime.lease_seconds)
    assert advance(runtime, rollout_id, 1) == "busy"
    assert queued.advance == [(rollout_id, 1, runtime.lease_seconds / 2)]
    wait_out_on_redis(runtime.lease_seconds)  # the dead worker's lease runs out
    assert advance(runtime, rollout_id, 1) == "stepped"


def test_one_run_of_a_periodic_task_a_period_however_many_beats_send_it(
    runtime: Runtime, queued: Queued, clock: FakeClock, wait_out_on_redis: Callable[[float], None]
) -> None:
    healed: list[str] = []
    runtime = replace(runtime, heal=lambda: healed.append("router") or ["router restarted"])
    rollout_id = runtime.intake.submit(job(), "ci").rollout_id
    queued.advance.clear()
    clock.advance(60.0)  # overdue
    assert reconcile(runtime, period=0.5) == [rollout_id]
    assert reconcile(runtime, period=0.5) == []  # the other beat's message of this period
    assert healed == ["router"]
    assert queued.advance == [(rollout_id, 1, 0.0)]
    wait_out_on_redis(0.5)  # the period's lock (Redis keeps it for 0.9 of it) runs out
    assert reconcile(runtime, period=0.5) == [rollout_id]  # the next period
    assert reconcile(runtime) == [rollout_id]  # a run not sent by beat always runs
    assert first_of_period(runtime, RECONCILE, None)
