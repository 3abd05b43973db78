"""One analysis pass over known data: no look-ahead, errors as data, args and fixed horizons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analyzer.analysis import (
    Versions,
    analyze,
    check_args,
    fetch,
    judge_upto,
    make_grid,
    not_analyzed,
    resolve_args,
)
from analyzer.errors import QueryError, TemplateError
from analyzer.judges.base import CountsData
from analyzer.policy import load_policy_text
from analyzer.policy.promql import PromQLTemplate, Selector
from analyzer.sources.base import Series
from analyzer.sources.memory import MemorySource
from analyzer.verdict import Outcome, Reason

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
POLICY = load_policy_text(
    """
name: unit
args:
  - name: route
    default: /pay
analysis: {interval: 1m, min_samples: 3}
metrics:
  - name: errors
    kind: counts
    errors: errors{ {{ selector }}, route="{{ route }}" }
    total: total{ {{ selector }}, route="{{ route }}" }
    tolerance: 0.1
    critical: true
  - name: memory
    kind: series
    query: memory{ {{ selector }} }
strategy: {type: canary, steps: [{set_weight: 100}]}
"""
)
VERSIONS = Versions(Selector.parse('version="v1"'), Selector.parse('version="v2"'), {})


def rendered(template: str, version: str, route: str = "/pay") -> str:
    return PromQLTemplate.parse(template).render(
        selector=Selector.parse(f'version="{version}"'), interval=MINUTE, args={"route": route}
    )


def per_minute(values: list[float]) -> list[Series]:
    stamps = START.timestamp() + 60.0 * np.arange(1, len(values) + 1)
    return [Series({}, stamps, np.array(values, dtype=np.float64))]


def source_with(canary_errors: list[float], minutes: int = 30) -> MemorySource:
    source = MemorySource()
    metric = POLICY.metrics
    for version, errors in (("v1", [10.0] * minutes), ("v2", canary_errors)):
        source.set(rendered(metric[0].templates()["errors"], version), per_minute(errors))
        source.set(
            rendered(metric[0].templates()["total"], version), per_minute([1000.0] * minutes)
        )
        source.set(rendered(metric[1].templates()["query"], version), per_minute([1.0] * minutes))
    return source


def test_grid_starts_one_interval_after_start() -> None:
    grid = make_grid(START, START + 5 * MINUTE, MINUTE)
    assert list(grid - START.timestamp()) == [60, 120, 180, 240, 300]
    assert make_grid(START, START + timedelta(seconds=59), MINUTE).size == 0


def test_a_clear_regression_fails_and_names_the_metric() -> None:
    verdict = analyze(POLICY, source_with([60.0] * 30), VERSIONS, START, START + 30 * MINUTE)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.decided_by == ["errors"]
    assert verdict.window_start == START.timestamp()
    assert verdict.window_end == START.timestamp() + 30 * 60


def test_judging_a_look_never_sees_later_data() -> None:
    healthy_then_bad = [10.0] * 10 + [80.0] * 20
    window = fetch(POLICY, source_with(healthy_then_bad), VERSIONS, START, START + 30 * MINUTE)
    healthy = fetch(POLICY, source_with([10.0] * 30), VERSIONS, START, START + 30 * MINUTE)
    early = judge_upto(POLICY, window, 10)
    assert early == judge_upto(POLICY, healthy, 10)
    assert early.outcome is not Outcome.FAIL
    assert judge_upto(POLICY, window, 30).outcome is Outcome.FAIL


def test_fixed_horizon_judge_waits_for_the_final_look() -> None:
    window = fetch(POLICY, source_with([10.0] * 30), VERSIONS, START, START + 30 * MINUTE)
    memory = next(m for m in judge_upto(POLICY, window, 20).metrics if m.name == "memory")
    assert memory.outcome is Outcome.INCONCLUSIVE
    assert memory.judgement.details == {"waiting_for_final_look": True}
    final = judge_upto(POLICY, window, final=True)
    assert next(m for m in final.metrics if m.name == "memory").outcome is Outcome.PASS


def test_failed_queries_are_inconclusive_measurements_not_exceptions() -> None:
    source = source_with([10.0] * 30)
    source.fail(rendered(POLICY.metrics[0].templates()["errors"], "v2"))
    source.fail(rendered(POLICY.metrics[1].templates()["query"], "v1"), QueryError)
    verdict = analyze(POLICY, source, VERSIONS, START, START + 30 * MINUTE)
    errors, memory = verdict.metrics
    assert errors.judgement.reason_code is Reason.QUERY_ERROR
    assert errors.judgement.details["temporary"] is True
    assert memory.judgement.details["temporary"] is False
    assert verdict.outcome is Outcome.INCONCLUSIVE


def test_a_look_that_cannot_run_is_a_query_error_of_every_metric_that_no_retry_fixes() -> None:
    verdict = not_analyzed(POLICY, "policy 'p' needs a value for arg 'zone'", final=False)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert [m.name for m in verdict.metrics] == [m.name for m in POLICY.metrics]
    for metric in verdict.metrics:
        assert metric.judgement.reason_code is Reason.QUERY_ERROR
        assert metric.judgement.reason.startswith("analysis could not run: policy 'p' needs")
        assert metric.judgement.details["temporary"] is False


def test_args_default_and_are_checked() -> None:
    assert resolve_args(POLICY, None) == {"route": "/pay"}
    assert resolve_args(POLICY, {"route": '/a"b'}) == {"route": '/a"b'}
    with pytest.raises(TemplateError, match="declares no arg colour"):
        resolve_args(POLICY, {"colour": "blue"})


def test_check_args_renders_every_query_naming_metric_field_and_arg() -> None:
    bare = load_policy_text(
        """
name: bare
args: [{name: window, default: 5m}]
metrics:
  - {name: errors, kind: counts, errors: "e{ {{ selector }} }", total: "t{ {{ selector }} }"}
  - name: memory
    kind: series
    query: max_over_time(m{ {{ selector }} }[{{ window }}])
strategy: {type: canary, steps: [{set_weight: 100}]}
"""
    )
    assert check_args(bare, {"window": "90s"}) == {"window": "90s"}
    with pytest.raises(TemplateError) as refused:
        check_args(bare, {"window": "3s]) or vector(1) #"})
    assert str(refused.value).startswith("metric 'memory' (query): window='3s]) or vector(1) #'")
    with pytest.raises(TemplateError, match="declares no arg colour"):
        check_args(bare, {"colour": "blue"})


def test_job_args_reach_the_queries_escaped() -> None:
    strict = MemorySource(strict=False)
    analyze(
        POLICY,
        strict,
        Versions(VERSIONS.baseline, VERSIONS.canary, {"route": '/a"b'}),
        START,
        START + 5 * MINUTE,
    )
    assert 'errors{ version="v2", route="/a\\"b" }' in {call.promql for call in strict.calls}


def test_a_window_shorter_than_one_interval_has_no_data() -> None:
    verdict = analyze(POLICY, source_with([10.0]), VERSIONS, START, START + timedelta(seconds=30))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert all(m.judgement.reason_code is Reason.NO_DATA for m in verdict.metrics)


def test_a_shifted_baseline_is_read_earlier_and_laid_on_the_canarys_grid() -> None:
    # the baseline has data for the first 30 minutes only (then it served nobody); the canary
    # is judged over minutes 30-60 against the baseline's minutes 0-30
    source = source_with([10.0] * 60, minutes=60)
    early = per_minute([10.0] * 30)
    source.set(rendered(POLICY.metrics[0].templates()["errors"], "v1"), early)
    source.set(rendered(POLICY.metrics[0].templates()["total"], "v1"), per_minute([1000.0] * 30))
    shifted = Versions(VERSIONS.baseline, VERSIONS.canary, {}, baseline_shift=30 * MINUTE)

    window = fetch(POLICY, source, shifted, START + 30 * MINUTE, START + 60 * MINUTE)

    baseline_calls = [call for call in source.calls if 'version="v1"' in call.promql]
    assert {call.end for call in baseline_calls} == {START + 30 * MINUTE}
    errors = window.metrics[0]
    assert isinstance(errors.baseline, CountsData) and isinstance(errors.canary, CountsData)
    assert np.nansum(errors.baseline.totals) == np.nansum(errors.canary.totals) == 30 * 1000.0
    assert list(errors.baseline.timestamps) == list(errors.canary.timestamps)
    unshifted = fetch(POLICY, source, VERSIONS, START + 30 * MINUTE, START + 60 * MINUTE)
    assert isinstance(unshifted.metrics[0].baseline, CountsData)
    assert np.nansum(unshifted.metrics[0].baseline.totals) == 0  # at the same time: silence
