"""The in-memory source answers like Prometheus would and fails when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analyzer.errors import QueryError, TemporarySourceError
from analyzer.sources.base import Series
from analyzer.sources.memory import MemorySource, RecordedQuery, series_from_points

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T0 = START.timestamp()
STEP = timedelta(seconds=15)
END = START + timedelta(seconds=45)
QUERY = 'sum(increase(http_requests_total{version="v2"}[15s]))'


def stored() -> Series:
    points = [(T0 - 15, 0.0), (T0 + 30, 3.0), (T0, 1.0), (T0 + 15, 2.0), (T0 + 37, 9.0)]
    points += [(T0 + 45, float("nan")), (T0 + 60, 5.0)]
    return series_from_points({"version": "v2"}, points)


def test_returns_points_within_the_range_on_the_step_grid_in_order() -> None:
    source = MemorySource({QUERY: [stored()]})
    [series] = source.query_range(QUERY, START, END, STEP)
    assert series.labels == {"version": "v2"}
    np.testing.assert_array_equal(series.timestamps, [T0, T0 + 15, T0 + 30, T0 + 45])
    np.testing.assert_array_equal(series.values, [1.0, 2.0, 3.0, np.nan])


def test_a_series_without_points_in_range_is_left_out() -> None:
    empty_later = series_from_points({"pod": "b"}, [(T0 + 3600, 1.0)])
    source = MemorySource({QUERY: [stored(), empty_later]})
    assert [s.labels for s in source.query_range(QUERY, START, END, STEP)] == [{"version": "v2"}]


def test_a_function_answer_gets_the_query_and_is_cut_to_the_grid() -> None:
    seen: list[tuple[str, datetime, datetime, timedelta]] = []

    def answer(promql: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        seen.append((promql, start, end, step))
        return [series_from_points({}, [(T0 + seconds, seconds) for seconds in range(0, 90, 5)])]

    source = MemorySource({QUERY: answer})
    [series] = source.query_range(QUERY, START, END, STEP)
    assert seen == [(QUERY, START, END, STEP)]
    np.testing.assert_array_equal(series.values, [0, 15, 30, 45])


def test_an_unknown_query_fails_loudly_unless_not_strict() -> None:
    source = MemorySource({QUERY: []})
    with pytest.raises(LookupError, match="http_requests_total"):
        source.query_range("up", START, END, STEP)
    assert MemorySource(strict=False).query_range("up", START, END, STEP) == []
    assert source.query_range(QUERY, START, END, STEP) == []


def test_failing_a_query_raises_for_that_query_until_healed() -> None:
    source = MemorySource({QUERY: [stored()], "up": []})
    source.fail(QUERY, QueryError("1:5: parse error"))
    with pytest.raises(QueryError, match="parse error"):
        source.query_range(QUERY, START, END, STEP)
    assert source.query_range("up", START, END, STEP) == []
    source.heal(QUERY)
    assert len(source.query_range(QUERY, START, END, STEP)) == 1


def test_fail_next_fails_any_query_that_many_times() -> None:
    source = MemorySource({QUERY: [stored()], "up": []})
    source.fail_next(2)
    with pytest.raises(TemporarySourceError, match="injected failure for query 'up'"):
        source.query_range("up", START, END, STEP)
    with pytest.raises(TemporarySourceError):
        source.query_range(QUERY, START, END, STEP)
    assert len(source.query_range(QUERY, START, END, STEP)) == 1


def test_heal_without_a_query_stops_every_failure() -> None:
    source = MemorySource({QUERY: []})
    source.fail(QUERY)
    source.fail_next(5, QueryError)
    source.heal()
    assert source.query_range(QUERY, START, END, STEP) == []


def test_calls_are_recorded_even_when_they_fail() -> None:
    source = MemorySource({QUERY: []})
    source.fail_next(1)
    with pytest.raises(TemporarySourceError):
        source.query_range(QUERY, START, END, STEP)
    source.query_range(QUERY, START, END, timedelta(minutes=1))
    assert source.calls == [
        RecordedQuery(QUERY, START, END, STEP),
        RecordedQuery(QUERY, START, END, timedelta(minutes=1)),
    ]


def test_refuses_ranges_prometheus_refuses() -> None:
    source = MemorySource({QUERY: []})
    with pytest.raises(QueryError, match="step"):
        source.query_range(QUERY, START, END, timedelta(0))
    with pytest.raises(QueryError, match="before it starts"):
        source.query_range(QUERY, END, START, STEP)
    with pytest.raises(ValueError, match="time zone"):
        source.query_range(QUERY, START.replace(tzinfo=None), END, STEP)
