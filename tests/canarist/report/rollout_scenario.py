"""Realistic rollouts for the report tests: real traffic data, real analysis, real engine.

``Rollout.drive`` moves one rollout the way the Celery task does (load, observe, then
``stepping.step_and_save``: ``engine.step``, save with its events and outbox) under a fake clock
set hours in the past. Before every wake-up it writes the traffic both versions served since the
last one into the test Prometheus, split by the canary's current weight, as a scrape would have
stored it (tests/workloads.py's counters and buckets, the histogram's ``_sum`` and ``_count``,
and resident memory, which a leaking canary grows by ``memory_growth_per_hour``; every 15 s). A
look is analysed by ``workers.observations.run_analysis`` over the real Prometheus, so the
verdicts and events in the store are exactly what production would keep.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analyzer.sources.prometheus import PrometheusSource
from tests.promwrite import write_samples
from tests.workloads import BUCKETS, Behaviour
from workers.actions import AnalysisResult, Observation, PlatformReady, Tick
from workers.intake import Intake, RolloutJob
from workers.metrics import rollout_log
from workers.observations import run_analysis
from workers.state import Phase, RolloutState
from workers.stepping import step_and_save
from workers.store import StateStore, Stored

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_POLICIES = ROOT / "policies"
SCRAPE_SECONDS = 15.0
TOTAL_REQUESTS_PER_SECOND = 60.0

# Five-minute steps keep a promoted rollout to a few dozen looks.
QUICK_POLICY = """
name: quick-canary
description: The default policy's metrics over two short steps.
analysis:
  interval: 1m
  alpha: 0.01
  begin_after: 1m
  min_samples: 3
  inconclusive_limit: 1
metrics:
  - name: error-ratio
    kind: counts
    errors: sum(increase(http_requests_total{ {{ selector }}, code=~"5.." }[{{ interval }}]))
    total: sum(increase(http_requests_total{ {{ selector }} }[{{ interval }}]))
    tolerance: 0.25
    critical: true
  - name: latency
    kind: histogram
    buckets: >-
      sum by (le) (
      increase(http_request_duration_seconds_bucket{ {{ selector }} }[{{ interval }}]))
    tolerance: 0.05
  - name: memory
    kind: series
    query: avg(process_resident_memory_bytes{ {{ selector }} })
    tolerance: 0.2
strategy:
  type: canary
  steps:
    - set_weight: 20
    - analyze: {duration: 4m}
    - set_weight: 50
    - analyze: {duration: 4m}
    - set_weight: 100
alerts: [oncall]
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Version:
    """The cumulative counters of one version's pods, continued scrape after scrape."""

    app: str
    name: str
    behaviour: Behaviour
    rng: np.random.Generator
    last_scrape: float
    totals: dict[str, float] = field(default_factory=dict)
    memory_growth_per_hour: float = 0.0  # relative, compounded from ``first_scrape``
    first_scrape: float = field(init=False)

    def __post_init__(self) -> None:
        self.first_scrape = self.last_scrape

    def serve(self, until: float, share: float) -> list[tuple[dict[str, str], list]]:
        """The samples scraped after ``last_scrape`` up to ``until``; ``share`` of the traffic."""
        times = np.arange(self.last_scrape + SCRAPE_SECONDS, until + 1e-9, SCRAPE_SECONDS)
        if times.size == 0:
            return []
        self.last_scrape = float(times[-1])
        base = {"app": self.app, "version": self.name}
        written: dict[str, tuple[dict[str, str], list[tuple[float, float]]]] = {}

        def add(key: str, labels: dict[str, str], at: float, value: float) -> None:
            written.setdefault(key, (labels, []))[1].append((at, value))

        behaviour = self.behaviour
        for at in times:
            requests = int(self.rng.poisson(TOTAL_REQUESTS_PER_SECOND * share * SCRAPE_SECONDS))
            errors = int(self.rng.binomial(requests, behaviour.error_ratio))
            latencies = self.rng.lognormal(np.log(behaviour.median_latency), 0.5, requests)
            for code, count in (("200", requests - errors), ("500", errors)):
                key = f"code={code}"
                self.totals[key] = self.totals.get(key, 0.0) + count
                labels = {"__name__": "http_requests_total", **base, "code": code}
                add(key, labels, float(at), self.totals[key])
            for bound in BUCKETS:
                le = "+Inf" if bound == float("inf") else repr(bound)
                key = f"le={le}"
                self.totals[key] = self.totals.get(key, 0.0) + np.count_nonzero(latencies <= bound)
                labels = {"__name__": "http_request_duration_seconds_bucket", **base, "le": le}
                add(key, labels, float(at), self.totals[key])
            for part, value in (("sum", float(latencies.sum())), ("count", float(requests))):
                self.totals[part] = self.totals.get(part, 0.0) + value
                labels = {"__name__": f"http_request_duration_seconds_{part}", **base}
                add(part, labels, float(at), self.totals[part])
            hours = (at - self.first_scrape) / 3600
            growth = (1 + self.memory_growth_per_hour) ** hours
            memory = behaviour.memory_bytes * growth * self.rng.normal(1, 0.01)
            add("memory", {"__name__": "process_resident_memory_bytes", **base}, float(at), memory)
        return list(written.values())


def job(app: str, policy: str, namespace: str = "shop") -> RolloutJob:
    return RolloutJob.model_validate(
        {
            "app": app,
            "namespace": namespace,
            "version": "v2",
            "policy": policy,
            "baseline": f'app="{app}",version="v1"',
            "canary": f'app="{app}",version="v2"',
        }
    )


def past_start(hours_ago: float) -> float:
    return float(int(time.time() // 60 * 60) - hours_ago * 3600)


def settled(state: RolloutState) -> bool:
    return state.awaiting is None and (state.phase.terminal or state.phase is Phase.PAUSED)


class Rollout:
    """One rollout of a fresh app, its traffic, and the task's loop over the real engine."""

    def __init__(
        self,
        intake: Intake,
        prometheus_url: str,
        clock: Clock,
        *,
        policy: str,
        canary: Behaviour,
        start: float,
        namespace: str = "shop",
        seed: int = 7,
        app: str | None = None,
        memory_growth_per_hour: float = 0.0,
    ) -> None:
        self.intake, self.prometheus_url, self.clock = intake, prometheus_url, clock
        self.app = app or f"shop-{uuid.uuid4().hex[:6]}"  # a fresh app: its own series
        clock.now = start
        self.stable = Version(self.app, "v1", Behaviour(), np.random.default_rng(seed), start - 300)
        self.new = Version(
            self.app,
            "v2",
            canary,
            np.random.default_rng(seed + 1),
            start,
            memory_growth_per_hour=memory_growth_per_hour,
        )
        write_samples(prometheus_url, self.stable.serve(start, 1.0))  # the stable history
        submitted = intake.submit(job(self.app, policy, namespace), "ci-pipeline")
        self.rollout_id = submitted.rollout_id

    @property
    def state(self) -> RolloutState:
        return self.intake.store.load(self.rollout_id).state

    def drive(
        self, until: Callable[[RolloutState], bool] = settled, max_wakes: int = 400
    ) -> RolloutState:
        """Wake the rollout when it asks to be woken, until ``until`` holds."""
        source = PrometheusSource(self.prometheus_url, timeout=10.0)
        try:
            for _ in range(max_wakes):
                stored = self.intake.store.load(self.rollout_id)
                state = stored.state
                if until(state):
                    return state
                self.wake(state, stored.revision, source)
        finally:
            source.close()
        raise AssertionError(f"{self.rollout_id} not done after {max_wakes} wake-ups")

    def wake(self, state: RolloutState, revision: int, source: PrometheusSource) -> None:
        clock = self.clock
        if state.next_due_at is not None:
            clock.now = max(clock.now, state.next_due_at)
        share = state.canary_weight / 100
        traffic = self.stable.serve(clock.now, 1 - share) + self.new.serve(clock.now, share)
        write_samples(self.prometheus_url, traffic)
        policy = self.intake.policy(state.policy)
        request = state.analysis_due(clock.now)
        observation: Observation = Tick()
        if state.awaiting is not None:
            observation = PlatformReady(state.awaiting)
        elif request is not None:
            verdict = run_analysis(source, state, policy, request, rollout_log(self.rollout_id))
            observation = AnalysisResult(request, verdict)
        step_and_save(self.intake.store, Stored(state, revision), policy, observation, clock.now)


HOSTILE_REASON = '<img src=x onerror="alert(1)"> & </td></table><script>alert(2)</script>'


@dataclass(frozen=True)
class Played:
    """The session's rollouts (conftest.py) and what a test needs to read or add to them."""

    store: StateStore
    intake: Intake
    clock: Clock
    policy_dir: Path
    redis_url: str
    prometheus_url: str
    aborted: RolloutState
    promoted: RolloutState
    by_hand: RolloutState
