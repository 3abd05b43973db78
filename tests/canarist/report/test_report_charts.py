"""The page shows one bar and one score: the ones the verdict recorded, never recomputed.

Where a ruling must say something a real run cannot be made to say exactly (an early FAIL's
own bar), a real rollout's audit trail is copied with that one judgement changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from analyzer.sources.prometheus import PrometheusSource
from canarist.report import Report, build_report, render
from canarist.report.formatting import number
from tests.canarist.report.page_reading import Page
from tests.canarist.report.rollout_scenario import Played
from workers.actions import RecordEvent
from workers.state import RolloutState
from workers.store import AuditEvent, MemoryStateStore, StateStore


@pytest.fixture(scope="module")
def source(played: Played) -> Iterator[PrometheusSource]:
    with PrometheusSource(played.prometheus_url) as prometheus:
        yield prometheus


def report_of(
    store: StateStore, played: Played, source: PrometheusSource, state: RolloutState
) -> Report:
    policy = played.intake.policy(state.policy)
    return build_report(store, source, policy, state.id, now=time.time())


def copy_of(
    played: Played, state: RolloutState, change: Callable[[AuditEvent], Mapping[str, Any]]
) -> MemoryStateStore:
    """The rollout's audit trail in a store of its own, each event's data as ``change`` says."""
    store = MemoryStateStore()
    events = played.store.events(state.id, limit=500)
    first, *rest = events
    at = replace(state, updated_at=first.at)
    revision = store.create(
        at, events=[RecordEvent(first.kind, first.message, change(first), first.actor)]
    ).revision
    for event in rest:
        data = change(event)
        revision = store.save(
            replace(state, updated_at=event.at),
            revision,
            events=[RecordEvent(event.kind, event.message, data, event.actor)],
        )
    store.save(state, revision)
    return store


def judgements(data: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    verdict = data.get("verdict")
    if not verdict:
        return None
    return next(m["judgement"] for m in verdict["metrics"] if m["name"] == name)


def test_card_and_chart_show_the_rulings_own_bar_and_the_verdicts_score(
    played: Played, source: PrometheusSource
) -> None:
    """An early FAIL held to a stricter bar: the card and the chart say that bar, the looks
    before it keep theirs, and the score is the verdict's, as recorded."""

    def early_bar(event: AuditEvent) -> Mapping[str, Any]:
        data = copy.deepcopy(dict(event.data))
        judgement = judgements(data, "error-ratio")
        if judgement is not None and event.kind == "phase":
            judgement["threshold"] = 40_000.0
            judgement["e_value"] = 52_345.0
            data["verdict"]["score"] = 37.5
        return data

    state = played.aborted
    report = report_of(copy_of(played, state, early_bar), played, source, state)
    page = Page(render(report))
    card = page.by_id("metric-error-ratio").joined()

    assert "Evidence e-value 52,345, bar 40,000" in card
    rules = [rule.joined() for rule in page.within("evidence", "g", "rule")]
    assert rules[0] == "FAIL at 40,000"
    (earlier,) = [line for line in page.within("evidence", "g", "series") if "rule" in line.classes]
    assert earlier.joined() == "the bar at each look"  # the looks before the FAIL: 200 each
    looks = page.within("evidence", "circle", "look")
    assert "(bar 200)" in looks[0].joined() and "(bar 40,000)" in looks[4].joined()
    assert "Score 37.5 of 100" in page.all("header")[0].joined()
    scores = [cell.joined() for cell in page.within("evidence", "td", "score")]
    assert scores == [number(look.verdict.score) for look in report.history.looks]
    assert scores[-1] == "37.5"
