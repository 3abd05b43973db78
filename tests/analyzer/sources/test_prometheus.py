"""The Prometheus source against a real Prometheus 2.42, fed known samples by remote write.

The Prometheus is shared by the whole session, so every test writes its own metric names. Error
statuses Prometheus cannot be made to send (a proxy's 502, a 429) come from a small local HTTP
server that answers with a chosen status and body.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from analyzer.errors import QueryError, TemporarySourceError
from analyzer.sources.convert import counts_data, histogram_data, step_grid
from analyzer.sources.prometheus import POINTS_PER_REQUEST, PrometheusSource
from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.promwrite import write_samples

MINUTE = timedelta(minutes=1)


@pytest.fixture
def metric(request: pytest.FixtureRequest) -> str:
    """A metric name no other test in the session uses."""
    return f"canarist_{re.sub(r'[^a-zA-Z0-9_]', '_', request.node.name)}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def t0() -> float:
    """A whole minute two hours ago: in the past, well inside the out-of-order window."""
    return math.floor(time.time() / 60) * 60 - 7200.0


@pytest.fixture
def source(prometheus_server: ServiceProcess) -> Iterator[PrometheusSource]:
    with PrometheusSource(prometheus_server.url, timeout=10) as prometheus:
        yield prometheus


def moment(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


def counter_samples(t0: float, start_value: float, per_scrape: float) -> list[tuple[float, float]]:
    """Scrapes every 15 s from 5 min before t0 to 15 min after, offset 7.5 s from the minute,
    so ``increase(x[1m])`` sees four samples and extrapolates to exactly 4 x ``per_scrape``."""
    return [(t0 - 292.5 + 15 * k, start_value + per_scrape * k) for k in range(80)]


# --- answers --------------------------------------------------------------------------------


def test_values_come_back_exactly_at_the_grid_instants(
    source: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    values = [0.1, -2.5, 1e-9, 1e300, 7.0, 42.0]
    write_samples(
        prometheus_server.url,
        [
            (
                {"__name__": metric, "pod": "a"},
                [(t0 + 15 * k, value) for k, value in enumerate(values)],
            )
        ],
    )
    start = moment(t0).replace(microsecond=250_000)  # milliseconds must survive the client
    end = start + timedelta(seconds=75)
    [series] = source.query_range(metric, start, end, timedelta(seconds=15))
    assert series.labels == {"__name__": metric, "pod": "a"}
    np.testing.assert_array_equal(series.timestamps, step_grid(start, end, timedelta(seconds=15)))
    np.testing.assert_array_equal(series.values, values)
    assert series.values.dtype == np.float64


def test_nan_and_infinities_are_floats(
    source: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    samples = [(t0, math.nan), (t0 + 60, math.inf), (t0 + 120, -math.inf)]
    write_samples(prometheus_server.url, [({"__name__": metric}, samples)])
    [series] = source.query_range(metric, moment(t0), moment(t0 + 120), MINUTE)
    assert np.isnan(series.values[0])
    np.testing.assert_array_equal(series.values[1:], [math.inf, -math.inf])


def test_increase_of_a_counter_and_a_missing_errors_counter_give_counts(
    source: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    write_samples(prometheus_server.url, [({"__name__": metric}, counter_samples(t0, 500, 10))])
    start, end = moment(t0), moment(t0 + 600)
    totals = source.query_range(f"sum(increase({metric}[1m]))", start, end, MINUTE)
    errors = source.query_range(f"sum(increase({metric}_5xx[1m]))", start, end, MINUTE)
    assert errors == []
    np.testing.assert_allclose(totals[0].values, [40.0] * 11, rtol=1e-12)
    data = counts_data(errors, totals, step_grid(start, end, MINUTE))
    np.testing.assert_array_equal(data.errors, [0.0] * 11)


def test_histogram_sum_by_le_keeps_le_and_converts_to_bucket_counts(
    source: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    name = f"{metric}_bucket"
    per_scrape = {"a": {"0.1": 1, "0.5": 2, "+Inf": 3}, "b": {"0.1": 2, "0.5": 2, "+Inf": 4}}
    written = [
        ({"__name__": name, "pod": pod, "le": le}, counter_samples(t0, 1000 * (j + 1), step))
        for pod, buckets in per_scrape.items()
        for j, (le, step) in enumerate(buckets.items())
    ]
    write_samples(prometheus_server.url, written)
    start, end = moment(t0), moment(t0 + 300)
    result = source.query_range(f"sum by (le) (increase({name}[1m]))", start, end, MINUTE)
    assert sorted(series.labels["le"] for series in result) == ["+Inf", "0.1", "0.5"]
    assert all(set(series.labels) == {"le"} for series in result)
    data = histogram_data(result, step_grid(start, end, MINUTE))
    np.testing.assert_array_equal(data.upper_bounds, [0.1, 0.5, math.inf])
    np.testing.assert_allclose(data.counts, [[12.0, 4.0, 12.0]] * 6, rtol=1e-12)


def test_a_query_matching_nothing_returns_an_empty_list(source: PrometheusSource) -> None:
    now = math.floor(time.time())
    assert (
        source.query_range("canarist_never_written", moment(now - 600), moment(now), MINUTE) == []
    )


def test_a_long_range_is_split_and_joined_on_the_same_grid(
    prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    write_samples(
        prometheus_server.url,
        [({"__name__": metric}, [(t0 - 21600 + 60 * k, float(k)) for k in range(420)])],
    )
    requests_sent: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: requests_sent.append(response.url))
    start, step = moment(t0 - 21600), timedelta(seconds=1)
    end = start + step * (2 * POINTS_PER_REQUEST + 500)
    with PrometheusSource(prometheus_server.url, session=session) as prometheus:
        [series] = prometheus.query_range(metric, start, end, step)
    assert len(requests_sent) == 3
    grid = step_grid(start, end, step)
    np.testing.assert_array_equal(series.timestamps, grid)
    np.testing.assert_array_equal(series.values, np.floor((grid - grid[0]) / 60))  # last sample
    session.close()


def test_an_absurd_range_is_refused_before_asking() -> None:
    unreachable = PrometheusSource(f"http://{HOST}:{free_port()}", max_points=1000)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(QueryError, match=r"1001 points .* limit is 1000"):
        unreachable.query_range("up", start, start + timedelta(seconds=1000), timedelta(seconds=1))
    unreachable = PrometheusSource(unreachable.url)
    relative = "rate(up[5m] @ end())"
    with pytest.raises(QueryError, match="@ start"):
        unreachable.query_range(relative, start, start + timedelta(hours=12), timedelta(seconds=1))


def test_the_bearer_token_and_headers_are_sent(prometheus_server: ServiceProcess) -> None:
    sent: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: sent.append(response.request))
    prometheus = PrometheusSource(
        prometheus_server.url,
        bearer_token="s3cret",
        headers={"X-Scope-OrgID": "t1"},
        session=session,
    )
    now = moment(math.floor(time.time()))
    prometheus.query_range("vector(1)", now - MINUTE, now, MINUTE)
    prometheus.close()  # a lent session stays open for its owner
    prometheus.query_range("vector(1)", now - MINUTE, now, MINUTE)
    assert [request.headers["Authorization"] for request in sent] == ["Bearer s3cret"] * 2
    assert sent[0].headers["X-Scope-OrgID"] == "t1"
    session.close()


def test_answers_come_uncompressed_unless_the_caller_asks_for_gzip(
    prometheus_server: ServiceProcess,
) -> None:
    """Compressing a look's few kilobytes cost Prometheus a quarter of its CPU a look."""
    encodings: list[str | None] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, **_: encodings.append(response.headers.get("Content-Encoding"))
    )
    now = moment(math.floor(time.time()))
    for headers in ({}, {"accept-encoding": "gzip"}):
        prometheus = PrometheusSource(prometheus_server.url, headers=headers, session=session)
        (series,) = prometheus.query_range("vector(3)", now - MINUTE, now, MINUTE)
        assert list(series.values) == [3.0, 3.0]
    assert encodings == [None, "gzip"]
    session.close()


def test_a_query_longer_than_a_url_may_be_goes_in_the_body(
    prometheus_server: ServiceProcess,
) -> None:
    """A look's union of queries is kilobytes long: it is a POST form body, never the URL,
    which proxies limit to a few kilobytes and Prometheus itself to a megabyte of headers."""
    sent: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: sent.append(response.request))
    prometheus = PrometheusSource(prometheus_server.url, session=session)
    long_comment = "# " + "x" * 1_100_000 + "\n"  # PromQL comment: the query is vector(7)
    now = moment(math.floor(time.time()))

    (series,) = prometheus.query_range(long_comment + "vector(7)", now - MINUTE, now, MINUTE)

    assert list(series.values) == [7.0, 7.0]
    (request,) = sent
    assert request.method == "POST" and request.url is not None and len(request.url) < 200
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    session.close()


# --- errors from Prometheus -----------------------------------------------------------------


def test_a_syntax_error_is_a_query_error_with_prometheus_message(source: PrometheusSource) -> None:
    now = moment(math.floor(time.time()))
    with pytest.raises(QueryError) as raised:
        source.query_range("sum(rate(http_requests_total{[5m]))", now - MINUTE, now, MINUTE)
    message = str(raised.value)
    assert "HTTP 400, bad_data" in message and "parse error" in message
    assert "sum(rate(http_requests_total{[5m]))" in message


def test_an_execution_error_is_a_query_error(
    source: PrometheusSource, prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    write_samples(
        prometheus_server.url,
        [({"__name__": metric, "pod": pod}, [(t0, 1.0)]) for pod in ("a", "b")],
    )
    with pytest.raises(QueryError, match=r"HTTP 422, execution: .*many-to-many"):
        source.query_range(f"{metric} + on() {metric}", moment(t0), moment(t0 + 60), MINUTE)


def test_a_query_over_the_server_timeout_is_temporary(
    prometheus_server: ServiceProcess, metric: str, t0: float
) -> None:
    write_samples(prometheus_server.url, [({"__name__": metric}, [(t0, 1.0)])])
    impatient = PrometheusSource(prometheus_server.url, timeout=10, query_timeout=1e-6)
    with pytest.raises(TemporarySourceError, match="HTTP 503, timeout: query timed out"):
        impatient.query_range(f"count_over_time({metric}[30d])", moment(t0), moment(t0), MINUTE)


def test_an_unreachable_prometheus_is_temporary() -> None:
    nobody = PrometheusSource(f"http://{HOST}:{free_port()}", timeout=2)
    now = moment(math.floor(time.time()))
    with pytest.raises(TemporarySourceError, match="cannot reach Prometheus"):
        nobody.query_range("up", now - MINUTE, now, MINUTE)


def test_a_server_that_never_answers_is_temporary() -> None:
    with socket.socket() as silent:  # the kernel accepts connections; nobody ever reads them
        silent.bind((HOST, 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        mute = PrometheusSource(f"http://{HOST}:{port}", timeout=0.2)
        now = moment(math.floor(time.time()))
        with pytest.raises(TemporarySourceError, match=r"did not answer within 0\.2 s"):
            mute.query_range("up", now - MINUTE, now, MINUTE)


# --- errors from what stands in front of Prometheus -----------------------------------------


class _Canned(BaseHTTPRequestHandler):
    answer: tuple[int, str, bytes, dict[str, str]] = (200, "text/plain", b"", {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, content_type, body, headers = self.answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[ThreadingHTTPServer, type[_Canned]]]:
    handler = type("Handler", (_Canned,), {})
    server = ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join()


PROM_JSON = "application/json"


Answer = tuple[int, str, bytes, dict[str, str]]
PROMETHEUS_503: Answer = (
    503,
    PROM_JSON,
    b'{"status":"error","errorType":"unavailable","error":"TSDB not ready"}',
    {"Retry-After": "120"},
)
PROMETHEUS_500: Answer = (
    500,
    PROM_JSON,
    b'{"status":"error","errorType":"internal","error":"boom"}',
    {},
)
NATIVE_HISTOGRAMS: Answer = (
    200,
    PROM_JSON,
    b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[]}]}}',
    {},
)


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (PROMETHEUS_503, TemporarySourceError, "HTTP 503, unavailable: TSDB not ready"),
        (PROMETHEUS_500, TemporarySourceError, "HTTP 500, internal: boom"),
        ((502, "text/html", b"<html>Bad Gateway</html>", {}), TemporarySourceError, "HTTP 502"),
        ((429, "text/plain", b"slow down", {}), TemporarySourceError, "HTTP 429, slow down"),
        ((401, "text/plain", b"Unauthorized", {}), QueryError, "HTTP 401, Unauthorized"),
        ((404, "text/plain", b"404 page not found", {}), QueryError, "HTTP 404, 404 page"),
        ((200, "text/html", b"<html>login</html>", {}), TemporarySourceError, "unreadable answer"),
        (NATIVE_HISTOGRAMS, QueryError, "native histograms"),
    ],
)
def test_statuses_map_to_query_or_temporary_errors(
    canned: tuple[ThreadingHTTPServer, type[_Canned]],
    answer: Answer,
    error: type[Exception],
    text: str,
) -> None:
    server, handler = canned
    handler.answer = answer
    stand_in = PrometheusSource(f"http://{HOST}:{server.server_address[1]}", timeout=5)
    now = moment(math.floor(time.time()))
    started = time.monotonic()
    with pytest.raises(error, match=re.escape(text)) as raised:
        stand_in.query_range("up", now - MINUTE, now, MINUTE)
    assert str(raised.value).endswith("query: up")
    assert time.monotonic() - started < 3  # no retry, no waiting on Retry-After


def test_the_environments_proxy_settings_are_read_once_when_the_source_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    behind = PrometheusSource("http://prometheus.example:9090")
    beside = PrometheusSource("http://localhost:9090")
    monkeypatch.setenv("HTTP_PROXY", "http://other.example:3128")  # read once: no effect now

    assert behind._client._session.proxies.get("http") == "http://proxy.example:3128"
    assert not beside._client._session.proxies  # NO_PROXY names it
