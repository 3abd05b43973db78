"""How ``analyze`` and ``backtest`` end: exit codes a pipeline can branch on.

The analysis turns a failed Prometheus query into an INCONCLUSIVE metric, because a live
rollout asks again next interval (errors are data). A pipeline running one analysis cannot, so
it must tell "Prometheus failed" from "the canary is inconclusive": ``WatchedSource`` remembers
what failed, and ``finish`` turns it into exit code 4 and one line on stderr, naming the URL and
the cause without the HTTP library's text. 2 stays what click and typer use for usage errors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import IntEnum
from typing import NoReturn

import typer
from rich.console import Console

from analyzer.backtest import BacktestDecision
from analyzer.errors import SourceError, TemporarySourceError
from analyzer.sources.base import QueryResult, Series
from analyzer.sources.prometheus import PrometheusSource
from analyzer.verdict import Outcome

err = Console(highlight=False, soft_wrap=True, stderr=True)


class AnalysisExit(IntEnum):
    """The exit codes of ``analyze`` and ``backtest``; 0, 1 and 3 follow the verdict."""

    PASS = 0  # analyze: PASS; backtest: promote; a suite: every expectation met
    FAIL = 1  # analyze: FAIL; backtest: abort (also any crash: Python exits 1)
    USAGE = 2  # a flag, the policy or the suite file is invalid (click's and typer's code)
    INCONCLUSIVE = 3  # analyze: INCONCLUSIVE; backtest: inconclusive
    PROMETHEUS = 4  # Prometheus unreachable or refusing a query: wins over 0, 1, 3 and 5
    EXPECTATION_MISSED = 5  # backtest --suite: a case decided otherwise than its expect:


_USAGE = "usage error: a flag, the policy or the suite file is invalid"
_PROMETHEUS = "Prometheus unreachable, or refusing a query (one line on stderr); wins over the rest"
ANALYZE_EXITS = (
    (AnalysisExit.PASS, "PASS"),
    (AnalysisExit.FAIL, "FAIL"),
    (AnalysisExit.USAGE, _USAGE),
    (AnalysisExit.INCONCLUSIVE, "INCONCLUSIVE"),
    (AnalysisExit.PROMETHEUS, _PROMETHEUS),
)
BACKTEST_EXITS = (
    (AnalysisExit.PASS, "promote; with --suite: every case decided as its expect: says"),
    (AnalysisExit.FAIL, "abort"),
    (AnalysisExit.USAGE, _USAGE),
    (AnalysisExit.INCONCLUSIVE, "inconclusive"),
    (AnalysisExit.PROMETHEUS, _PROMETHEUS),
    (AnalysisExit.EXPECTATION_MISSED, "--suite: a case decided otherwise than its expect:"),
)
VERDICT_EXITS = {
    Outcome.PASS: AnalysisExit.PASS,
    Outcome.FAIL: AnalysisExit.FAIL,
    Outcome.INCONCLUSIVE: AnalysisExit.INCONCLUSIVE,
}
DECISION_EXITS: dict[BacktestDecision, AnalysisExit] = {
    "promote": AnalysisExit.PASS,
    "abort": AnalysisExit.FAIL,
    "inconclusive": AnalysisExit.INCONCLUSIVE,
}


def help_with_exits(summary: str, exits: tuple[tuple[AnalysisExit, str], ...]) -> str:
    """A command's ``--help``: its summary, then the table of its exit codes."""
    rows = "\n".join(f"{int(code)}  {meaning}" for code, meaning in exits)
    return f"{summary}\n\nExit codes:\n\n{rows}"


class WatchedSource:
    """A MetricSource over Prometheus that counts queries and keeps the first failure.

    Cases of a suite run in threads through one source, hence the lock.
    """

    def __init__(self, source: PrometheusSource) -> None:
        self.url = source.url
        self._source = source
        self._lock = threading.Lock()
        self.queries = 0
        self.failures = 0
        self.first_failure: SourceError | None = None

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        with self._lock:
            self.queries += 1
        try:
            return self._source.query_range(promql, start, end, step)
        except SourceError as error:
            with self._lock:
                self.failures += 1
                self.first_failure = self.first_failure or error
            raise

    def query_many(
        self, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
    ) -> list[QueryResult]:
        """Every query in one request; each still counts as one query, and its failure as one."""
        answers = self._source.query_many(queries, start, end, step)
        failed = [answer for answer in answers if isinstance(answer, SourceError)]
        with self._lock:
            self.queries += len(queries)
            self.failures += len(failed)
            self.first_failure = self.first_failure or next(iter(failed), None)
        return answers

    def failure_line(self) -> str | None:
        """``error: <URL and cause> (N of M queries failed)``, or None when all answered."""
        if self.first_failure is None:
            return None
        cause = _refused_connection(self.first_failure)
        if cause is not None:
            text = f"cannot reach Prometheus at {self.url}: {cause}"
        elif self.url in str(self.first_failure):
            text = str(self.first_failure)
        else:
            text = f"Prometheus at {self.url}: {self.first_failure}"
        counted = f"{text} ({self.failures} of {self.queries} queries failed)"
        return "error: " + " ".join(counted.split())


def _refused_connection(error: SourceError) -> str | None:
    """The operating system's reason a connection failed (``Connection refused``), if it is one.

    requests and urllib3 wrap it three levels deep in text naming pools and retries; the
    reason itself is the errno-bearing OSError at the bottom of the chain.
    """
    if not isinstance(error, TemporarySourceError):
        return None
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending and len(seen) < 20:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None and current.strerror:
            return current.strerror
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        pending += [item for item in linked if isinstance(item, BaseException)]
    return None


@contextmanager
def prometheus(url: str) -> Iterator[WatchedSource]:
    """A watched source for ``url``; a URL that is not one is a usage error, not a crash."""
    try:
        source = PrometheusSource(url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--prometheus'") from None
    with source:
        yield WatchedSource(source)


def finish(source: WatchedSource, code: AnalysisExit) -> NoReturn:
    """Exit with ``code``, unless Prometheus failed: then say why in one line and exit 4."""
    line = source.failure_line()
    if line is not None:
        err.print(line, markup=False)
        raise typer.Exit(AnalysisExit.PROMETHEUS)
    raise typer.Exit(code)
