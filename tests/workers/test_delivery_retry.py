"""Whether the outbox retries or gives up is decided by the error's class (workers/errors.py):
a hand-over and a notice, failing with each kind of error their callees raise."""

from __future__ import annotations

import pytest

from tests.workers.conftest import FakeClock, job
from workers.actions import Released
from workers.delivery import Delivery
from workers.errors import (
    Conflict,
    CorruptRecord,
    InvalidJobError,
    NotFound,
    PermanentDeliveryError,
    StoreUnavailable,
    TemporaryDeliveryError,
    TemporaryError,
    UnknownPolicyError,
    UnsupportedFormat,
)
from workers.intake import Intake
from workers.notify.base import Notice
from workers.store import MemoryStateStore


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (NotFound("no rollout gone"), "given_up"),  # a successor that does not exist
        (InvalidJobError("policy 'demo' is invalid"), "retry"),  # a person can fix the file
        (UnknownPolicyError("no policy 'demo'"), "retry"),
        (TemporaryError("keeps changing", 1.0), "retry"),
        (StoreUnavailable("redis is loading"), "retry"),
        (Conflict("moved on"), "retry"),
        (CorruptRecord("rollout x: not JSON"), "retry"),  # a worker of another release may read it
        (UnsupportedFormat("rollout", "x", 9, (1,)), "retry"),
        (RuntimeError("a bug or an outage"), "retry"),
        (ValueError("a malformed payload"), "given_up"),
    ],
)
def test_a_hand_over_is_given_up_only_when_it_never_can_succeed(
    memory_store: MemoryStateStore,
    intake: Intake,
    clock: FakeClock,
    error: Exception,
    outcome: str,
) -> None:
    intake.submit(job(version="v2"), "alice")
    intake.submit(job(version="v3"), "bob")
    told: list[str] = []

    def release(successor: str, predecessor: str) -> None:
        told.append(successor)
        raise error

    delivery = Delivery(memory_store, {}, clock, release, record=intake.record, worker="t")

    (settled,) = delivery.run()
    assert told and settled.outcome == outcome
    assert str(error).split(":")[0] in (settled.error or "")
    if outcome == "retry":  # released for real once the error has passed
        delivery.release = lambda successor, predecessor: intake.tell(
            successor, Released(predecessor)
        )
        clock.advance(3600)
        assert [s.outcome for s in delivery.run()] == ["delivered"]


class Failing:
    """A notifier whose every post raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def post(self, notice: Notice) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "outcome", "wait"),
    [
        (TemporaryDeliveryError("oncall: HTTP 503"), "retry", 5.0),
        (TemporaryDeliveryError("oncall: HTTP 429", retry_after=60.0, status=429), "retry", 60.0),
        (PermanentDeliveryError("oncall: HTTP 404", status=404), "given_up", None),
    ],
)
def test_a_notice_is_retried_or_given_up_by_the_class_of_its_delivery_error(
    memory_store: MemoryStateStore,
    intake: Intake,
    clock: FakeClock,
    error: Exception,
    outcome: str,
    wait: float | None,
) -> None:
    rollout_id = intake.submit(job(), "alice").rollout_id
    intake.command(rollout_id, "abort", "carol", reason="bad build")
    delivery = Delivery(
        memory_store,
        {"oncall": Failing(error)},
        clock,
        lambda successor, predecessor: None,
        record=intake.record,
        worker="t",
    )

    (settled,) = delivery.run()
    assert settled.outcome == outcome
    if wait is not None:
        clock.advance(wait - 0.5)
        assert delivery.run() == []
        clock.advance(0.5)
        assert [s.outcome for s in delivery.run()] == ["retry"]
