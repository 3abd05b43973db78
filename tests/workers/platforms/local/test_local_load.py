"""Synthetic load for a blue-green preview on the local platform, end to end with real processes.

The preview gets no user traffic (users' requests through NGINX all reach the active version),
so its analysis has nothing to judge: without ``load:`` it pauses for lack of data; with it,
``canarist load``'s runner sends bounded requests through the same router with the preview
header, Prometheus scrapes them from the preview's instances exactly as it scrapes a user's
request, and the preview is analysed with data and promoted. An abort stops the load at the
runner's next read. The audit trail says what the load sent. The rollout is stepped as the
advance task steps it (``observations.observe``, ``stepping.step_and_save``) in real time.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from analyzer.policy import Policy
from analyzer.sources.prometheus import PrometheusSource
from canarist.demo.load import LoadGenerator
from canarist.demo.stack import ServiceProcess, start_prometheus
from canarist.report.page import timeline
from tests.workers.platforms.local.conftest import NAMESPACE, LocalApps, service_command
from workers.actions import EventKind, PlatformAction
from workers.intake import Intake
from workers.load.runner import LoadRunner, target_for
from workers.metrics import RolloutLog
from workers.observations import observe
from workers.spec import RolloutSpec
from workers.state import Phase, RolloutState
from workers.stepping import step_and_save
from workers.store import RedisStateStore

APP = "preview"
POLICY = """\
name: {name}
analysis:
  interval: 3s
  begin_after: 2s
  min_samples: 2
  inconclusive_limit: 1
  on_inconclusive: pause
metrics:
  - name: preview-requests
    description: the preview serves requests at all (a threshold on the canary alone)
    kind: series
    query: sum(rate(http_requests_total{{ {{{{ selector }}}}, code="200" }}[{{{{ interval }}}}]))
    judge: {{type: threshold, min: 5, aggregate: mean}}
    critical: true
strategy:
  type: blue_green
  analyze:
    duration: {duration}
{load}  scale_down_delay: 1s
"""
LOAD = "    load: {rate: 20/s, requests: [{path: /}, {path: '/?from=load'}]}\n"
_versions = itertools.count(2)


@pytest.fixture(scope="module")
def prometheus(local_apps: LocalApps, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    targets = local_apps.platform.targets_file()
    server = start_prometheus(Path(tmp_path_factory.mktemp("prom")), file_sd=targets)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def app(local_apps: LocalApps) -> Iterator[str]:
    if APP not in local_apps.ports:
        local_apps.register(APP, replicas=1)
    yield APP
    local_apps.clean(APP)


class Rollouts:
    """Rollouts of one test stepped like the task steps them, and the load runner beside them."""

    def __init__(self, store: RedisStateStore, policy_dir: Path, apps: LocalApps, prom: str):
        self.store, self.apps, self.source = store, apps, PrometheusSource(prom)
        self.prometheus = prom
        self.started: list[str] = []
        self.intake = Intake(store, policy_dir, time.time, lambda *_: None, alert_routes=())
        self.runner = LoadRunner(
            store, self.intake.policy_for, self.intake.record, time.time,
            policy_dir=policy_dir, target=target_for(local=apps.platform.preview_target),
        )  # fmt: skip

    def start(self, policy: Policy) -> str:
        version = f"v{next(_versions)}"
        spec = RolloutSpec(
            version, service_command(version), "local",
            f'app="{APP}",track="stable"', f'app="{APP}",version="{version}"',
            strategy=policy.strategy.type,
        )  # fmt: skip
        state = RolloutState.new(
            f"{APP}-{uuid.uuid4().hex[:8]}", app=APP, namespace=NAMESPACE, policy=policy.name,
            spec=spec, now=time.time(),
        )  # fmt: skip
        self.store.create(state, events=[])
        self.started.append(state.id)
        return state.id

    def finish(self) -> None:
        """Abort what a failed test left running, and wait until it is rolled back."""
        for rollout_id in self.started:
            if not self.store.load(rollout_id).state.phase.terminal:
                self.intake.command(rollout_id, "abort", "test teardown")
            self.drive(rollout_id, lambda s: s.phase.terminal and s.awaiting is None)

    def drive(
        self, rollout_id: str, until: Callable[[RolloutState], bool], timeout: float = 90.0
    ) -> RolloutState:
        log = RolloutLog(logging.getLogger("test.load"), {"rollout_id": rollout_id})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            loaded = self.store.load(rollout_id)
            if until(loaded.state):
                return loaded.state
            policy, now = self.intake.policy_for(loaded.state), time.time()
            platforms = lambda _: self.apps.platform  # noqa: E731
            seen = observe(platforms, self.source, loaded.state, policy, now, log)
            stepped = step_and_save(self.store, loaded, policy, seen, now)
            for action in stepped.actions:
                if isinstance(action, PlatformAction):
                    self.apps.platform.apply(stepped.state, action)
            self.runner.poll()
            time.sleep(0.25)
        raise AssertionError(f"{rollout_id} did not get there: {self.store.load(rollout_id)}")

    def loads(self, rollout_id: str) -> list[dict[str, object]]:
        events = self.store.events(rollout_id, limit=1000)
        return [dict(e.data) for e in events if e.kind == EventKind.SYNTHETIC_LOAD]

    def verdicts(self, rollout_id: str) -> list[str]:
        events = self.store.events(rollout_id, limit=1000)
        return [e.message for e in events if e.kind == EventKind.ANALYSIS]


@pytest.fixture
def rollouts(
    redis_server: ServiceProcess, tmp_path: Path, local_apps: LocalApps, prometheus: str, app: str
) -> Iterator[Rollouts]:
    """Torn down before ``app`` (which it uses): what is left running is aborted first."""
    store = RedisStateStore.from_url(redis_server.url, f"load-{uuid.uuid4().hex[:8]}")
    driver = Rollouts(store, tmp_path, local_apps, prometheus)
    yield driver
    driver.runner.shutdown()
    driver.finish()


def write_policy(rollouts: Rollouts, name: str, duration: str, load: str) -> Policy:
    text = POLICY.format(name=name, duration=duration, load=load)
    (rollouts.intake.policies.root / f"{name}.yaml").write_text(text)
    return rollouts.intake.policy(name)


def series_labels(prometheus: str, version: str) -> set[tuple[str, str]]:
    """The labels (besides app, version, pod and Prometheus' own) of the version's requests."""
    answer = httpx.get(
        f"{prometheus}/api/v1/series",
        params={"match[]": f'http_requests_total{{app="{APP}",version="{version}"}}'},
        timeout=5,
        trust_env=False,
    ).json()["data"]
    common = {"__name__", "app", "version", "namespace", "pod", "instance", "job"}
    return {(k, v) for series in answer for k, v in series.items() if k not in common}


def users(local_apps: LocalApps, app: str) -> LoadGenerator:
    """Real users: through the router without the preview header, so none reach the preview."""
    return LoadGenerator(local_apps.status(app).url, 10, region_share=0, seed=1).start()


def test_a_preview_with_synthetic_load_is_analysed_with_data_and_promoted(
    rollouts: Rollouts, local_apps: LocalApps, app: str
) -> None:
    policy = write_policy(rollouts, "with-load", "12s", LOAD)
    stable = local_apps.status(app).stable_version
    rollout_id = rollouts.start(policy)
    traffic = users(local_apps, app)
    try:
        state = rollouts.drive(rollout_id, lambda s: s.phase.terminal and s.awaiting is None)
    finally:
        traffic.stop()
    assert state.phase is Phase.PROMOTED, state
    assert {version for version, _ in traffic.counts()} <= {stable, state.spec.version}
    looks = rollouts.verdicts(rollout_id)
    assert looks[-1] == "look: pass: score 100 reaches pass_score 95", looks
    assert any(re.search(r"mean (19|20|21)(\.\d+)? from", look) for look in looks), looks
    stages = [e.message for e in rollouts.store.events(rollout_id) if e.kind == EventKind.STAGE]
    assert "analyze 12s with synthetic load at 20/s" in stages[1], stages
    # The load's requests are labelled as a user's: the same series and labels as the stable's.
    labels = series_labels(rollouts.prometheus, state.spec.version)
    assert labels == {("track", "canary"), ("code", "200")}, labels
    assert series_labels(rollouts.prometheus, stable) == {("track", "stable"), ("code", "200")}
    (load,) = rollouts.loads(rollout_id)
    assert load["rate"] == 20.0 and load["errors"] == 0, load
    assert 20 <= int(load["sent"]) <= 20 * 16, load  # never more than 20/s over its window
    assert load["stopped"] in ("the stage ended", "its time was up"), load
    # The report's timeline says it, as the audit trail does.
    page = timeline(rollouts.store.events(rollout_id, limit=1000), state.created_at)
    assert '<tr class="kind-synthetic_load">' in page and "synthetic load sent: " in page


def test_the_same_preview_without_load_pauses_for_lack_of_data(
    rollouts: Rollouts, local_apps: LocalApps, app: str
) -> None:
    policy = write_policy(rollouts, "without-load", "6s", "")
    stable = local_apps.status(app).stable_version
    rollout_id = rollouts.start(policy)
    traffic = users(local_apps, app)
    try:
        state = rollouts.drive(rollout_id, lambda s: s.phase is not Phase.PROGRESSING
                               and s.phase is not Phase.PENDING)  # fmt: skip
    finally:
        traffic.stop()
    assert state.phase is Phase.PAUSED, state
    assert state.last_verdict is not None and state.last_verdict.outcome.value == "inconclusive"
    assert rollouts.loads(rollout_id) == []
    assert {version for version, _ in traffic.counts()} == {stable}  # users never reach it
    rollouts.intake.command(rollout_id, "abort", "test")
    rollouts.drive(rollout_id, lambda s: s.phase.terminal and s.awaiting is None)


def test_an_abort_stops_the_load_at_once(rollouts: Rollouts, app: str) -> None:
    policy = write_policy(rollouts, "long-load", "5m", LOAD)
    rollout_id = rollouts.start(policy)
    rollouts.drive(rollout_id, lambda _: any(
        r.sender.tally().sent >= 20 for r in rollouts.runner.running.values()
    ))  # fmt: skip
    (running,) = rollouts.runner.running.values()
    rollouts.intake.command(rollout_id, "abort", "test")
    stopped_by = time.monotonic() + 5
    rollouts.drive(rollout_id, lambda s: s.phase.terminal and s.awaiting is None)
    assert running.sender.join(5) and time.monotonic() < stopped_by + 10
    sent = running.sender.tally().sent
    assert sent < 20 * 20, sent  # minutes were allowed; seconds ran
    (load,) = rollouts.loads(rollout_id)
    assert load["sent"] == sent and str(load["stopped"]).startswith("the rollout is "), load


@pytest.mark.parametrize(
    ("load", "stopped", "fewest", "most"),
    [
        ("{rate: 20/s, max_requests: 30}", "its request count was reached", 30, 30),
        # 20/s from the stage's start through begin_after (2s) and 2s of the window: about 80.
        ("{rate: 20/s, duration: 2s}", "its time was up", 60, 81),
    ],
    ids=["count", "time"],
)
def test_the_load_stops_by_itself_at_its_bound(
    rollouts: Rollouts, app: str, load: str, stopped: str, fewest: int, most: int
) -> None:
    policy = write_policy(rollouts, f"bounded-{stopped.split()[1]}", "30s", f"    load: {load}\n")
    rollout_id = rollouts.start(policy)
    rollouts.drive(rollout_id, lambda _: bool(rollouts.loads(rollout_id)))
    (event,) = rollouts.loads(rollout_id)
    assert event["stopped"] == stopped and fewest <= int(event["sent"]) <= most, event
    assert rollouts.runner.running == {}  # nothing sends any more
    rollouts.intake.command(rollout_id, "abort", "test")
    rollouts.drive(rollout_id, lambda s: s.phase.terminal and s.awaiting is None)
