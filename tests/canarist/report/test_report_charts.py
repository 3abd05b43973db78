"""Each metric's chart plots what its ruling is about, and the page shows one bar and one score.

A latency ruling on the mean is charted as each version's mean latency per interval (the
policy's ``sum``/``count``), one on a bucket tail at the quantile it cites, and a trend ruling
with the growth per hour it judged. Rollouts are real (real Prometheus, engine and analyzer);
where a ruling must say something a real run cannot be made to say exactly (a tail at p99, an
early FAIL's own bar), a real rollout's audit trail is copied with that one judgement changed.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from analyzer.judges.base import HistogramData
from analyzer.judges.tails import histogram_quantile
from analyzer.sources.prometheus import PrometheusSource
from analyzer.verdict import Judgement
from canarist.report import Report, build_report, render
from canarist.report.formatting import number
from canarist.report.history import decisive_verdict
from canarist.report.measures import measure_for
from canarist.report.series import MetricSeries
from tests.canarist.report.page_reading import Page
from tests.canarist.report.rollout_scenario import QUICK_POLICY, Played, Rollout, past_start
from tests.workloads import Behaviour
from workers.actions import RecordEvent
from workers.state import RolloutState
from workers.store import AuditEvent, MemoryStateStore, StateStore

LATENCY_WITH_MEAN = """    tolerance: 0.05
    sum: sum(increase(http_request_duration_seconds_sum{ {{ selector }} }[{{ interval }}]))
    count: sum(increase(http_request_duration_seconds_count{ {{ selector }} }[{{ interval }}]))
"""
MEAN_POLICY = QUICK_POLICY.replace("name: quick-canary", "name: mean-canary").replace(
    "    tolerance: 0.05\n", LATENCY_WITH_MEAN
)
LEAK_POLICY = QUICK_POLICY.replace("name: quick-canary", "name: leak-canary").replace(
    "    tolerance: 0.2\n", "    tolerance: 0.2\n    judge: trend\n"
)


@dataclass(frozen=True)
class Rollouts:
    slower: RolloutState  # mean-canary: the canary's latency 50% higher
    leaking: RolloutState  # leak-canary: the canary's memory doubles every hour


@pytest.fixture(scope="module")
def rollouts(played: Played) -> Rollouts:
    (played.policy_dir / "mean-canary.yaml").write_text(MEAN_POLICY)
    (played.policy_dir / "leak-canary.yaml").write_text(LEAK_POLICY)

    def rollout(policy: str, canary: Behaviour, hours_ago: float, growth: float) -> Rollout:
        start = past_start(hours_ago)
        return Rollout(
            played.intake,
            played.prometheus_url,
            played.clock,
            policy=policy,
            canary=canary,
            start=start,
            memory_growth_per_hour=growth,
        )

    slower = rollout("mean-canary", Behaviour(median_latency=0.12), 2.5, 0.0).drive()
    leaking = rollout("leak-canary", Behaviour(), 1.5, 1.0).drive()
    return Rollouts(slower, leaking)


@pytest.fixture(scope="module")
def source(played: Played) -> Iterator[PrometheusSource]:
    with PrometheusSource(played.prometheus_url) as prometheus:
        yield prometheus


def report_of(
    store: StateStore, played: Played, source: PrometheusSource, state: RolloutState
) -> Report:
    policy = played.intake.policy(state.policy)
    return build_report(store, source, policy, state.id, now=time.time())


def ruling(report: Report, name: str) -> Judgement:
    """The judgement on the metric's card: the decisive look's."""
    verdict = decisive_verdict(report.history)
    assert verdict is not None
    return next(m for m in verdict.metrics if m.name == name).judgement


def series(report: Report, name: str) -> MetricSeries:
    return next(found for found in report.series if found.name == name)


def chart_title(page: Page, name: str) -> str:
    return page.within(f"metric-{name}", "title")[0].joined()


def lines(page: Page, name: str) -> list[str]:
    return [line.joined() for line in page.within(f"metric-{name}", "g", "series")]


def test_a_latency_ruling_on_the_mean_is_charted_as_the_mean(
    played: Played, rollouts: Rollouts, source: PrometheusSource
) -> None:
    report = report_of(played.store, played, source, rollouts.slower)
    judgement = ruling(report, "latency")
    page = Page(render(report))

    assert judgement.details["tested"] == "mean"
    assert chart_title(page, "latency") == (
        "latency: baseline and canary, mean latency (sum / count) per 1m"
    )
    assert lines(page, "latency") == [
        "baseline mean latency (sum / count)",
        "canary mean latency (sum / count)",
    ]
    assert "Mean latency (sum / count) per 1m: what the ruling cites." in page.text
    axis = [label.joined() for label in page.within("metric-latency", "text")]
    assert any(re.fullmatch(r"\d+ ms", label) for label in axis)
    # Each line is sum / count per interval; pooled over the judged window, the judge's mean.
    latency = series(report, "latency")
    look = next(look for look in reversed(report.history.looks) if look.decisive)
    judged = (latency.times > look.window_start) & (latency.times <= look.at)
    plotted = latency.plotted(measure_for(latency.metric, judgement))
    versions = ((latency.baseline, judgement.baseline), (latency.canary, judgement.canary))
    for (data, judged_side), values in zip(versions, plotted, strict=True):
        assert isinstance(data, HistogramData)
        assert data.sums is not None and data.observations is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_allclose(values, data.sums / data.observations)
        pooled = data.sums[judged].sum() / data.observations[judged].sum()
        # the judge pools only the intervals with data in both versions
        assert pooled == pytest.approx(judged_side["mean"], rel=0.01)


def test_a_tail_ruling_is_charted_at_the_quantile_it_cites(
    played: Played, source: PrometheusSource
) -> None:
    report = report_of(played.store, played, source, played.aborted)
    judgement = ruling(report, "latency")
    cited = re.match(r"latency (p[\d.]+) ", judgement.reason)
    page = Page(render(report))

    assert "tested" not in judgement.details and cited is not None and cited[1] != "p90"
    title = f"latency: baseline and canary, {cited[1]} latency per 1m"
    assert chart_title(page, "latency") == title
    assert lines(page, "latency") == [f"baseline {cited[1]} latency", f"canary {cited[1]} latency"]
    assert_quantile_of_buckets(report, judgement.details["quantile"])


def assert_quantile_of_buckets(report: Report, level: float) -> None:
    """Both lines are ``histogram_quantile(level)`` of each interval's buckets."""
    latency = series(report, "latency")
    plotted = latency.plotted(measure_for(latency.metric, ruling(report, "latency")))
    for data, values in zip((latency.baseline, latency.canary), plotted, strict=True):
        assert isinstance(data, HistogramData)
        expected = [
            histogram_quantile(level, data.upper_bounds, row) if np.isfinite(row).all() else np.nan
            for row in data.counts
        ]
        assert np.isfinite(values).sum() >= 5
        np.testing.assert_allclose(values, expected)


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


def test_a_ruling_that_cites_p99_is_charted_at_p99(
    played: Played, source: PrometheusSource
) -> None:
    def at_p99(event: AuditEvent) -> Mapping[str, Any]:
        data = copy.deepcopy(dict(event.data))
        judgement = judgements(data, "latency")
        if judgement is not None and event.kind == "phase":
            judgement["details"]["quantile"] = 0.99
        return data

    state = played.aborted
    report = report_of(copy_of(played, state, at_p99), played, source, state)
    page = Page(render(report))

    assert ruling(report, "latency").details["quantile"] == 0.99
    assert chart_title(page, "latency") == "latency: baseline and canary, p99 latency per 1m"
    assert lines(page, "latency") == ["baseline p99 latency", "canary p99 latency"]
    assert "p99 latency per 1m from the histogram's buckets: what the ruling cites." in page.text
    assert_quantile_of_buckets(report, 0.99)


def test_a_trend_ruling_is_captioned_with_growth_per_hour_against_the_baseline(
    played: Played, rollouts: Rollouts, source: PrometheusSource
) -> None:
    report = report_of(played.store, played, source, rollouts.leaking)
    judgement = ruling(report, "memory")
    page = Page(render(report))
    card = page.by_id("metric-memory")

    assert judgement.details["growth_per_hour"] > judgement.details["allowed_growth_per_hour"]
    assert chart_title(page, "memory") == "memory: baseline and canary, value per 1m"
    assert lines(page, "memory") == ["baseline value", "canary value"]
    caption = page.within("metric-memory", "p", "caption")[0].joined()
    growth = judgement.details["growth_per_hour"]
    assert caption.startswith(
        "Value per 1m. The trend judge rules on growth per hour against the baseline: the "
        f"canary grows +{100 * growth:.3g}"
    )
    assert "allowed +20%/h" in caption and "(gate 10%)" in caption
    assert re.search(r"Canary mean [\d.]+ MB, last [\d.]+ MB, intervals \d+", card.joined())
    axis = [label.joined() for label in page.within("metric-memory", "text")]
    assert any(re.fullmatch(r"[\d.]+ MB", label) for label in axis)


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
    earlier = [line for line in page.within("evidence", "g", "series") if "rule" in line.classes]
    assert earlier and all(line.joined() == "the bar at each look" for line in earlier)
    looks = page.within("evidence", "circle", "look")
    n = len(report.history.looks)
    bars = [re.search(r"\(bar ([\d,]+)\)", look.joined()) for look in looks[:n]]
    held = [bar[1] for bar in bars if bar is not None]
    recorded = [look.verdict.metrics[0].judgement.threshold for look in report.history.looks]
    assert n >= 2 and len(held) == n
    assert held[:-1] == [number(bar) for bar in recorded[:-1]]  # each look shows its own bar
    assert held[-1] == "40,000"
    assert "Score 37.5 of 100" in page.all("header")[0].joined()
    scores = [cell.joined() for cell in page.within("evidence", "td", "score")]
    assert scores == [number(look.verdict.score) for look in report.history.looks]
    assert scores[-1] == "37.5"
