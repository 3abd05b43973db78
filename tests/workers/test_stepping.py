"""One step of a loaded rollout, as the task and intake both take it: saved whole or not at all,
the outbox woken once, and a command that does not wait for a task's lease."""

from __future__ import annotations

import pytest

from tests.workers.conftest import FakeClock, Queued, job, trail
from workers.actions import ManualCommand, Notify, RecordEvent
from workers.errors import Conflict, LeaseLost
from workers.intake import Intake
from workers.state import Phase
from workers.stepping import step_and_save
from workers.store import MemoryStateStore

ABORT = ManualCommand("abort", "carol", reason="wrong build")


def test_a_step_is_saved_with_its_events_after_the_given_ones_and_wakes_the_outbox_once(
    intake: Intake, memory_store: MemoryStateStore, clock: FakeClock, queued: Queued
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    loaded = memory_store.load(rollout_id)
    given = RecordEvent("note", "before the step", actor="carol")

    stepped = step_and_save(
        memory_store,
        loaded,
        intake.policy("demo"),
        ABORT,
        clock(),
        events=[given],
        wake_outbox=queued.wake,
    )

    assert stepped.state.phase is Phase.ABORTED
    assert memory_store.load(rollout_id) == (stepped.state, stepped.revision)
    kinds = [event.kind for event in trail(memory_store, rollout_id)]
    assert kinds[kinds.index("note") + 1 :] == [event.kind for event in stepped.events]
    assert queued.outbox_wakes == 1
    (item,) = memory_store.outbox.claim("t", clock(), 60)
    assert isinstance(item.action, Notify) and item.action in stepped.actions


def test_a_stale_revision_or_a_lost_lease_writes_nothing(
    intake: Intake, memory_store: MemoryStateStore, clock: FakeClock, queued: Queued
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    loaded, before = memory_store.load(rollout_id), trail(memory_store, rollout_id)
    policy = intake.policy("demo")
    memory_store.leases.acquire(rollout_id, "another-task", 60)

    with pytest.raises(LeaseLost):
        step_and_save(memory_store, loaded, policy, ABORT, clock(), lease_owner="this-task")
    intake.command(rollout_id, "pause", "dave")  # the revision moves on
    with pytest.raises(Conflict):
        step_and_save(memory_store, loaded, policy, ABORT, clock(), wake_outbox=queued.wake)

    assert memory_store.load(rollout_id).state.phase is not Phase.ABORTED
    assert len(trail(memory_store, rollout_id)) == len(before) + 1  # the pause, only
    assert memory_store.outbox.claim("t", clock(), 60) == [] and queued.outbox_wakes == 0


def test_a_wake_up_that_fails_is_logged_and_the_step_kept(
    intake: Intake,
    memory_store: MemoryStateStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id

    def broker_down() -> None:
        raise ConnectionError("broker unreachable")

    loaded = memory_store.load(rollout_id)
    stepped = step_and_save(
        memory_store, loaded, intake.policy("demo"), ABORT, clock(), wake_outbox=broker_down
    )

    assert memory_store.load(rollout_id).state.phase is stepped.state.phase is Phase.ABORTED
    assert f"rollout={rollout_id} could not wake the outbox delivery" in caplog.text


def test_a_command_does_not_wait_for_a_task_holding_the_lease_and_the_task_stands_down(
    intake: Intake, memory_store: MemoryStateStore, clock: FakeClock
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    task_loaded = memory_store.load(rollout_id)  # a task is working on this revision
    memory_store.leases.acquire(rollout_id, "task", 60)

    assert intake.command(rollout_id, "abort", "carol").state.phase is Phase.ABORTED

    with pytest.raises(Conflict):  # the task's save, lease and all, finds the revision moved on
        step_and_save(
            memory_store, task_loaded, intake.policy("demo"), ABORT, clock(), lease_owner="task"
        )
    assert memory_store.load(rollout_id).state.phase is Phase.ABORTED
