"""The report page of real rollouts: what an on-call engineer reads, and that it holds up.

Rendered from the session's rollouts (conftest.py: real Redis, real Prometheus, real engine and
analyzer), read back as text and elements the way a browser would parse them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analyzer.judges.decisions import TIMES
from analyzer.policy import Policy
from analyzer.sources.prometheus import PrometheusSource
from canarist.demo.stack import HOST, free_port
from canarist.report import build_report, render_report, write_report
from canarist.report.formatting import Unit, duration, utc
from canarist.report.history import Look, read_history
from canarist.report.measures import measure_for
from tests.canarist.report.page_reading import Page
from tests.canarist.report.rollout_scenario import HOSTILE_REASON, Played, Rollout, past_start
from tests.workloads import Behaviour
from workers.state import Phase, RolloutState


@pytest.fixture(scope="module")
def source(played: Played) -> Iterator[PrometheusSource]:
    with PrometheusSource(played.prometheus_url) as prometheus:
        yield prometheus


def policy_of(played: Played, state: RolloutState) -> Policy:
    return played.intake.policy(state.policy)


def page_of(played: Played, source: PrometheusSource, state: RolloutState) -> Page:
    html = render_report(played.store, source, policy_of(played, state), state.id, now=time.time())
    return Page(html)


def looks_of(played: Played, state: RolloutState) -> tuple[Look, ...]:
    """The looks the audit trail recorded for a rollout, as the report reads them."""
    events = played.store.events(state.id, limit=500)
    return read_history(state, events, policy_of(played, state)).looks


def test_an_aborted_rollout_says_what_why_who_and_when_first(
    played: Played, source: PrometheusSource
) -> None:
    state = played.aborted
    page = page_of(played, source, state)
    header = page.all("header")[0].joined()

    assert state.abort_reason is not None
    assert state.abort_reason.startswith(f"error-ratio {TIMES}")  # the metric and effect first
    assert state.abort_reason.endswith("(1 FAIL look(s), failure_limit 0)")
    assert f"{state.app} v2 aborted Aborted: {state.abort_reason}" in header
    aborting = next(
        e for e in played.store.events(state.id, limit=500) if e.data.get("to") == "aborting"
    )
    assert "Decided by Canarist (automatic, on the analysis)" in header
    assert f"Submitted {utc(state.created_at)}" in header
    assert f"Decided {utc(aborting.at)}" in header
    assert f"Took {duration(aborting.at - state.created_at)}" in header
    assert "Submitted by ci-pipeline" in header
    assert "Policy default-canary" in header
    assert f"Baseline the stable fleet: {state.spec.baseline_selector}" in header
    # The metric behind the decision links to its card.
    driver = page.within("metrics", "article")[0]
    assert driver.attrs["id"] == "metric-error-ratio"
    assert [a.attrs["href"] for a in page.all("a")] == ["#metric-error-ratio"]


def test_the_failing_metric_shows_its_ruling_and_both_versions_over_time(
    played: Played, source: PrometheusSource
) -> None:
    page = page_of(played, source, played.aborted)
    card = page.by_id("metric-error-ratio").joined()

    assert card.startswith(f"error-ratio FAIL critical error-ratio {TIMES}")
    effect = r"Effect \(canary vs baseline\) \+[\d,]+% \(interval \+[\d.,]+% … \+[\d,]+%\)"
    assert re.search(effect, card)
    assert "Tolerance 25% increase allowed" in card
    assert re.search(r"Evidence e-value [\d,]+, bar 200", card)
    assert re.search(r"Baseline error ratio 0\.\d+%, errors \d+, requests [\d,]+,", card)
    lines = page.within("metric-error-ratio", "g", "series")
    assert [sorted(line.classes) for line in lines] == [
        ["baseline", "series"],
        ["canary", "series"],
    ]
    paths = page.within("metric-error-ratio", "path")
    assert len(paths) == 2 and all(path.attrs["d"].count("L") >= 4 for path in paths)
    windows = page.within("metric-error-ratio", "rect", "window")
    assert [window.joined() for window in windows] == ["stage 2"]
    marks = [mark.joined() for mark in page.within("metric-error-ratio", "g", "mark")]
    assert marks == ["5%", "aborted: rollback"]
    assert "no data" not in card


def test_the_charts_hold_what_the_judges_saw(played: Played, source: PrometheusSource) -> None:
    state = played.aborted
    report = build_report(played.store, source, policy_of(played, state), state.id, now=time.time())
    errors = next(series for series in report.series if series.name == "error-ratio")
    look = report.history.looks[-1]
    judged = (errors.times > look.window_start) & (errors.times <= look.at)
    ruling = next(m for m in look.verdict.metrics if m.name == "error-ratio").judgement
    measure = measure_for(errors.metric, ruling)
    baseline, canary = (values[judged] for values in errors.plotted(measure))

    assert measure.label == "share of errors (errors / total)" and measure.unit is Unit.RATIO
    assert judged.sum() == ruling.canary["intervals"] == len(report.history.looks)
    assert np.nanmean(baseline) == pytest.approx(ruling.baseline["error_ratio"], rel=0.2)
    assert np.nanmean(canary) == pytest.approx(ruling.canary["error_ratio"], rel=0.3)
    assert np.nanmean(canary) > 3 * np.nanmean(baseline)


def test_the_evidence_grows_look_by_look_to_the_bar(
    played: Played, source: PrometheusSource
) -> None:
    page = page_of(played, source, played.aborted)
    rows = [row.joined() for row in page.within("evidence", "tr")][1:]

    assert len(rows) == len(looks_of(played, played.aborted)) >= 3
    assert all("INCONCLUSIVE" in row.split("error-ratio")[0] for row in rows[:-1])
    assert re.search(r"FAIL decided [\d.]+ FAIL e-value [\d,]+ INCONCLUSIVE e-value", rows[-1])
    e_values = [float(re.sub(r"[,]", "", re.search(r"e-value ([\d.,]+)", row)[1])) for row in rows]
    assert e_values[-1] >= 200 > e_values[0]
    rules = [rule.joined() for rule in page.within("evidence", "g", "rule")]
    assert rules[0] == "FAIL at 200"
    looks = page.within("evidence", "circle", "look")
    assert [sorted(look.classes - {"look"}) for look in looks][: len(rows)] == [
        ["inconclusive"]
    ] * (len(rows) - 1) + [["fail"]]


def test_a_promoted_rollout_shows_each_step_and_its_passing_looks(
    played: Played, source: PrometheusSource
) -> None:
    page = page_of(played, source, played.promoted)
    header = page.all("header")[0].joined()

    assert "Promoted: v2 passed the analysis of 2 step(s) and is the stable version" in header
    assert "last analysis: score 100 reaches pass_score 95" in header
    for name in ("error-ratio", "latency", "memory"):
        card = page.by_id(f"metric-{name}")
        assert card.joined().startswith(f"{name} PASS")
        marks = [mark.joined() for mark in page.within(f"metric-{name}", "g", "mark")]
        assert marks == ["20%", "50%", "100%", "promoted"]
        windows = [w.joined() for w in page.within(f"metric-{name}", "rect", "window")]
        assert windows == ["stage 2", "stage 4"]
    memory = page.by_id("metric-memory").joined()
    assert re.search(r"Evidence p-value [\d.]+, bar 0.02", memory)


def test_a_rollout_in_progress_says_where_it_stands(
    played: Played, source: PrometheusSource
) -> None:
    rollout = Rollout(
        played.intake,
        played.prometheus_url,
        played.clock,
        policy="quick-canary",
        canary=Behaviour(),
        start=past_start(2),
    )
    state = rollout.drive(until=lambda state: state.last_look_at is not None)
    page = page_of(played, source, state)
    header = page.all("header")[0].joined()

    assert state.phase is Phase.PROGRESSING
    assert "progressing In progress: stage 2/5: analyze 4m, canary at 20%; last look: " in header
    assert "Decided by not decided yet" in header
    assert page.by_id("metric-error-ratio").joined().startswith("error-ratio INCONCLUSIVE")
    marks = [mark.joined() for mark in page.within("metric-error-ratio", "g", "mark")]
    assert marks == ["20%"]


def test_every_audit_event_is_in_the_timeline_in_order(
    played: Played, source: PrometheusSource
) -> None:
    state = played.promoted
    events = played.store.events(state.id, limit=500)
    page = page_of(played, source, state)
    rows = page.within("timeline", "tr")[1:]

    assert len(rows) == len(events) == 20
    for row, event in zip(rows, events, strict=True):
        assert row.joined().startswith(utc(event.at))
        assert row.joined().endswith(" ".join(event.message.split()))
    assert rows[0].joined() == (
        f"{utc(state.created_at)} +0s submitted ci-pipeline {events[0].message}"
    )


def test_text_from_people_is_shown_as_text_never_as_markup(
    played: Played, source: PrometheusSource
) -> None:
    state = played.by_hand
    html = render_report(played.store, source, policy_of(played, state), state.id, now=time.time())
    page = Page(html)

    assert HOSTILE_REASON not in html and "<script" not in html.lower()
    assert all("onerror" not in element.attrs for element in page.elements)
    assert page.all("img") == []
    assert f"Aborted: abort by alice: {HOSTILE_REASON}" in page.text
    assert "Decided by alice" in page.all("header")[0].joined()
    # The injected </table> closed nothing: the timeline is still one table with every event.
    assert len(page.within("timeline", "tr")) == len(played.store.events(state.id)) + 1


def test_a_prometheus_outage_shows_no_data_and_keeps_the_rest(played: Played) -> None:
    state = played.aborted
    with PrometheusSource(f"http://{HOST}:{free_port()}", timeout=2.0) as dead:
        page = page_of(played, dead, state)

    for name in ("error-ratio", "latency", "memory"):
        (empty,) = page.within(f"metric-{name}", "text", "no-data")
        assert empty.joined().startswith("no data:")
        assert "cannot reach Prometheus" in empty.joined()
    assert f"Aborted: {state.abort_reason}" in page.all("header")[0].joined()
    # from the audit trail: every look of errors and of latency, and memory's trend from its
    # fourth interval on (the one look that had enough intervals before the abort)
    looks = len(looks_of(played, state))
    assert len(page.within("evidence", "circle", "look")) == looks + looks + (looks - 3)


def test_without_its_policy_the_page_still_explains_the_decision(
    played: Played, source: PrometheusSource
) -> None:
    state = played.aborted
    html = render_report(
        played.store,
        source,
        None,
        state.id,
        now=time.time(),
        policy_problem="policy 'default-canary' cannot be loaded: no such file",
    )
    page = Page(html)

    assert "policy 'default-canary' cannot be loaded: no such file" in page.text
    assert page.by_id("metric-error-ratio").joined().startswith("error-ratio FAIL critical")
    assert "No chart: no data was fetched for this metric (see above)." in page.text
    assert f"Aborted: {state.abort_reason}" in page.text


def test_write_report_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "r1.html"
    write_report(target, "<p>old</p>")
    written = write_report(target, "<p>new</p>")

    assert written == target and target.read_text() == "<p>new</p>"
    assert sorted(p.name for p in target.parent.iterdir()) == ["r1.html"]
