"""The MetricSource seam: the analyzer's only way to read the outside world.

``query_range`` returns plain arrays so judges stay pure functions of data. A source raises
``QueryError`` when the query is wrong and ``TemporarySourceError`` when it could not answer now;
an empty list means the query matched nothing (NO_DATA), never an error.

``query_many`` asks several queries over one range at once (Prometheus: one HTTP request for all
of them) and answers one entry per query, in order: its series, or the SourceError it failed
with. It never raises a SourceError itself, so one broken query cannot hide the others' answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analyzer.errors import SourceError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    """One time series: its labels and aligned arrays of Unix timestamps (s) and values."""

    labels: Mapping[str, str]
    timestamps: FloatArray
    values: FloatArray = field(repr=False)

    def __post_init__(self) -> None:
        if self.timestamps.shape != self.values.shape:
            raise ValueError("timestamps and values must have the same length")


QueryResult = list[Series] | SourceError
"""One query's entry in ``query_many``'s answer: its series, or the error it failed with."""


class RangeSource(Protocol):
    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """Evaluate ``promql`` at every ``step`` from ``start`` to ``end`` inclusive."""
        ...


class MetricSource(RangeSource, Protocol):
    def query_many(
        self, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
    ) -> list[QueryResult]:
        """``query_range`` of each query over one range: one entry per query, in order, a
        failed query's entry being its SourceError."""
        ...


def query_each(
    source: RangeSource, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
) -> list[QueryResult]:
    """``query_many`` as one ``query_range`` per query: for sources with nothing better."""
    answers: list[QueryResult] = []
    for promql in queries:
        try:
            answers.append(source.query_range(promql, start, end, step))
        except SourceError as error:
            answers.append(error)
    return answers


def ask_many(
    source: RangeSource, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
) -> list[QueryResult]:
    """``source.query_many``, or ``query_each`` for a source that only has ``query_range`` (a
    test's fake, a wrapper written before ``query_many``): such a source still works, at one
    request per query."""
    many = getattr(source, "query_many", None)
    if many is None:
        return query_each(source, queries, start, end, step)
    answers: list[QueryResult] = many(queries, start, end, step)
    return answers
