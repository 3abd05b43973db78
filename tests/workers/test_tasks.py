"""The tasks' logic over an in-memory Runtime: a fake clock, the memory store and platform, and
a metric source with constant counts. ``drive`` plays Celery: it runs the last requeued
``advance`` after its countdown, as a worker would."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.workers.conftest import (
    ARGS_POLICY,
    T0,
    FakeClock,
    FakeSource,
    Queued,
    drive,
    job,
    task_runtime,
)
from workers.actions import (
    EnsureCanary,
    Notify,
    PlatformAction,
    Promote,
    Rollback,
    SetTraffic,
)
from workers.celery_door import submit
from workers.engine import FIRST_POLL_SECONDS, POLL_SECONDS
from workers.engine.run import FOLLOW_KINDS
from workers.errors import Conflict, StoreUnavailable
from workers.intake import Intake
from workers.metrics import LOGGER_NAME
from workers.notify.memory import MemoryNotifier
from workers.platforms import Failed, NotYet, Ready
from workers.platforms.memory import MemoryPlatform
from workers.state import Phase, RolloutState
from workers.store import MemoryStateStore
from workers.tasks import (
    URGENT_BUSY_RETRY,
    AdvanceResult,
    Runtime,
    advance,
    reconcile,
)


@pytest.fixture
def platform() -> MemoryPlatform:
    return MemoryPlatform()


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def oncall() -> MemoryNotifier:
    return MemoryNotifier()


@pytest.fixture
def runtime(
    memory_store: MemoryStateStore,
    intake: Intake,
    source: FakeSource,
    platform: MemoryPlatform,
    clock: FakeClock,
    queued: Queued,
    oncall: MemoryNotifier,
) -> Runtime:
    return task_runtime(memory_store, intake, source, platform, clock, queued, oncall)


def started(runtime: Runtime, queued: Queued, **fields: Any) -> str:
    return runtime.intake.submit(job(**fields), "alice").rollout_id


def applied(platform: MemoryPlatform, rollout_id: str) -> list[PlatformAction]:
    return platform.actions_for(rollout_id)


def test_a_healthy_canary_walks_every_stage_once_to_promoted(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    rollout_id = started(runtime, queued)

    state = drive(runtime, queued, clock)

    assert state.phase is Phase.PROMOTED
    assert applied(platform, rollout_id) == [
        EnsureCanary(),
        SetTraffic(50),
        SetTraffic(100),
        Promote(),
    ]
    assert clock() - T0 == pytest.approx(10.0)  # one 10 s analysis step; the rest was instant


def test_a_canary_with_5x_errors_is_rolled_back_with_one_alert(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform, source: FakeSource
) -> None:
    source.canary_errors = 5.0
    rollout_id = started(runtime, queued)

    state = drive(runtime, queued, clock)

    assert state.phase is Phase.ABORTED
    assert isinstance(applied(platform, rollout_id)[-1], Rollback)
    notices = [item.action for item in runtime.store.outbox.claim("t", clock(), 60)]
    alerts = [n.kind for n in notices if isinstance(n, Notify) and n.kind not in FOLLOW_KINDS]
    assert alerts == ["aborted"]  # and the start and steps, for routes that follow them
    assert queued.outbox_wakes >= 1


def test_a_stale_or_leased_task_does_nothing(
    runtime: Runtime, queued: Queued, platform: MemoryPlatform
) -> None:
    rollout_id = started(runtime, queued)
    assert advance(runtime, rollout_id, 7) is AdvanceResult.STALE
    runtime.store.leases.acquire(rollout_id, "another-worker", 30)
    assert advance(runtime, rollout_id, 1) is AdvanceResult.BUSY
    assert runtime.store.load(rollout_id).revision == 1
    assert applied(platform, rollout_id) == []
    assert advance(runtime, "nope", 1) is AdvanceResult.GONE


def test_a_rolling_back_rollout_steps_ahead_of_the_routine_ones(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    """Its look-ahead steps are routine; once aborted, every requeue until rolled back is
    urgent (never behind overloaded workers' late looks), and then the routine ones again."""
    rollout_id = started(runtime, queued)
    advance(runtime, *queued.advance.pop()[:2])  # 50%, analysing: its next look is routine
    assert queued.advance and not queued.urgent

    platform.script(NotYet("old pods starting"), NotYet(), Ready())
    runtime.intake.command(rollout_id, "abort", "alice", reason="p99 doubled")
    polls = []
    for _ in range(3):  # the rollback asked for, not ready, not ready, ready
        rollout_id, revision, countdown = queued.advance.pop()
        clock.advance(countdown)
        advance(runtime, rollout_id, revision, urgent=True)
        polls.append(runtime.store.load(rollout_id).state.phase)
    assert polls == [Phase.ABORTING, Phase.ABORTING, Phase.ABORTED]
    assert [entry[0] for entry in queued.urgent] == [rollout_id, rollout_id]
    # a poll after the first wait; then ready when re-asserted: on at once
    assert [entry[2] for entry in queued.urgent] == [FIRST_POLL_SECONDS, 0.0]


def test_an_urgent_task_that_finds_the_lease_held_tries_again_within_a_second(
    runtime: Runtime, queued: Queued
) -> None:
    rollout_id = started(runtime, queued)
    queued.advance.clear()
    runtime.store.leases.acquire(rollout_id, "a-routine-step", 30)

    assert advance(runtime, rollout_id, 1, urgent=True) is AdvanceResult.BUSY
    assert queued.urgent == [(rollout_id, 1, URGENT_BUSY_RETRY)]
    assert advance(runtime, rollout_id, 1) is AdvanceResult.BUSY  # routine: half a lease
    assert queued.advance[-1] == (rollout_id, 1, runtime.lease_seconds / 2)
    assert len(queued.urgent) == 1


def test_the_advance_results_keep_the_words_logs_and_metrics_use() -> None:
    assert [str(result) for result in AdvanceResult] == [
        "stepped", "stale", "idle", "busy", "retry", "gone", "unreadable", "no-policy", "blocked"
    ]  # fmt: skip


def test_a_task_that_loses_the_compare_and_set_applies_nothing(
    runtime: Runtime, queued: Queued, platform: MemoryPlatform, memory_store: MemoryStateStore
) -> None:
    rollout_id = started(runtime, queued)
    queued.advance.clear()
    original = memory_store.save

    def racing(*args: Any, **kwargs: Any) -> int:
        raise Conflict("another worker saved first")

    memory_store.save = racing  # type: ignore[method-assign]
    try:
        assert advance(runtime, rollout_id, 1) == "stale"
    finally:
        memory_store.save = original  # type: ignore[method-assign]
    assert applied(platform, rollout_id) == [] and queued.advance == []


def test_a_change_not_ready_yet_is_polled_and_re_asserted(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    platform.script(NotYet("pods starting"), NotYet("pods starting"), NotYet(), Ready())
    rollout_id = started(runtime, queued)

    advance(runtime, *queued.advance.pop()[:2])  # starts it: asks for 50%, not ready yet
    assert queued.advance[-1][0::2] == (rollout_id, FIRST_POLL_SECONDS)
    state = drive(runtime, queued, clock, wakes=1)  # NotYet: re-asserts, polls again
    assert state.phase is Phase.PROGRESSING and state.stage_index == 0

    assert drive(runtime, queued, clock).phase is Phase.PROMOTED
    actions = applied(platform, rollout_id)
    assert actions[:4] == [EnsureCanary(), SetTraffic(50), EnsureCanary(), SetTraffic(50)]


def test_a_slow_change_is_polled_ever_less_often_and_a_busy_platform_after_its_own_wait(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    platform.script(*[NotYet("pods starting")] * 20, Ready())
    started(runtime, queued)
    countdowns = []
    for _ in range(6):  # each wake re-asserts the change, asks again and schedules the next
        rollout_id, revision, countdown = queued.advance.pop()
        countdowns.append(countdown)
        clock.advance(countdown)
        advance(runtime, rollout_id, revision)
    assert countdowns == [0.0, FIRST_POLL_SECONDS, 2.0, 4.0, 8.0, POLL_SECONDS]

    platform.fail_next(1)  # the apiserver is busy at the next re-assert: 1 s, not a full poll
    rollout_id, revision, countdown = queued.advance.pop()
    clock.advance(countdown)
    assert advance(runtime, rollout_id, revision) == "stepped"
    assert queued.advance[-1][2] == 1.0
    assert drive(runtime, queued, clock).phase is Phase.PROMOTED


def test_a_platform_failure_rolls_back_and_alerts(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    # Asked right after the apply (the answer only says "wake now"), then at that wake-up.
    deadline = Failed("progress deadline exceeded")
    platform.script(deadline, deadline, Ready())
    rollout_id = started(runtime, queued)
    advance(runtime, *queued.advance.pop()[:2])

    state = drive(runtime, queued, clock)

    assert state.phase is Phase.FAILED and state.awaiting is None
    assert "progress deadline exceeded" in (state.abort_reason or "")
    assert isinstance(applied(platform, rollout_id)[-1], Rollback)


def test_an_apply_that_fails_is_asked_again_at_the_next_wake_up(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    platform.fail_next(1)
    platform.script(NotYet("nothing applied"), Ready())  # what a real platform would see
    rollout_id = started(runtime, queued)
    assert advance(runtime, *queued.advance.pop()[:2]) == "stepped"
    assert queued.advance[-1][2] == 1.0  # the platform's own wait, not a full poll
    assert drive(runtime, queued, clock).phase is Phase.PROMOTED
    assert applied(platform, rollout_id)[0:2] == [EnsureCanary(), SetTraffic(50)]


def test_countdowns_stay_under_half_the_visibility_timeout(
    runtime: Runtime, queued: Queued, clock: FakeClock
) -> None:
    runtime.max_countdown = 2.0
    started(runtime, queued)
    hops: list[float] = []
    for _ in range(40):
        if not queued.advance:
            break
        hops.append(queued.advance[-1][2])
        state = drive(runtime, queued, clock, wakes=1)
        if state.phase is Phase.PROMOTED:
            break
    assert state.phase is Phase.PROMOTED
    assert max(hops) <= 2.0


def test_without_prometheus_the_step_extends_and_never_promotes(
    runtime: Runtime, queued: Queued, clock: FakeClock, source: FakeSource
) -> None:
    rollout_id = started(runtime, queued)
    source.failing = True
    state = runtime.store.load(rollout_id).state
    while not state.extensions and clock() < T0 + 60:
        state = drive(runtime, queued, clock, wakes=1)
    assert state.phase is Phase.PROGRESSING and state.extensions == 1
    assert state.tally.consecutive_errors >= 2

    source.failing = False
    assert drive(runtime, queued, clock).phase is Phase.PROMOTED


def test_an_analysis_that_cannot_run_is_an_error_look_not_a_crash(
    runtime: Runtime,
    queued: Queued,
    clock: FakeClock,
    policy_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rollout_id = started(runtime, queued, policy="with-args", args={"route": "/api"})
    advance(runtime, *queued.advance.pop()[:2])
    advance(runtime, *queued.advance.pop()[:2])  # weight ready: the analysis window opens
    # A rollout stored before pinning reads its policy file by name, edited since: a new arg
    # the job never gave (a pinned one never sees the edit: test_celery_pinning.py).
    loaded = runtime.store.load(rollout_id)
    unpinned = replace(loaded.state, policy_digest=None)
    runtime.requeue(rollout_id, runtime.store.save(unpinned, loaded.revision), 0.0)
    changed = ARGS_POLICY.replace("  - name: route\n", "  - name: route\n  - name: zone\n")
    (policy_dir / "with-args.yaml").write_text(changed)

    state = runtime.store.load(rollout_id).state
    while not state.tally.looks:
        state = drive(runtime, queued, clock, wakes=1)

    assert state.phase is Phase.PROGRESSING
    assert state.tally.consecutive_errors == 1  # counts toward consecutive_error_limit
    assert f"rollout={rollout_id} analysis could not run" in caplog.text
    assert "'zone'" in caplog.text
    assert runtime.store.load(rollout_id).state == state


def test_a_store_outage_requeues_the_same_revision(
    runtime: Runtime, queued: Queued, memory_store: MemoryStateStore
) -> None:
    rollout_id = started(runtime, queued)
    queued.advance.clear()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis is loading its AOF", 3.0)

    memory_store.load = down  # type: ignore[method-assign]
    assert advance(runtime, rollout_id, 1) == "retry"
    assert queued.advance == [(rollout_id, 1, 3.0)]


def test_the_reconciler_re_enqueues_only_overdue_rollouts(
    runtime: Runtime, queued: Queued, clock: FakeClock, memory_store: MemoryStateStore
) -> None:
    late = started(runtime, queued, app="cart")
    on_time = started(runtime, queued, app="search")
    state, revision = memory_store.load(on_time)
    memory_store.save(replace(state, next_due_at=T0 + 60), revision)
    queued.advance.clear()
    clock.advance(runtime.reconcile_grace + 1)

    assert reconcile(runtime) == [late]
    assert queued.advance == [(late, 1, 0.0)]


def test_the_reconciler_does_not_double_a_late_message_every_period(
    runtime: Runtime, queued: Queued, clock: FakeClock, memory_store: MemoryStateStore
) -> None:
    """Overloaded workers hold late messages, not lost ones: each revision is re-enqueued once,
    then again only after it has been late half as long again; a new revision at once."""
    late = started(runtime, queued, app="cart")
    queued.advance.clear()
    clock.advance(runtime.reconcile_grace + 10)  # 10 s past the grace: held for that long

    assert reconcile(runtime) == [late]
    assert reconcile(runtime) == [late]  # the next period: still overdue, not sent again
    assert queued.advance == [(late, 1, 0.0)]
    clock.advance(runtime.reconcile_grace + 10)  # half as late again: its message was lost too
    assert reconcile(runtime) == [late]
    assert queued.advance == [(late, 1, 0.0), (late, 1, 0.0)]

    state, revision = memory_store.load(late)
    memory_store.save(state, revision)  # the rollout moved on, and is overdue again
    queued.advance.clear()
    assert reconcile(runtime) == [late]
    assert queued.advance == [(late, revision + 1, 0.0)]


def test_the_reconciler_re_enqueues_a_lost_rollback_ahead_of_the_routine_steps(
    runtime: Runtime, queued: Queued, clock: FakeClock, platform: MemoryPlatform
) -> None:
    rollout_id = started(runtime, queued)
    advance(runtime, *queued.advance.pop()[:2])
    platform.script(NotYet("old pods starting"))
    runtime.intake.command(rollout_id, "abort", "alice", reason="bad")
    advance(runtime, *queued.advance.pop()[:2], urgent=True)  # its poll message is then lost
    assert runtime.store.load(rollout_id).state.phase is Phase.ABORTING
    queued.advance.clear()
    queued.urgent.clear()
    clock.advance(runtime.reconcile_grace + FIRST_POLL_SECONDS + 1)

    assert reconcile(runtime) == [rollout_id]
    assert queued.urgent == queued.advance and len(queued.urgent) == 1


def test_a_pending_successor_makes_sure_its_predecessor_stands_down(
    runtime: Runtime, queued: Queued, memory_store: MemoryStateStore, clock: FakeClock
) -> None:
    """A submission that crashed between creating the new rollout and telling the old one."""
    first = started(runtime, queued)
    spec = memory_store.load(first).state.spec
    orphan = RolloutState.new(
        "checkout-orphan", app="checkout", namespace="shop", policy="demo", spec=spec,
        now=clock(), supersedes=first,
    )  # fmt: skip
    memory_store.create(replace(orphan, next_due_at=clock()))

    advance(runtime, "checkout-orphan", 1)

    assert memory_store.load(first).state.superseded_by == "checkout-orphan"
    runtime.delivery.run()  # the hand-over
    assert memory_store.load("checkout-orphan").state.phase is Phase.PROGRESSING


def test_the_celery_door_validates_and_submits(runtime: Runtime, queued: Queued) -> None:
    payload = job(idempotency_key="ci-1").model_dump(mode="json")
    result = submit(runtime.intake, payload, "ci")
    assert result["created"] is True
    assert submit(runtime.intake, payload, "ci")["rollout_id"] == result["rollout_id"]
    _, events = runtime.intake.get(result["rollout_id"])
    assert events[0].actor == "ci"

    refused = submit(runtime.intake, {**payload, "app": "Bad App"}, "ci")
    assert "app" in refused["error"]
    assert "no policy" in submit(runtime.intake, {**payload, "policy": "nope"}, "ci")["error"]


@pytest.mark.parametrize(
    ("change", "actor", "said"),
    [
        ({"baseline": 'app="a\u0001b"'}, "ci", "baseline: control character 0x01"),
        ({"canary": "x" * 10_000_000}, "ci", "canary: String should have at most 1024"),
        ({"args": {f"a{i}": "1" for i in range(100_000)}}, "ci", "args: at most 32 args"),
        ({"policy": "with-args", "args": {"colour": "red"}}, "ci", "declares no arg colour"),
        ({"idempotency_key": "ci-1", "version": "v3"}, "ci", "already used in namespace"),
        ({}, "x" * 1000, "actor: 1 to 128 printable"),
        ({}, {"not": "a name"}, "actor:"),
    ],
)
def test_the_celery_door_answers_every_refusal_briefly_and_never_raises(
    runtime: Runtime,
    memory_store: MemoryStateStore,
    change: dict[str, Any],
    actor: Any,
    said: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = job(idempotency_key="ci-1").model_dump(mode="json")
    assert submit(runtime.intake, payload, "ci")["created"]
    caplog.set_level(logging.ERROR, logger=LOGGER_NAME)

    answer = submit(runtime.intake, {**payload, **change}, actor)

    assert set(answer) == {"error"} and said in answer["error"]
    assert len(answer["error"]) < 1000
    assert len(memory_store.list_rollouts()) == 1
    (logged,) = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert "refused" in logged and len(logged) < 1500


@pytest.mark.parametrize("payload", [None, "a string", ["a", "list"], {"app": ["checkout"]}])
def test_the_celery_door_refuses_payloads_that_are_not_jobs(runtime: Runtime, payload: Any) -> None:
    assert submit(runtime.intake, payload, "ci")["error"].startswith("invalid job: ")


def test_steps_are_counted_and_every_log_line_names_the_rollout(
    runtime: Runtime, queued: Queued, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    promoted = sample("canarist_decisions_total", decision="promoted")
    passes = sample("canarist_analysis_looks_total", outcome="pass")
    started_to = sample(
        "canarist_phase_transitions_total", **{"from": "pending", "to": "progressing"}
    )
    late = sample("canarist_step_lateness_seconds_count")
    analyses = sample("canarist_analysis_duration_seconds_count")
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    rollout_id = started(runtime, queued)
    drive(runtime, queued, clock)

    assert sample("canarist_decisions_total", decision="promoted") == promoted + 1
    assert sample("canarist_analysis_looks_total", outcome="pass") == passes + 1
    assert (
        sample("canarist_phase_transitions_total", **{"from": "pending", "to": "progressing"})
        == started_to + 1
    )
    assert sample("canarist_step_lateness_seconds_count") > late
    assert sample("canarist_analysis_duration_seconds_count") == analyses + 2
    lines = [record for record in caplog.records if record.name == LOGGER_NAME]
    assert lines
    assert all(getattr(record, "rollout_id", None) == rollout_id for record in lines)
    assert all(record.getMessage().startswith(f"rollout={rollout_id} ") for record in lines)
