"""The analysis of a fresh-baseline rollout reads the fresh baseline's series only: when they are
missing it never falls back to the stable fleet's, and missing data never promotes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analyzer.analysis import analyze
from analyzer.policy import load_policy_text
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.memory import MemorySource, series_from_points
from analyzer.verdict import Outcome
from tests.workers.conftest import DEMO_POLICY, job

POLICY = load_policy_text(
    DEMO_POLICY.replace("  interval: 5s\n", "  interval: 5s\n  baseline: fresh\n")
)
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(minutes=2)


def source_with(*selectors: str) -> MemorySource:
    """Healthy request and error counts for these selectors' series; nothing for any other."""
    source = MemorySource(strict=False)
    interval = POLICY.analysis.interval
    for text in selectors:
        for metric in POLICY.metrics:
            for field, template in metric.templates().items():
                query = PromQLTemplate.parse(template).render(
                    selector=Selector.parse(text), interval=interval
                )
                value = 1.0 if field == "errors" else 1000.0
                stamps = range(int(START.timestamp()), int(END.timestamp()) + 1, 5)
                points = [(float(stamp), value) for stamp in stamps]
                source.set(query, [series_from_points({}, points)])
    return source


def test_missing_fresh_baseline_data_is_inconclusive_never_the_stable_fleet() -> None:
    spec = job(platform="kubernetes").spec({}, fresh_baseline=True)
    stable, canary = spec.baseline_selector, spec.canary_selector
    source = source_with(stable, canary)  # the stable fleet has data; the fresh baseline none
    verdict = analyze(POLICY, source, spec.versions(), START, END)
    assert verdict.outcome == Outcome.INCONCLUSIVE
    asked = [call.promql for call in source.calls]
    assert not any(Selector.parse(stable).render() in query for query in asked)
    assert any('pod=~"checkout-baseline-.+"' in query for query in asked)


def test_with_the_fresh_baseline_data_the_comparison_decides() -> None:
    spec = job(platform="kubernetes").spec({}, fresh_baseline=True)
    source = source_with(spec.fresh_baseline_selector, spec.canary_selector)
    verdict = analyze(POLICY, source, spec.versions(), START, END)
    assert verdict.outcome == Outcome.PASS
