"""IncrementalSource over a real Prometheus: every look answers what a fresh full query answers,
while only the new instants (and the last ``refetch`` of them) are asked for.

Samples are written by remote write as the looks go, as a scrape would store them: every 15 s,
7.5 s off the minute. One pod's last half-minute is written only after the look that could have
seen it (a late remote write), so the next look must correct what the earlier one saw.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analyzer.errors import QueryError
from analyzer.sources.base import QueryResult, Series
from analyzer.sources.incremental import IncrementalSource
from analyzer.sources.prometheus import PrometheusSource
from canarist.demo.stack import ServiceProcess
from tests.promwrite import write_samples

MINUTE = timedelta(minutes=1)
SCRAPE = 15.0


@pytest.fixture
def metric(request: pytest.FixtureRequest) -> str:
    """A metric name no other test in the session uses."""
    return f"inc_{re.sub(r'[^a-zA-Z0-9_]', '_', request.node.name)}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def t0() -> float:
    """A whole minute three hours ago: in the past, inside the out-of-order window."""
    return math.floor(time.time() / 60) * 60 - 3 * 3600.0


@pytest.fixture
def prometheus(prometheus_server: ServiceProcess) -> Iterator[PrometheusSource]:
    with PrometheusSource(prometheus_server.url, timeout=10) as source:
        yield source


def at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


def scrapes(t0: float, after: float, upto: float) -> list[float]:
    """Scrape instants in (t0 + after, t0 + upto] seconds: every 15 s, 7.5 s off the minute."""
    first = math.floor((after - 7.5) / SCRAPE) + 1
    last = math.floor((upto - 7.5) / SCRAPE)
    return [t0 + 7.5 + SCRAPE * k for k in range(first, last + 1)]


def write(url: str, metric: str, pod: str, t0: float, after: float, upto: float) -> None:
    """The pod's counter (10 + pod's number per scrape) and gauge over (after, upto] seconds."""
    per_scrape = 10.0 + int(pod[-1])
    stamps = scrapes(t0, after, upto)
    counter = [(s, per_scrape * (s - t0 + 300) / SCRAPE) for s in stamps]
    gauge = [(s, 100.0 + math.sin(s / 97.0) * 10 + int(pod[-1])) for s in stamps]
    labels = {"pod": pod, "job": "inc"}
    write_samples(
        url,
        [
            ({"__name__": f"{metric}_total", **labels}, counter),
            ({"__name__": metric, **labels}, gauge),
        ],
    )


def queries(metric: str) -> list[str]:
    return [
        f"sum by (pod) (increase({metric}_total[1m]))",
        f"max({metric})",
        f"{metric}_total",  # a raw selector: several series, __name__ kept
    ]


def as_dict(series: Sequence[Series]) -> dict[tuple[tuple[str, str], ...], list[list[float]]]:
    return {
        tuple(sorted(one.labels.items())): np.column_stack([one.timestamps, one.values]).tolist()
        for one in series
    }


def answered(result: QueryResult) -> list[Series]:
    assert not isinstance(result, Exception), result
    return result


def fresh(source: PrometheusSource, texts: Sequence[str], start: datetime, end: datetime) -> list:
    return [as_dict(source.query_range(text, start, end, MINUTE)) for text in texts]


def test_successive_looks_answer_as_a_full_query_would_with_a_fraction_of_the_points(
    prometheus: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    url, texts = prometheus_server.url, queries(metric)
    write(url, metric, "pod0", t0, -300, 180)
    write(url, metric, "pod1", t0, -300, 150)  # pod1's last 30 s arrive after the first look
    incremental = IncrementalSource(prometheus)
    start, looks, corrected = at(t0 + 60), range(3, 31), 0
    seen_before: dict[tuple[tuple[str, str], ...], list[list[float]]] = {}
    for minute in looks:
        if minute > 3:
            write(url, metric, "pod1", t0, (minute - 1) * 60 - 30, (minute - 1) * 60)  # late
            write(url, metric, "pod0", t0, (minute - 1) * 60, minute * 60)
            write(url, metric, "pod1", t0, (minute - 1) * 60, minute * 60 - 30)
        if minute == 12:
            write(url, metric, "pod2", t0, minute * 60 - 150, minute * 60)  # a new series
        end = at(t0 + minute * 60)

        answers = incremental.query_many(texts, start, end, MINUTE)

        expected = fresh(prometheus, texts, start, end)
        assert [as_dict(answered(answer)) for answer in answers] == expected, f"minute {minute}"
        increases = expected[0]
        for labels, points in seen_before.items():
            corrected += points != increases[labels][: len(points)]
        seen_before = increases
    assert corrected >= len(looks) - 2, "the late samples changed what earlier looks saw"
    assert {dict(labels)["pod"] for labels in seen_before} == {"pod0", "pod1", "pod2"}

    full_points = sum(minute for minute in looks) * len(texts)  # instants t0+1m … t0+minute
    stats = incremental.stats()
    assert stats.requests == len(looks)  # one query_many per look
    assert stats.full == len(texts) and stats.incremental == len(texts) * (len(looks) - 1)
    # the first look asks its 3 instants, every later one the last 2 minutes again and 1 new
    assert stats.points == (3 + 4 * (len(looks) - 1)) * len(texts)
    assert stats.points * 4 < full_points  # 333 points instead of 1386; 12 instead of 90 at 30 m


def test_another_phase_an_earlier_start_or_a_gap_is_a_full_fetch(
    prometheus: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    write(prometheus_server.url, metric, "pod0", t0, -300, 1800)
    text = queries(metric)[0]
    incremental = IncrementalSource(prometheus)
    windows = [
        (t0 + 600, t0 + 900, "full"),  # nothing remembered
        (t0 + 600, t0 + 960, "incremental"),
        (t0 + 630, t0 + 1020, "full"),  # 30 s off the grid: another phase
        (t0 + 300, t0 + 1020, "full"),  # before the first instant remembered
        (t0 + 600, t0 + 1080, "incremental"),  # the first phase again, still remembered
        (t0 + 1500, t0 + 1740, "full"),  # after a gap
        (t0 + 1500, t0 + 1560, "cached"),  # before the last 2 minutes: nothing to ask
    ]
    for start, end, kind in windows:
        before = incremental.stats()
        answer = incremental.query_range(text, at(start), at(end), MINUTE)
        assert as_dict(answer) == fresh(prometheus, [text], at(start), at(end))[0]
        after = incremental.stats()
        assert getattr(after, kind) == getattr(before, kind) + 1, (start - t0, end - t0)
    assert incremental.stats().requests == len(windows) - 1


def test_errors_are_not_remembered_and_entries_are_bounded(
    prometheus: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    write(prometheus_server.url, metric, "pod0", t0, -300, 600)
    incremental = IncrementalSource(prometheus, max_entries=2)
    start, end = at(t0 + 60), at(t0 + 600)
    broken = f"sum(rate({metric}_total[1m]"
    for _ in range(2):
        [error] = incremental.query_many([broken], start, end, MINUTE)
        assert isinstance(error, QueryError)
    assert len(incremental) == 0 and incremental.stats().requests == 2

    texts = queries(metric)
    for text in texts:
        incremental.query_range(text, start, end, MINUTE)
    assert len(incremental) == 2  # the least recently used was evicted
    incremental.query_range(texts[2], start, end, MINUTE)
    assert incremental.stats().incremental == 1  # kept: only its last 3 instants asked again
    answer = incremental.query_range(texts[0], start, end, MINUTE)  # evicted: asked again whole
    assert incremental.stats().full == 4
    assert incremental.stats().points == 2 * 10 + 4 * 10 + 3  # errors, full fetches, the tail
    assert as_dict(answer) == fresh(prometheus, texts[:1], start, end)[0]


def test_eight_threads_sharing_one_source_get_the_right_answers(
    prometheus: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    for pod in ("pod0", "pod1", "pod2"):
        write(prometheus_server.url, metric, pod, t0, -300, 1800)
    incremental = IncrementalSource(prometheus, max_entries=6)  # evictions race too
    shared = queries(metric)
    barrier, failures = threading.Barrier(8), []

    def looks(number: int) -> None:
        own = [*shared, f"sum({metric}_total) * {number}"]
        start = at(t0 + 60 + 60 * (number % 2))
        barrier.wait()
        for minute in range(4, 30):
            end = at(t0 + minute * 60)
            answers = incremental.query_many(own, start, end, MINUTE)
            got = [as_dict(answered(answer)) for answer in answers]
            if got != fresh(prometheus, own, start, end):
                failures.append((number, minute))

    threads = [threading.Thread(target=looks, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(incremental) <= 6
