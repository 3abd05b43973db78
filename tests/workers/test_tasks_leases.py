"""Leases and periodic runs over the real Redis: a short lease renewed while a task works, a
task that finds the lease held coming back by itself, and one reconcile a period however many
beats send it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analyzer.sources.base import Series
from canarist.demo.stack import ServiceProcess
from tests.workers.conftest import FakeClock, FakeSource, Queued, job, task_runtime
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.platforms.memory import MemoryPlatform
from workers.store import RedisStateStore
from workers.tasks import RECONCILE, Runtime, advance, first_of_period, reconcile


@dataclass
class SlowSource(FakeSource):
    """Prometheus at its timeout: every query takes ``delay`` seconds of real time."""

    delay: float = 0.0

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        time.sleep(self.delay)
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
    runtime: Runtime, queued: Queued, clock: FakeClock
) -> None:
    rollout_id = runtime.intake.submit(job(), "ci").rollout_id
    advance(runtime, *queued.advance.pop()[:2])  # started: the weight is set and ready
    advance(runtime, *queued.advance.pop()[:2])
    state, revision = runtime.store.load(rollout_id)
    assert state.window_start is not None
    clock.advance(5.0)  # the first look is due
    assert isinstance(runtime.source, SlowSource)
    runtime.source.delay = 0.5  # two queries: 1 s in all, well past the 0.6 s lease
    taken: list[bool] = []

    def another_worker() -> None:
        time.sleep(0.8)  # the lease would have run out by now without renewal
        taken.append(runtime.store.leases.acquire(rollout_id, "intruder", 5.0))

    intruder = threading.Thread(target=another_worker)
    intruder.start()
    assert advance(runtime, rollout_id, revision) == "stepped"
    intruder.join()
    assert taken == [False]
    assert runtime.store.load(rollout_id).state.tally.looks == 1  # the look was kept


def test_a_task_that_finds_the_lease_held_comes_back_when_it_would_have_run_out(
    runtime: Runtime, queued: Queued
) -> None:
    rollout_id = runtime.intake.submit(job(), "ci").rollout_id
    queued.advance.clear()
    runtime.store.leases.acquire(rollout_id, "a-worker-that-died", runtime.lease_seconds)
    assert advance(runtime, rollout_id, 1) == "busy"
    assert queued.advance == [(rollout_id, 1, runtime.lease_seconds / 2)]
    time.sleep(runtime.lease_seconds + 0.1)  # the dead worker's lease runs out
    assert advance(runtime, rollout_id, 1) == "stepped"


def test_one_run_of_a_periodic_task_a_period_however_many_beats_send_it(
    runtime: Runtime, queued: Queued, clock: FakeClock
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
    time.sleep(0.5)
    assert reconcile(runtime, period=0.5) == [rollout_id]  # the next period
    assert reconcile(runtime) == [rollout_id]  # a run not sent by beat always runs
    assert first_of_period(runtime, RECONCILE, None)
