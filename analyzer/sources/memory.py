"""An in-memory MetricSource: known answers and chosen failures for unit tests and benchmarks.

Analyses and judges are tested on hand-checked data without a Prometheus, and benchmarks replay
thousands of passes at memory speed. Answers are registered per exact PromQL string, as stored
series or as a function of the query; every answer is cut like Prometheus cuts one: points within
``[start, end]`` that lie on the step grid, series left without points dropped. Failures can be
injected for chosen queries or for the next N calls, so error handling is tested with the same
exceptions the Prometheus source raises.

An unregistered query raises ``LookupError`` by default (``strict``): a test whose template
renders a different string than it registered should fail loudly, not pass on NO_DATA.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from analyzer.errors import SourceError, TemporarySourceError
from analyzer.sources.base import QueryResult, Series, query_each
from analyzer.sources.convert import grid_bounds_ms

QueryFunction = Callable[[str, datetime, datetime, timedelta], Sequence[Series]]
Answer = Sequence[Series] | QueryFunction
Failure = SourceError | type[SourceError]


@dataclass(frozen=True)
class RecordedQuery:
    """One call the source received, kept in order in ``MemorySource.calls``."""

    promql: str
    start: datetime
    end: datetime
    step: timedelta


def series_from_points(labels: Mapping[str, str], points: Iterable[tuple[float, float]]) -> Series:
    """A Series from ``(unix seconds, value)`` pairs: the shortest way to write test data."""
    pairs = list(points)
    timestamps = np.array([stamp for stamp, _ in pairs], dtype=np.float64)
    values = np.array([value for _, value in pairs], dtype=np.float64)
    return Series(labels=dict(labels), timestamps=timestamps, values=values)


class MemorySource:
    """A MetricSource answering from memory; safe to share between threads."""

    def __init__(self, answers: Mapping[str, Answer] | None = None, *, strict: bool = True) -> None:
        self._answers: dict[str, Answer] = dict(answers or {})
        self._strict = strict
        self._failing_queries: dict[str, Failure] = {}
        self._failing_calls: list[Failure] = []
        self._lock = threading.Lock()
        self.calls: list[RecordedQuery] = []

    def set(self, promql: str, answer: Answer) -> None:
        """Answer ``promql`` with these series, or with what ``answer(promql, start, end, step)``
        returns."""
        with self._lock:
            self._answers[promql] = answer

    def fail(self, promql: str, error: Failure = TemporarySourceError) -> None:
        """Raise ``error`` for every call of ``promql`` until ``heal``."""
        with self._lock:
            self._failing_queries[promql] = error

    def fail_next(self, count: int, error: Failure = TemporarySourceError) -> None:
        """Raise ``error`` for the next ``count`` calls, whatever their query."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        with self._lock:
            self._failing_calls.extend([error] * count)

    def heal(self, promql: str | None = None) -> None:
        """Stop failing ``promql``, or stop every injected failure when None."""
        with self._lock:
            if promql is None:
                self._failing_queries.clear()
                self._failing_calls.clear()
            else:
                self._failing_queries.pop(promql, None)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        start_ms, end_ms, step_ms = grid_bounds_ms(start, end, step)
        with self._lock:
            self.calls.append(RecordedQuery(promql, start, end, step))
            failure = self._failing_calls.pop(0) if self._failing_calls else None
            failure = failure or self._failing_queries.get(promql)
            answer = self._answers.get(promql)
        if failure is not None:
            raise _instance(failure, promql)
        if answer is None:
            if self._strict:
                known = "\n  ".join(sorted(self._answers)) or "(none)"
                raise LookupError(f"no answer registered for {promql!r}; known:\n  {known}")
            return []
        found = answer(promql, start, end, step) if callable(answer) else answer
        cut = (_on_grid(series, start_ms, end_ms, step_ms) for series in found)
        return [series for series in cut if series.timestamps.size > 0]

    def query_many(
        self, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
    ) -> list[QueryResult]:
        """One ``query_range`` per query (each recorded in ``calls``), failures as entries."""
        return query_each(self, queries, start, end, step)


def _instance(failure: Failure, promql: str) -> SourceError:
    if isinstance(failure, SourceError):
        return copy.copy(failure)  # a fresh object per raise keeps tracebacks apart
    return failure(f"injected failure for query {promql!r}")


def _on_grid(series: Series, start_ms: int, end_ms: int, step_ms: int) -> Series:
    stamps_ms = np.round(series.timestamps * 1000.0).astype(np.int64)
    keep = (stamps_ms >= start_ms) & (stamps_ms <= end_ms) & ((stamps_ms - start_ms) % step_ms == 0)
    order = np.argsort(stamps_ms[keep], kind="stable")
    return Series(
        labels=dict(series.labels),
        timestamps=(stamps_ms[keep][order] / 1000.0),
        values=np.asarray(series.values, dtype=np.float64)[keep][order],
    )
