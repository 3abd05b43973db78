"""One worker process running several rollouts at once: Celery's threads pool, which Canarist
supports beside the deployed solo pool (README: Scale says why solo is deployed).

Eight rollouts submitted together, healthy and 20x-errors alike, on a worker with 4 task
threads: each is decided as its data says, none steps twice (the lease keeps two threads off
one rollout), and the worker's own metrics, served from the process every thread runs in, count
every look and decision the audit trails hold — no PROMETHEUS_MULTIPROC_DIR needed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.waiting import wait_until
from tests.workers.conftest import DEMO_POLICY, CeleryStack, running_stack, trail
from tests.workers.test_celery_worker import (
    HEALTHY,
    assert_no_step_twice,
    decided,
    submit,
    unique,
    workload,
)
from tests.workloads import Behaviour
from workers.state import Phase

# Far past the demo policy's bar within its two 5 s looks (5x errors at 1,000 requests a look
# can end below alpha 0.001's e-value bar and pass at the final look: a fact of the statistics,
# not of the pool).
ERRORS_20X = Behaviour(requests_per_second=200.0, error_ratio=0.2)


@pytest.fixture(scope="module")
def threaded(
    redis_server: ServiceProcess,
    prometheus_server: ServiceProcess,
    alertmanager_server: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CeleryStack, int]]:
    services = (redis_server, prometheus_server, alertmanager_server)
    port = free_port()
    environment = {"CANARIST_WORKER_METRICS_PORT": str(port)}
    prefix = f"itest:{uuid.uuid4().hex[:8]}:"
    workdir = tmp_path_factory.mktemp("threads")
    policies = {"demo": DEMO_POLICY}
    with running_stack(services, workdir, policies, prefix, environment, pool="threads") as stack:
        yield stack, port


def worker_metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=5.0).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_eight_rollouts_at_once_on_four_threads_are_each_decided_once_and_counted(
    threaded: tuple[CeleryStack, int], prometheus_server: ServiceProcess
) -> None:
    stack, port = threaded
    before = worker_metrics(port)
    plan = {unique("healthy"): HEALTHY for _ in range(5)} | {
        unique("errors"): ERRORS_20X for _ in range(3)
    }
    ids = {submit(stack, workload(prometheus_server, app, canary)): canary
           for app, canary in plan.items()}  # fmt: skip

    for rollout_id in ids:
        wait_until(f"{rollout_id} decided", lambda r=rollout_id: decided(stack.state(r)), 90)
    for rollout_id, canary in ids.items():
        expected = Phase.PROMOTED if canary is HEALTHY else Phase.ABORTED
        assert stack.state(rollout_id).phase is expected, stack.story(rollout_id)
        assert_no_step_twice(stack, rollout_id)

    looks = [e for r in ids for e in trail(stack.store, r) if e.kind == "analysis"]
    after = worker_metrics(port)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    by_outcome: dict[str, int] = {}
    for event in looks:
        outcome = str(event.data["outcome"])
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
    for outcome, count in by_outcome.items():
        assert grew("canarist_analysis_looks_total", outcome=outcome) == count, outcome
    assert grew("canarist_decisions_total", decision="promoted") == 5
    assert grew("canarist_decisions_total", decision="aborted") == 3
    assert ("canarist_rollouts_overdue", ()) in after  # the gauge is served
