"""Outbox delivery with in-memory notifiers: once per dedupe key and route, retried with
exponential backoff (or the receiver's Retry-After), given up on permanent failures or after
``give_up_after`` attempts -- never silently -- and the same notice every time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.workers.conftest import T0, FakeClock, Queued, job, trail
from workers.actions import EventKind, Notify, RecordEvent, Released
from workers.delivery import Backoff, Delivery
from workers.errors import StoreUnavailable
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.notify.notice import report_signature
from workers.state import Phase
from workers.store import MemoryStateStore

ABORTED_AT = T0 + 30


@pytest.fixture
def oncall() -> MemoryNotifier:
    return MemoryNotifier()


@pytest.fixture
def delivery(
    memory_store: MemoryStateStore, intake: Intake, clock: FakeClock, oncall: MemoryNotifier
) -> Delivery:
    return Delivery(
        memory_store,
        {"oncall": oncall},
        clock,
        lambda successor, predecessor: intake.tell(successor, Released(predecessor)),
        record=intake.record,
        worker="test",
        base_url="https://canarist.example",
    )


@pytest.fixture
def aborted(intake: Intake, clock: FakeClock) -> str:
    """A rollout aborted by a person at ABORTED_AT: one 'aborted' notice in the outbox."""
    rollout_id = intake.submit(job(), "alice").rollout_id
    clock.now = ABORTED_AT
    intake.command(rollout_id, "abort", "carol", reason="bad build")
    clock.advance(1)
    return rollout_id


def test_a_notice_is_delivered_once_and_acked(
    delivery: Delivery, oncall: MemoryNotifier, aborted: str, clock: FakeClock
) -> None:
    assert [settled.outcome for settled in delivery.run()] == ["delivered"]

    (notice,) = oncall.notices
    assert (notice.kind, notice.rollout_id, notice.policy) == ("aborted", aborted, "demo")
    assert notice.occurred_at == ABORTED_AT  # the transition's time, not the delivery's
    assert notice.dedupe_key == f"{aborted}/1/aborted"  # the item's id adds ">oncall"
    assert notice.report_url == f"https://canarist.example/v1/rollouts/{aborted}/report"
    clock.advance(3600)
    assert delivery.run() == []


def test_temporary_failures_are_retried_with_exponential_backoff(
    delivery: Delivery, oncall: MemoryNotifier, aborted: str, clock: FakeClock
) -> None:
    oncall.fail_next(2)
    start = clock()
    assert [s.outcome for s in delivery.run()] == ["retry"]  # attempt 1: again in 5 s
    clock.now = start + 4.9
    assert delivery.run() == []
    clock.now = start + 5
    assert [s.outcome for s in delivery.run()] == ["retry"]  # attempt 2: again in 10 s
    clock.now = start + 14.9
    assert delivery.run() == []
    clock.now = start + 15
    assert [s.outcome for s in delivery.run()] == ["delivered"]

    assert oncall.attempts == 3 and len(oncall.notices) == 1
    assert oncall.notices[0].occurred_at == ABORTED_AT


def test_backoff_doubles_up_to_a_cap_and_honours_a_longer_retry_after() -> None:
    backoff = Backoff(base=5, cap=300)
    assert [backoff.delay(n) for n in (1, 2, 3, 7, 20)] == [5, 10, 20, 300, 300]
    assert backoff.delay(1, retry_after=120) == 120
    assert backoff.delay(3, retry_after=1) == 20


def test_a_receivers_retry_after_is_respected(
    delivery: Delivery, oncall: MemoryNotifier, aborted: str, clock: FakeClock
) -> None:
    oncall.fail_next(1, retry_after=120)
    start = clock()
    delivery.run()
    clock.now = start + 60
    assert delivery.run() == []
    clock.now = start + 120
    assert [s.outcome for s in delivery.run()] == ["delivered"]


def undelivered(route: str, kind: str = "aborted") -> float:
    value = REGISTRY.get_sample_value(
        "canarist_alerts_undelivered_total", {"route": route, "kind": kind}
    )
    return value or 0.0


def test_a_permanent_failure_is_given_up_and_said_on_the_rollout_and_in_a_metric(
    delivery: Delivery,
    oncall: MemoryNotifier,
    aborted: str,
    clock: FakeClock,
    memory_store: MemoryStateStore,
) -> None:
    before = undelivered("oncall")
    oncall.fail_next(1, temporary=False)
    (settled,) = delivery.run()
    assert settled.outcome == "given_up" and "permanent" in (settled.error or "")

    (event,) = [e for e in trail(memory_store, aborted) if e.kind == EventKind.ALERT_UNDELIVERED]
    assert event.message.startswith("aborted alert not delivered to route 'oncall': refused")
    assert "scripted permanent failure" in event.message and event.at == clock()
    assert (event.data["routes"], event.data["kind"]) == (["oncall"], "aborted")
    assert undelivered("oncall") == before + 1
    clock.advance(30 * 86_400)
    assert delivery.run() == [] and oncall.attempts == 1  # given up for good


def test_a_route_the_service_does_not_configure_is_given_up_at_once(
    memory_store: MemoryStateStore, delivery: Delivery, aborted: str
) -> None:
    unknown = Delivery(
        memory_store, {}, delivery.clock, delivery.release, record=delivery.record, worker="x"
    )
    (settled,) = unknown.run()
    assert settled.outcome == "given_up"
    assert "alert route 'oncall' is not configured" in (settled.error or "")
    (event,) = [e for e in trail(memory_store, aborted) if e.kind == EventKind.ALERT_UNDELIVERED]
    assert "not configured" in event.message


def test_a_route_that_keeps_failing_is_given_up_after_its_attempts(
    memory_store: MemoryStateStore, intake: Intake, oncall: MemoryNotifier, clock: FakeClock
) -> None:
    patient = Delivery(
        memory_store,
        {"oncall": oncall},
        clock,
        lambda successor, predecessor: None,
        record=intake.record,
        backoff=Backoff(base=5, cap=300, give_up_after=3),
    )
    rollout_id = intake.submit(job(), "alice").rollout_id
    intake.command(rollout_id, "abort", "carol")
    oncall.fail_next(100)
    outcomes = []
    for _ in range(5):
        outcomes += [settled.outcome for settled in patient.run()]
        clock.advance(300)
    assert outcomes == ["retry", "retry", "given_up"] and oncall.attempts == 3
    (event,) = [e for e in trail(memory_store, rollout_id) if e.kind == EventKind.ALERT_UNDELIVERED]
    assert "3 attempts failed" in event.message


class DownForEvents(MemoryStateStore):
    """Loads work, saves fail as if Redis went away: the audit event cannot be written yet."""

    down = False

    def save(self, *args: Any, **kwargs: Any) -> int:
        if self.down:
            raise StoreUnavailable("redis unavailable (scripted)")
        return super().save(*args, **kwargs)


def test_an_alert_is_not_given_up_before_its_loss_is_recorded(
    policy_dir: Path, clock: FakeClock, queued: Queued, oncall: MemoryNotifier
) -> None:
    store = DownForEvents(clock)
    intake = Intake(store, policy_dir, clock, queued.enqueue, alert_routes={"oncall"})
    rollout_id = intake.submit(job(), "alice").rollout_id
    intake.command(rollout_id, "abort", "carol")
    recorded: list[RecordEvent] = []

    def record(target: str, event: RecordEvent) -> None:
        intake.record(target, event)
        recorded.append(event)

    delivery = Delivery(store, {"oncall": oncall}, clock, lambda s, p: None, record=record)
    oncall.fail_next(2, temporary=False)
    store.down = True
    assert [s.outcome for s in delivery.run()] == ["retry"]  # kept: the loss is not said yet
    store.down = False
    clock.advance(Backoff().base)
    assert [s.outcome for s in delivery.run()] == ["given_up"]
    assert [event.kind for event in recorded] == [EventKind.ALERT_UNDELIVERED]


def test_one_notice_per_dedupe_key_however_often_a_step_saves_it(
    memory_store: MemoryStateStore,
    delivery: Delivery,
    oncall: MemoryNotifier,
    intake: Intake,
    clock: FakeClock,
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    notice = Notify(
        "paused", rollout_id, "checkout", "shop", "v2", "waiting", ("oncall",), {}, "k/1"
    )
    for second in (1, 2):  # two saves (a replay, a re-assertion) of the same transition
        state, revision = memory_store.load(rollout_id)
        memory_store.save(replace(state, updated_at=T0 + second), revision, outbox=[notice])
    clock.advance(5)

    delivery.run()
    delivery.run()

    assert len(oncall.delivered("k/1")) == 1


def test_a_notice_carries_when_the_engine_decided_and_delivery_uses_it(
    memory_store: MemoryStateStore, delivery: Delivery, oncall: MemoryNotifier, aborted: str
) -> None:
    (item,) = memory_store.outbox.claim("peek", delivery.clock(), 0.0)
    assert item.format == 3 and item.payload["occurred_at"] == ABORTED_AT
    assert isinstance(item.action, Notify) and item.action.occurred_at == ABORTED_AT
    # whatever its key says and whatever the trail holds, the notice's own time is used
    notice = Notify("aborted", aborted, "checkout", "shop", "v2", "bad", ("oncall",))
    stamped = replace(notice, dedupe_key="not/a/key", occurred_at=T0 + 7)
    state, revision = memory_store.load(aborted)
    memory_store.save(state, revision, outbox=[stamped])
    delivery.clock.advance(60)  # type: ignore[attr-defined]
    delivery.run()
    assert sorted(n.occurred_at for n in oncall.notices) == [T0 + 7, ABORTED_AT]


def test_a_paused_notice_of_an_item_before_format_2_carries_the_time_in_its_key(
    memory_store: MemoryStateStore, delivery: Delivery, oncall: MemoryNotifier, intake: Intake
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    key = f"{rollout_id}/1/paused/1@{T0 + 42:.0f}"
    notice = Notify("paused", rollout_id, "checkout", "shop", "v2", "look", ("oncall",))
    assert notice.occurred_at is None  # as items of formats 0 and 1 read
    state, revision = memory_store.load(rollout_id)
    memory_store.save(state, revision, outbox=[replace(notice, dedupe_key=key)])
    delivery.run()
    assert oncall.notices[0].occurred_at == T0 + 42


def test_a_delivery_that_died_mid_post_is_posted_again_identically(
    memory_store: MemoryStateStore, delivery: Delivery, oncall: MemoryNotifier, aborted: str
) -> None:
    memory_store.outbox.claim("crashed-worker", delivery.clock(), 60)  # and never settled
    assert delivery.run() == []
    delivery.clock.advance(60)  # type: ignore[attr-defined]
    delivery.run()
    (notice,) = oncall.notices
    assert notice.occurred_at == ABORTED_AT


def test_with_two_routes_a_retry_posts_only_where_it_failed(
    memory_store: MemoryStateStore, intake: Intake, clock: FakeClock
) -> None:
    """One outbox item per route: Slack, which shows every post, never sees a repeat because
    another route failed."""
    first, second = MemoryNotifier(), MemoryNotifier()
    second.fail_next(1)
    rollout_id = intake.submit(job(app="cart"), "alice").rollout_id
    key = f"{rollout_id}/1/paused/0@{T0:.0f}"
    notice = Notify("paused", rollout_id, "cart", "shop", "v2", "x", ("a", "b"), {}, key)
    state, revision = memory_store.load(rollout_id)
    memory_store.save(state, revision, outbox=[notice])
    two = Delivery(
        memory_store,
        {"a": first, "b": second},
        clock,
        lambda s, p: None,
        record=intake.record,
        worker="t",
    )

    assert sorted(s.outcome for s in two.run()) == ["delivered", "retry"]
    clock.advance(5)
    assert [s.outcome for s in two.run()] == ["delivered"]
    assert (len(first.notices), len(second.notices)) == (1, 1)
    assert (first.attempts, second.attempts) == (1, 2)
    assert first.notices[0] == second.notices[0]  # the same alert on every route


def test_a_hand_over_blocked_by_a_broken_policy_is_retried_not_parked(
    memory_store: MemoryStateStore,
    intake: Intake,
    delivery: Delivery,
    clock: FakeClock,
    policy_dir: Path,
) -> None:
    first = intake.submit(job(version="v2"), "alice").rollout_id
    second = intake.submit(job(version="v3"), "bob").rollout_id
    for rollout_id in (first, second):  # rollouts stored before pinning read the file by name
        state, revision = memory_store.load(rollout_id)
        memory_store.save(replace(state, policy_digest=None), revision)
    good = (policy_dir / "demo.yaml").read_text()
    (policy_dir / "demo.yaml").write_text(good.replace("interval: 5s", "interval: soon"))

    (settled,) = delivery.run()
    assert settled.outcome == "retry" and "demo.yaml" in (settled.error or "")

    (policy_dir / "demo.yaml").write_text(good)  # a person fixes the file
    clock.advance(Backoff().base)
    assert [s.outcome for s in delivery.run()] == ["delivered"]
    assert memory_store.load(second).state.phase is Phase.PROGRESSING
    assert memory_store.load(first).state.superseded_by == second


def test_a_hand_over_between_pinned_rollouts_needs_no_policy_file(
    memory_store: MemoryStateStore, intake: Intake, delivery: Delivery, policy_dir: Path
) -> None:
    first = intake.submit(job(version="v2"), "alice").rollout_id
    second = intake.submit(job(version="v3"), "bob").rollout_id
    (policy_dir / "demo.yaml").write_text("name: demo\nanalysis:\n  interval: soon\n")
    assert [s.outcome for s in delivery.run()] == ["delivered"]
    assert memory_store.load(second).state.phase is Phase.PROGRESSING
    assert memory_store.load(first).state.superseded_by == second


def test_with_a_report_secret_the_alert_links_a_signed_report(
    memory_store: MemoryStateStore, clock: FakeClock, oncall: MemoryNotifier, aborted: str
) -> None:
    secret = "0123456789abcdef-report"
    signed = Delivery(
        memory_store,
        {"oncall": oncall},
        clock,
        lambda successor, predecessor: None,
        record=lambda rollout_id, event: None,
        base_url="https://canarist.example",
        report_secret=secret,
    )

    assert [settled.outcome for settled in signed.run()] == ["delivered"]
    (notice,) = oncall.notices
    signature = report_signature(secret, aborted)
    assert notice.report_url == (
        f"https://canarist.example/v1/rollouts/{aborted}/report?sig={signature}"
    )
