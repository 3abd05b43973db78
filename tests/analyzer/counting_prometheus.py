"""A real PrometheusSource that counts the HTTP requests it sends (one per chunk): what the
batching tests assert about a look, with no mock between them and Prometheus."""

from __future__ import annotations

from analyzer.sources.base import Series
from analyzer.sources.prometheus import PrometheusSource


class CountingPrometheus(PrometheusSource):
    requests = 0

    def _request(
        self, promql: str, start_ms: int, end_ms: int, step_ms: int, shown: str
    ) -> list[Series]:
        self.requests += 1
        return super()._request(promql, start_ms, end_ms, step_ms, shown)
