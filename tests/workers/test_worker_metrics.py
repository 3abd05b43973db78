"""The workers' own metrics when looks fall behind: the overdue gauge reads the store, and a
late step says so in the log, once in a while rather than on every task."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from tests.workers.conftest import T0, FakeClock, Queued, job
from workers import metrics
from workers.intake import Intake
from workers.metrics import LATE_WARNING_EVERY, LATE_WARNING_SECONDS, LOGGER_NAME
from workers.store import MemoryStateStore


@pytest.fixture
def overdue_from(memory_store: MemoryStateStore, clock: FakeClock) -> Iterator[None]:
    metrics.watch_overdue(lambda: memory_store.count_due(clock() - 5.0))
    metrics._overdue.warned_at = float("-inf")  # another test's fake clock may have warned
    yield
    metrics.watch_overdue(lambda: 0)


def overdue_gauge() -> float | None:
    return REGISTRY.get_sample_value("canarist_rollouts_overdue")


def test_the_overdue_gauge_counts_the_stores_overdue_rollouts_at_scrape_time(
    overdue_from: None, intake: Intake, clock: FakeClock, queued: Queued
) -> None:
    for app in ("cart", "search", "checkout"):
        intake.submit(job(app=app), "alice")
    assert overdue_gauge() == 0  # due now, not yet late by more than the grace
    clock.advance(6.0)
    assert overdue_gauge() == 3


def test_the_gauge_is_unknown_rather_than_zero_when_the_store_is_down() -> None:
    def down() -> int:
        raise ConnectionError("redis is gone")

    metrics.watch_overdue(down)
    try:
        value = overdue_gauge()
        assert value is not None and math.isnan(value)  # NaN: not "nothing overdue"
    finally:
        metrics.watch_overdue(lambda: 0)


def test_a_late_step_warns_once_a_while_naming_how_many_are_overdue(
    overdue_from: None,
    intake: Intake,
    clock: FakeClock,
    queued: Queued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER_NAME)
    for app in ("cart", "search"):
        intake.submit(job(app=app), "alice")
    clock.advance(60.0)
    warnings = lambda: [r.getMessage() for r in caplog.records if "behind" in r.getMessage()]  # noqa: E731

    metrics.record_lateness(T0, T0 + LATE_WARNING_SECONDS / 2)  # a little late: silent
    assert warnings() == []
    metrics.record_lateness(T0, clock())
    assert len(warnings()) == 1
    assert "60.0 s late" in warnings()[0] and "(2 rollouts overdue)" in warnings()[0]
    metrics.record_lateness(T0, clock() + 1.0)  # the next late step, soon after: not again
    assert len(warnings()) == 1
    metrics.record_lateness(T0, clock() + LATE_WARNING_EVERY)
    assert len(warnings()) == 2
