"""Long rollouts stay readable and light: charts are thinned, spikes and gaps survive.

A rollout paused for a day keeps being looked at every interval, so a report may hold
thousands of looks. The page must still draw a few hundred points per chart and list the
latest looks, without losing the spike or the outage a person is looking for.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import replace

import numpy as np

from analyzer.sources.prometheus import PrometheusSource
from canarist.report import build_report, render
from canarist.report.evidence import MAX_LOOK_ROWS
from canarist.report.svg import MAX_DRAWN, Chart, Line, render_chart, thin
from tests.canarist.report.page_reading import Page
from tests.canarist.report.rollout_scenario import Played
from workers.actions import RecordEvent
from workers.spec import RolloutSpec
from workers.state import Phase, RolloutState
from workers.store import MemoryStateStore

LOOKS = 1500  # 25 hours at one look a minute


def test_thinning_keeps_the_spike_and_the_gap() -> None:
    times = np.arange(10_000, dtype=np.float64) * 60
    values = np.sin(np.arange(10_000) / 300) + 2
    values[7_777] = 50.0  # one bad minute
    values[2_000:3_000] = np.nan  # Prometheus was down

    kept_times, kept = thin(times, values)

    assert kept.size <= MAX_DRAWN
    assert 50.0 in kept
    gap = (kept_times >= 2_000 * 60) & (kept_times < 3_000 * 60)
    assert gap.any() and np.isnan(kept[gap]).all()
    assert np.all(np.diff(kept_times) > 0)


def test_a_chart_without_a_finite_value_says_no_data() -> None:
    nothing = np.full(5, np.nan)
    chart = Chart(
        title="errors <b>",
        start=0,
        end=300,
        lines=(Line("canary", np.arange(5.0) * 60, nothing, "canary"),),
        empty="no data: Prometheus <down>",
    )
    page = Page(render_chart(chart))

    (message,) = page.all("text", "no-data")
    assert message.joined() == "no data: Prometheus <down>"
    assert page.all("path") == [] and page.all("title")[0].joined() == "errors <b>"


def long_rollout(played: Played) -> tuple[MemoryStateStore, str]:
    """A rollout paused for a day with a look every minute, from a real look's verdict."""
    real = next(e for e in played.store.events(played.aborted.id) if e.kind == "analysis")
    now = time.time() - LOOKS * 60 - 3600
    spec = RolloutSpec("v2", "", "observe", 'app="long",version="v1"', 'app="long",version="v2"')
    state = RolloutState.new(
        "long-1", app="long", namespace="shop", policy="default-canary", spec=spec, now=now
    )
    store = MemoryStateStore()
    revision = store.create(replace(state, phase=Phase.PAUSED)).revision
    for look in range(LOOKS):
        at = now + 60 * (look + 1)
        data = copy.deepcopy(dict(real.data))
        error_ratio = data["verdict"]["metrics"][0]["judgement"]
        error_ratio["e_value"] = 0.5 + (look % 7) * 0.1 + (300.0 if look == 1234 else 0.0)
        error_ratio["outcome"] = "fail" if look == 1234 else "inconclusive"
        data["window"] = [now, at]
        event = RecordEvent("analysis", f"look {look}", data)
        state = replace(state, phase=Phase.PAUSED, updated_at=at)
        revision = store.save(state, revision, events=[event])
    return store, state.id


def test_thousands_of_looks_draw_a_few_hundred_points(played: Played) -> None:
    store, rollout_id = long_rollout(played)
    policy = played.intake.policy("default-canary")
    with PrometheusSource(played.prometheus_url) as source:
        report = build_report(store, source, policy, rollout_id, now=time.time())
    page = Page(render(report))

    (errors, *_) = report.series
    assert errors.problem is None and errors.times.size <= 720  # fetched at a coarser step
    step = float(np.diff(errors.times)[0])
    assert step > 60 and step % 60 == 0  # a multiple of the policy's interval
    evidence = page.within("evidence", "path")
    assert all(path.attrs["d"].count("L") < MAX_DRAWN for path in evidence)
    marked = page.within("evidence", "circle", "look")
    assert len(marked) < 2 * 150  # two metrics with statistics, about 120 markers each
    assert any("fail" in circle.classes for circle in marked)  # the one FAIL look is kept
    rows = page.within("evidence", "tr")[1:]
    assert len(rows) == MAX_LOOK_ROWS
    assert f"{LOOKS - MAX_LOOK_ROWS} earlier look(s) are not listed" in page.text
    assert re.search(rf"Every look \({LOOKS}\)", page.text)
