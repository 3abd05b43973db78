"""The only module that talks to Prometheus: range queries over prometheus-api-client's session.

Everything Prometheus-specific stops here: HTTP, authentication, the JSON answer, and the
library's exceptions. Callers get ``Series`` with float64 arrays (Prometheus sends values as
strings, "NaN" and "+Inf" included) and only the errors of ``analyzer.errors``:

    HTTP 400 bad_data, 422 execution, other 4xx   QueryError            (the query is wrong)
    HTTP 408, 425, 429                            TemporarySourceError  (the server is busy)
    HTTP 5xx, 503 timeout, unreadable answer      TemporarySourceError
    connection refused/reset, client timeout      TemporarySourceError

Both carry Prometheus' own message and the query. One ``requests`` session serves every query,
so backtests running hundreds of analyses reuse connections; pass ``session`` to share one.

Each request is a POST with the parameters in a form body, as Prometheus documents for queries
that may breach URL limits: a look's union of queries (below) is kilobytes long, which a proxy
in front of Prometheus may refuse in a URL (414), and which requests and urllib3 re-encode
character by character when it is one (1.4 ms of CPU a look, measured with the scale
benchmark's profile). prometheus-api-client sends its parameters in the URL whatever the method,
so the request goes through the session it set up (its retry policy mounted for our URL), not
its ``custom_query_range``.

Answers are asked for uncompressed (``Accept-Encoding: identity``; a caller's ``headers`` may
ask for gzip): a look's answer is about 4 KB, and compressing it cost Prometheus 0.43-0.50 of
its 1.77-1.97 ms of CPU a look, and the worker the decompression (the scale benchmark's union of
12 queries, four runs of 300 requests each way). Over a slow link to Prometheus, pass
``{"Accept-Encoding": "gzip"}``.

Retries: one immediate retry when a connection cannot be opened; none once a request is sent,
so a chunk lasts at most about ``timeout``, and none on an HTTP status (Retry-After ignored). A
failed query is an ERROR measurement that counts against the policy's
``consecutive_error_limit`` and is asked again next interval; retrying here would only stretch
a Celery task past its deadline.

Several queries: ``query_many`` sends them as one request, the union of
``label_replace((<query i>), "canarist_query", "<i>", "", "")`` joined with ``or``, and splits
the answer back by that label. When Prometheus refuses the union (a broken query, a scalar) each
query is asked alone, so every error is its own query's; an outage is every query's error.

Long ranges: Prometheus refuses more than 11,000 steps per series. A longer range is split
transparently into requests of ``POINTS_PER_REQUEST`` points on the same grid and the answers
joined per label set; each instant is evaluated independently, so the result is the one a single
query would give. Two exceptions are refused with QueryError instead: a query using
``@ start()`` / ``@ end()``, whose meaning would change per chunk, and a range of more than
``max_points`` points, which is a mistake rather than a backtest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, cast

import numpy as np
import requests
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from analyzer.errors import QueryError, SourceError, TemporarySourceError
from analyzer.sources.base import QueryResult, Series
from analyzer.sources.convert import grid_bounds_ms

POINTS_PER_REQUEST = 10_000  # Prometheus' limit is 11,000 steps; stay clear of off-by-ones
DEFAULT_MAX_POINTS = 1_000_000  # about 115 days at a 10 s step: more is a mistake
_TEMPORARY_CLIENT_STATUSES = frozenset({408, 425, 429})
_RANGE_RELATIVE = re.compile(r"@\s*(?:start|end)\s*\(\s*\)")
_MESSAGE_LIMIT = 500
_UNION_LABEL = "canarist_query"  # tells the parts of query_many's union apart


class PrometheusSource:
    """A MetricSource over Prometheus' HTTP API (``/api/v1/query_range``).

    ``timeout`` bounds each HTTP request in seconds; ``query_timeout`` is sent to Prometheus as
    its ``timeout`` parameter so it abandons work nobody waits for (default: ``timeout``).
    """

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        *,
        query_timeout: float | None = None,
        bearer_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"Prometheus URL must be http(s)://host[:port][/prefix], got {url!r}")
        if timeout <= 0 or (query_timeout is not None and query_timeout <= 0):
            raise ValueError("timeouts must be positive")
        if max_points < 1:
            raise ValueError(f"max_points must be positive, got {max_points}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.query_timeout = timeout if query_timeout is None else query_timeout
        self.max_points = max_points
        # Unless the caller says otherwise: an answer is a few kilobytes, and gzip would cost
        # Prometheus a quarter of a look's CPU (module docstring).
        request_headers = CaseInsensitiveDict({"Accept-Encoding": "identity"})
        request_headers.update(headers or {})
        if bearer_token is not None:
            request_headers["Authorization"] = f"Bearer {bearer_token}"
        self._owns_session = session is None
        self._session = session if session is not None else _session_for(self.url)
        self._headers = request_headers
        self._endpoint = f"{self.url}/api/v1/query_range"
        retry = Retry(
            total=1,
            connect=1,
            read=False,  # re-raise read errors as themselves: a timeout stays a Timeout
            status=0,
            other=0,
            redirect=0,
            backoff_factor=0,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        # The library mounts this retry policy on the session for our URL prefix only.
        self._client = PrometheusConnect(
            url=self.url,
            headers=dict(request_headers),
            retry=retry,
            session=self._session,
            timeout=cast(int, timeout),  # annotated int, passed to requests, which takes float
        )

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        return self._range(promql, start, end, step, promql)

    def query_many(
        self, queries: Sequence[str], start: datetime, end: datetime, step: timedelta
    ) -> list[QueryResult]:
        """Every query in one request: their union, told apart by a ``canarist_query`` label.

        Query i becomes ``label_replace((<query>), "canarist_query", "<i>", "", "")`` and the
        parts are joined with ``or``; no series of one part can match another's (their
        ``canarist_query`` differs, and ``or`` ignores ``__name__``), so the union holds every
        part's series, which are split back by that label and lose it. When the union is refused
        (QueryError: one query is broken, or answers a scalar, which ``label_replace`` refuses)
        each query is asked alone, so each error is its own query's. An outage is every query's
        error, with no further request. A query that already mentions ``canarist_query`` is
        asked alone.
        """
        answers: list[QueryResult | None] = [None] * len(queries)
        together = [i for i, promql in enumerate(queries) if _UNION_LABEL not in promql]
        alone = [i for i in range(len(queries)) if i not in set(together)]
        if len(together) == 1:
            alone, together = sorted(alone + together), []
        if together:
            union = " or ".join(
                f'label_replace(({queries[i]}\n), "{_UNION_LABEL}", "{i}", "", "")'
                for i in together
            )
            shown = f"{len(together)} queries in one request"
            try:
                found = self._range(union, start, end, step, shown)
            except TemporarySourceError as error:
                return [_for_query(error, shown, promql) for promql in queries]
            except QueryError:
                alone = sorted(alone + together)
            else:
                parts: dict[str, list[Series]] = {str(i): [] for i in together}
                for series in found:
                    labels = dict(series.labels)
                    part = parts.get(labels.pop(_UNION_LABEL, ""))
                    if part is not None:
                        part.append(Series(labels, series.timestamps, series.values))
                for i in together:
                    answers[i] = parts[str(i)]
        for position, i in enumerate(alone):
            try:
                answers[i] = self.query_range(queries[i], start, end, step)
            except TemporarySourceError as error:  # an outage: the rest would fail alike
                for j in alone[position:]:
                    answers[j] = _for_query(error, queries[i], queries[j])
                break
            except QueryError as error:
                answers[i] = error
        return [answer if answer is not None else [] for answer in answers]

    def _range(
        self, promql: str, start: datetime, end: datetime, step: timedelta, shown: str
    ) -> list[Series]:
        """``promql`` over [start, end], in chunks of ``POINTS_PER_REQUEST`` points; errors
        name the query as ``shown``."""
        start_ms, end_ms, step_ms = grid_bounds_ms(start, end, step)
        points = (end_ms - start_ms) // step_ms + 1
        if points > self.max_points:
            raise QueryError(
                f"{points} points per series requested (range {end - start} at step {step}); "
                f"the limit is {self.max_points}: use a longer step or a shorter range; "
                f"query: {shown}"
            )
        if points > POINTS_PER_REQUEST and _RANGE_RELATIVE.search(promql):
            raise QueryError(
                f"{points} points need several requests, which would change what '@ start()' "
                f"and '@ end()' mean; use a longer step or a shorter range; query: {shown}"
            )
        joined: dict[tuple[tuple[str, str], ...], list[Series]] = {}
        chunk_span_ms = POINTS_PER_REQUEST * step_ms
        for chunk_start_ms in range(start_ms, end_ms + 1, chunk_span_ms):
            chunk_end_ms = min(end_ms, chunk_start_ms + chunk_span_ms - step_ms)
            for series in self._request(promql, chunk_start_ms, chunk_end_ms, step_ms, shown):
                joined.setdefault(tuple(sorted(series.labels.items())), []).append(series)
        return [_concatenate(parts) for parts in joined.values()]

    def close(self) -> None:
        """Release pooled connections, unless the session was lent to us."""
        if self._owns_session:
            self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self, promql: str, start_ms: int, end_ms: int, step_ms: int, shown: str
    ) -> list[Series]:
        form = {
            "query": promql,
            "start": _seconds(start_ms),
            "end": _seconds(end_ms),
            "step": _seconds(step_ms),
            "timeout": f"{self.query_timeout:g}",
        }
        try:
            response = self._session.post(
                self._endpoint, data=form, headers=self._headers, timeout=self.timeout
            )
            if response.status_code != 200:
                raise _from_status(response.status_code, response.content, shown)
            return [_parse_series(item, shown) for item in response.json()["data"]["result"]]
        except requests.Timeout as exc:
            raise TemporarySourceError(
                f"Prometheus at {self.url} did not answer within {self.timeout:g} s; query: {shown}"
            ) from exc
        except requests.ConnectionError as exc:
            raise TemporarySourceError(
                f"cannot reach Prometheus at {self.url}: {_short(str(exc))}; query: {shown}"
            ) from exc
        except (requests.RequestException, ValueError, LookupError, TypeError) as exc:
            # 200 with a body that is not Prometheus' JSON: a proxy or a half-written answer.
            raise TemporarySourceError(
                f"unreadable answer from Prometheus at {self.url}: {_short(repr(exc))}; "
                f"query: {shown}"
            ) from exc


def _for_query(error: SourceError, shown: str, promql: str) -> SourceError:
    """``error``, raised for a request shown as ``shown``, as the error of ``promql``; chained
    to it, so its cause (a refused connection, say) is still found."""
    message = str(error).removesuffix(shown) + promql
    own: SourceError
    if isinstance(error, TemporarySourceError):
        own = TemporarySourceError(message, error.retry_after)
    else:
        own = QueryError(message)
    own.__cause__ = error
    return own


def _session_for(url: str) -> requests.Session:
    """A session that reads the environment's proxy and CA settings for ``url`` once, here,
    rather than on every request (requests re-reads HTTP(S)_PROXY, NO_PROXY and the CA bundle
    variables per request: a hundred environment lookups, a tenth of a look's own CPU). A
    ``.netrc`` is not read: Prometheus' credentials are the ``bearer_token``."""
    session = requests.Session()
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    return session


def _from_status(status: int, body: bytes, promql: str) -> SourceError:
    """The error of an answer other than 200: Prometheus' own ``errorType: error`` when the body
    is its JSON, else the body itself (a proxy's, a gateway's)."""
    text = body.decode("utf-8", "replace")
    try:
        answer: Any = json.loads(text)
        detail = _short(f"{answer['errorType']}: {answer['error']}")
    except (ValueError, LookupError, TypeError):
        detail = _short(text) or "(empty body)"
    message = f"Prometheus answered HTTP {status}, {detail}; query: {promql}"
    if 400 <= status < 500 and status not in _TEMPORARY_CLIENT_STATUSES:
        return QueryError(message)
    return TemporarySourceError(message)


def _parse_series(item: Mapping[str, Any], promql: str) -> Series:
    if "values" not in item and "histograms" in item:
        raise QueryError(
            "the query returned native histograms, which Canarist does not read; "
            f"query classic '_bucket' series with 'sum by (le) (…)'; query: {promql}"
        )
    pairs = item["values"]
    timestamps = np.fromiter((float(pair[0]) for pair in pairs), np.float64, len(pairs))
    values = np.fromiter((float(pair[1]) for pair in pairs), np.float64, len(pairs))
    labels = {str(name): str(value) for name, value in item["metric"].items()}
    return Series(labels=labels, timestamps=timestamps, values=values)


def _concatenate(parts: list[Series]) -> Series:
    if len(parts) == 1:
        return parts[0]
    return Series(
        labels=parts[0].labels,
        timestamps=np.concatenate([part.timestamps for part in parts]),
        values=np.concatenate([part.values for part in parts]),
    )


def _seconds(milliseconds: int) -> str:
    """Prometheus reads Unix times and steps as decimal seconds; milliseconds are its precision."""
    sign, magnitude = ("-" if milliseconds < 0 else ""), abs(milliseconds)
    return f"{sign}{magnitude // 1000}.{magnitude % 1000:03d}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
