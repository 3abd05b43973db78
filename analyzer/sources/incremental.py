"""A MetricSource that fetches only what is new since its last answer to the same query.

An analysis looks every interval at a window that has only grown by an interval since the last
look, yet a plain source re-queries the whole window each time. ``IncrementalSource`` remembers,
per query and grid (PromQL text, step, and the grid's phase: start modulo step), the series it
fetched for grid instants [first, last]. A request on the same grid that starts at or after
``first`` fetches only from ``last - refetch`` (in whole steps, never before its own start) to
its end, merges the answer in and answers exactly [start, end].

Why this is sound: Prometheus evaluates each instant of a range query on its own, and the value
at instant ``t`` only depends on samples up to ``t`` — so an instant once answered stays
answered, except where samples arrive late (scrape lag, remote-write delay). The last
``refetch`` of instants is therefore fetched again every time, and its new values replace the
old ones; a series missing from the new answer keeps its older points, a new series has its new
points. Anything else (another phase, a start before ``first``, a gap after ``last``) is a full
fetch that replaces the remembered entry; errors are never remembered.

Memory: at most ``max_entries`` entries (least recently used evicted first), each trimmed to the
start of the last request that used it. Thread-safe: one lock guards the entries, never held
while the inner source is asked, so worker threads sharing one source query in parallel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from analyzer.errors import SourceError
from analyzer.sources.base import FloatArray, MetricSource, QueryResult, Series, ask_many
from analyzer.sources.convert import grid_bounds_ms

_Key = tuple[str, int, int]  # PromQL, step in ms, start_ms % step_ms
_Labels = tuple[tuple[str, str], ...]
_Points = tuple[npt.NDArray[np.int64], FloatArray]  # stamps in ms, values
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class IncrementalStats:
    """What was asked of the inner source: ``requests`` (calls of query_range or query_many),
    ``points`` (grid instants times queries, whatever the number of series), and per query
    ``full`` and ``incremental`` fetches (``cached``: answered with nothing left to fetch)."""

    requests: int = 0
    points: int = 0
    full: int = 0
    incremental: int = 0
    cached: int = 0


@dataclass(frozen=True)
class _Entry:
    """A query's series over grid instants [first_ms, last_ms]: labels → (stamps ms, values),
    or (``series`` None) the answer that covered all of them, kept as it came until a later
    request merges into it: a look whose whole window is fetched again pays for no keying."""

    first_ms: int
    last_ms: int
    series: dict[_Labels, _Points] | None
    answer: tuple[Series, ...] = ()

    def keyed(self) -> dict[_Labels, _Points]:
        if self.series is not None:
            return self.series
        return {
            tuple(sorted(one.labels.items())): (
                np.round(one.timestamps * 1000.0).astype(np.int64),
                np.asarray(one.values, dtype=np.float64),
            )
            for one in self.answer
        }


@dataclass(frozen=True)
class _Plan:
    """One query of a request: what to fetch (``fetch_from_ms`` None: nothing) and on what."""

    promql: str
    key: _Key
    start_ms: int
    end_ms: int  # the request's last grid instant
    base: _Entry | None  # the entry merged into; None: a full fetch
    fetch_from_ms: int | None


class IncrementalSource:
    """A MetricSource over ``inner`` that asks it only for instants it has not answered."""

    def __init__(
        self,
        inner: MetricSource,
        *,
        refetch: timedelta = timedelta(minutes=2),
        max_entries: int = 20_000,
    ) -> None:
        if refetch < timedelta(0):
            raise ValueError(f"refetch must not be negative, got {refetch}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self.inner = inner
        self.refetch_ms = refetch // timedelta(milliseconds=1)
        self.max_entries = max_entries
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._stats = IncrementalStats()
        self._lock = threading.Lock()

    def stats(self) -> IncrementalStats:
        with self._lock:
            return self._stats

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        answer = self.query_many([promql], start, end, step)[0]
        if isinstance(answer, SourceError):
            raise answer
        return answer

    def query_many(
        self, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
    ) -> list[QueryResult]:
        try:
            start_ms, end_ms, step_ms = grid_bounds_ms(start, end, step)
        except SourceError as error:
            return [error for _ in queries]
        end_ms = start_ms + (end_ms - start_ms) // step_ms * step_ms  # the last grid instant
        plans = [self._plan(promql, start_ms, end_ms, step_ms) for promql in queries]
        groups: dict[int, list[int]] = {}
        for index, plan in enumerate(plans):
            if plan.fetch_from_ms is not None:
                groups.setdefault(plan.fetch_from_ms, []).append(index)
        fetched: dict[int, QueryResult] = {}
        for from_ms, indexes in groups.items():
            texts = [plans[i].promql for i in indexes]
            answers = ask_many(self.inner, texts, _moment(from_ms), _moment(end_ms), step)
            self._count(requests=1, points=((end_ms - from_ms) // step_ms + 1) * len(texts))
            fetched.update(zip(indexes, answers, strict=True))
        return [self._answer(plan, fetched.get(index)) for index, plan in enumerate(plans)]

    def _plan(self, promql: str, start_ms: int, end_ms: int, step_ms: int) -> _Plan:
        key = (promql, step_ms, start_ms % step_ms)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None or entry.first_ms > start_ms:
            return _Plan(promql, key, start_ms, end_ms, None, start_ms)
        refetch_ms = -(-self.refetch_ms // step_ms) * step_ms  # whole steps, rounded up
        fetch_from_ms = max(start_ms, entry.last_ms - refetch_ms)
        if fetch_from_ms > entry.last_ms + step_ms:  # a gap: nothing remembered is of use
            return _Plan(promql, key, start_ms, end_ms, None, start_ms)
        return _Plan(
            promql, key, start_ms, end_ms, entry, None if fetch_from_ms > end_ms else fetch_from_ms
        )

    def _answer(self, plan: _Plan, fetched: QueryResult | None) -> QueryResult:
        if isinstance(fetched, SourceError):
            return fetched  # never remembered: the next request asks again
        if plan.base is None or (fetched is not None and plan.fetch_from_ms == plan.start_ms):
            # All of the request was fetched: the answer is kept and given as it came, its
            # arrays read-only so that no caller can change what is remembered.
            answer = tuple(fetched or [])
            for one in answer:
                one.timestamps.setflags(write=False)
                one.values.setflags(write=False)
            self._store(plan.key, _Entry(plan.start_ms, plan.end_ms, None, answer))
            self._count(**{"full" if plan.base is None else "incremental": 1})
            return list(answer)
        else:
            kind = "incremental" if fetched is not None else "cached"
            entry = plan.base if fetched is None else _merged(plan.base, fetched, plan.end_ms)
            entry = replace(entry, last_ms=max(entry.last_ms, plan.end_ms))
        entry = _trimmed(entry, plan.start_ms)
        self._store(plan.key, entry)
        self._count(**{kind: 1})
        return _cut(entry, plan.start_ms, plan.end_ms)

    def _store(self, key: _Key, entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _count(self, **added: int) -> None:
        with self._lock:
            self._stats = replace(
                self._stats,
                **{name: getattr(self._stats, name) + value for name, value in added.items()},
            )


def _moment(milliseconds: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=milliseconds)


def _merged(entry: _Entry, found: Sequence[Series], end_ms: int) -> _Entry:
    """``entry`` with ``found``'s points: new values replace old ones at the same instant."""
    series = dict(entry.keyed())
    for one in found:
        labels = tuple(sorted(one.labels.items()))
        stamps = np.round(one.timestamps * 1000.0).astype(np.int64)
        values = np.asarray(one.values, dtype=np.float64)
        if labels in series and stamps.size:
            old_stamps, old_values = series[labels]
            # Old instants before the new answer's first are kept as they are (the usual case:
            # nothing else); those inside its span only where it has no value of its own.
            cut = int(np.searchsorted(old_stamps, stamps[0]))
            tail = old_stamps[cut:]
            keep = ~np.isin(tail, stamps) if tail.size else np.zeros(0, dtype=bool)
            stamps = np.concatenate([old_stamps[:cut], tail[keep], stamps])
            values = np.concatenate([old_values[:cut], old_values[cut:][keep], values])
            if keep.any():
                order = np.argsort(stamps, kind="stable")
                stamps, values = stamps[order], values[order]
        elif labels in series:
            continue  # an empty answer for a series: what is remembered stands
        series[labels] = (stamps, values)
    return _Entry(entry.first_ms, max(entry.last_ms, end_ms), series)


def _trimmed(entry: _Entry, first_ms: int) -> _Entry:
    """``entry`` without the instants before ``first_ms``: no later request will ask them."""
    if first_ms <= entry.first_ms:
        return entry
    series: dict[_Labels, _Points] = {}
    for labels, (stamps, values) in entry.keyed().items():
        keep = stamps >= first_ms
        if keep.any():
            series[labels] = (stamps[keep], values[keep])
    return _Entry(first_ms, entry.last_ms, series)


def _cut(entry: _Entry, start_ms: int, end_ms: int) -> list[Series]:
    """The remembered series over exactly [start_ms, end_ms]; series without points dropped."""
    answer = []
    for labels, (stamps, values) in entry.keyed().items():
        if not stamps.size:
            continue
        if start_ms <= stamps[0] and stamps[-1] <= end_ms:  # the usual case: all of it
            answer.append(Series(dict(labels), stamps / 1000.0, values.copy()))
            continue
        low, high = np.searchsorted(stamps, [start_ms, end_ms], side="left")
        high += int(high < stamps.size and stamps[high] == end_ms)
        if high > low:
            answer.append(Series(dict(labels), stamps[low:high] / 1000.0, values[low:high].copy()))
    return answer
