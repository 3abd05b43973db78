"""A fresh baseline on the local platform: instances of the stable version started with the
canary's, with its share of NGINX's split, scraped as ``track="baseline"`` and stopped at the end.

The analysis side is checked through a real Prometheus scraping the platform's file_sd targets:
the selector a fresh-baseline rollout compares with finds the baseline's instances and never the
stable fleet's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analyzer.policy.promql import PromQLTemplate
from analyzer.sources.base import Series
from analyzer.sources.prometheus import PrometheusSource
from canarist.demo.stack import start_prometheus
from tests.workers.platforms.local.conftest import LocalApps, gone
from workers.actions import EnsureCanary, Promote, Rollback, SetTraffic
from workers.job import fresh_baseline_selector
from workers.platforms import Ready
from workers.state import RolloutState

APP = "fresh"
TOTAL = "sum by (track, pod) (http_requests_total{ {{ selector }} })"


@pytest.fixture
def app(local_apps: LocalApps) -> Iterator[str]:
    if APP not in local_apps.ports:
        local_apps.register(APP, replicas=2)
    yield APP
    local_apps.clean(APP)


@pytest.fixture(scope="module")
def prometheus(local_apps: LocalApps, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    targets = local_apps.platform.targets_file()
    server = start_prometheus(Path(tmp_path_factory.mktemp("prom")), file_sd=targets)
    try:
        yield server.url
    finally:
        server.stop()


def fresh(local_apps: LocalApps, app: str, version: str) -> RolloutState:
    state = local_apps.rollout(app, version)
    selector = fresh_baseline_selector(state.spec.baseline_selector, "local", app, "pod", "version")
    return replace(state, spec=replace(state.spec, fresh_baseline_selector=selector))


def tracks(local_apps: LocalApps, app: str) -> list[tuple[str, str]]:
    instances = local_apps.status(app).instances
    return sorted((i.track, i.version) for i in instances if not i.retiring)


def test_baseline_instances_start_with_the_canary_and_the_rollback_stops_them(
    local_apps: LocalApps, app: str, prometheus: str
) -> None:
    rollout = fresh(local_apps, app, "v2")
    assert local_apps.apply(rollout, EnsureCanary(), SetTraffic(25)) == Ready()
    assert tracks(local_apps, app) == [
        ("baseline", "v1"), ("canary", "v2"), ("stable", "v1"), ("stable", "v1")
    ]  # fmt: skip
    baseline_pids = local_apps.status(app).pids("baseline")
    served = local_apps.served(app, 400)
    assert 57 <= served["v2"] <= 143  # 25% of 400 is 100, sd 8.7: about 5 sd either side
    assert served["v1"] == 400 - served["v2"]

    # The rollout's comparison selector reads the baseline instances' series, and only theirs.
    series = _scraped(prometheus, rollout)
    assert {s.labels["track"] for s in series} == {"baseline"}
    (baseline,) = series
    requests = float(baseline.values[-1])
    assert 57 <= requests <= 143  # the baseline's share: the canary's, not the stable's 50%

    assert local_apps.apply(rollout, Rollback("test abort")) == Ready()
    assert tracks(local_apps, app) == [("stable", "v1"), ("stable", "v1")]
    assert gone(baseline_pids)


def test_promotion_stops_the_baseline_and_above_half_it_takes_nothing(
    local_apps: LocalApps,
) -> None:
    app = local_apps.register("fresh-promoted", replicas=1)
    rollout = fresh(local_apps, app, "v3")
    assert local_apps.apply(rollout, EnsureCanary(), SetTraffic(50)) == Ready()
    baseline_pids = local_apps.status(app).pids("baseline")
    assert len(baseline_pids) == 1
    assert local_apps.apply(rollout, SetTraffic(100)) == Ready()
    assert gone(baseline_pids)
    assert local_apps.served(app, 20) == {"v3": 20}
    assert local_apps.apply(rollout, Promote()) == Ready()
    assert tracks(local_apps, app) == [("stable", "v3")]


def _scraped(prometheus: str, rollout: RolloutState) -> list[Series]:
    """The baseline's request counts as the analysis would query them, once scraped."""
    versions = rollout.spec.versions()
    query = PromQLTemplate.parse(TOTAL).render(
        selector=versions.baseline, interval=timedelta(seconds=5)
    )
    deadline, last = time.monotonic() + 30, None
    with PrometheusSource(prometheus) as source:
        while True:  # until two scrapes 1.5 s apart agree: every request served is counted
            end = datetime.now(UTC)
            found = source.query_range(query, end - timedelta(seconds=5), end, timedelta(seconds=1))
            totals = [float(s.values[-1]) for s in found if s.values.size]
            if totals and sum(totals) > 0 and totals == last:
                return found
            last = totals
            assert time.monotonic() < deadline, f"{query} found nothing scraped"
            time.sleep(1.5)
