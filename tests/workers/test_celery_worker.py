"""Rollouts end to end: a real Celery worker and beat, over the real Redis, Prometheus and
Alertmanager of the test stack, with a demo-scale policy (5 s looks, one 10 s analysis step).

The worker runs tests/workers/conftest.py's ``worker_app`` (``make_celery`` with the test's
services) in the ``solo`` pool, as deployed. Each test writes realistic series of its own app
into Prometheus (tests/workloads.py, 1 s scrapes, from 30 s ago to 2.5 min ahead), submits a
rollout and waits for the decision; some break a part of the system in the middle: the worker
(SIGKILL), Redis (restart from its AOF) or Prometheus (stopped, then started again).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import redis

from canarist.demo.stack import ServiceProcess, list_alerts, pid_exists
from tests.promwrite import write_samples
from tests.waiting import wait_until
from tests.workers.conftest import CeleryStack, trail
from tests.workloads import Behaviour, http_service
from workers.celery_app import ROLLOUTS_QUEUE
from workers.engine.run import FOLLOW_KINDS
from workers.intake import RolloutJob
from workers.state import Phase, RolloutState
from workers.tasks import ADVANCE, DELIVER, RECONCILE, ROUTINE, SUBMIT

HEALTHY = Behaviour(requests_per_second=200.0, error_ratio=0.01)
ERRORS_5X = Behaviour(requests_per_second=200.0, error_ratio=0.05)
DECISION_TIMEOUT = 45.0


def workload(prometheus: ServiceProcess, name: str, canary: Behaviour) -> dict[str, Any]:
    """Write both versions of app ``name`` into Prometheus; return the job for it."""
    start = time.time() - 30
    series = http_service(name, "v1", start, 3, HEALTHY, seed=11, scrape=1.0)
    series += http_service(name, "v2", start, 3, canary, seed=12, scrape=1.0)
    write_samples(prometheus.url, series)
    return {
        "app": name,
        "namespace": "shop",
        "version": "v2",
        "policy": "demo",
        "baseline": f'app="{name}",version="v1"',
        "canary": f'app="{name}",version="v2"',
    }


def unique(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:6]}"


def submit(stack: CeleryStack, payload: dict[str, Any]) -> str:
    return stack.intake.submit(RolloutJob.model_validate(payload), "ci").rollout_id


def decided(state: RolloutState) -> bool:
    return state.phase.terminal and state.awaiting is None


def analysing(state: RolloutState) -> bool:
    return state.phase is Phase.PROGRESSING and state.stage_index == 1


def phases(stack: CeleryStack, rollout_id: str) -> list[str]:
    return [str(e.data["to"]) for e in trail(stack.store, rollout_id) if e.kind == "phase"]


def assert_no_step_twice(stack: CeleryStack, rollout_id: str) -> None:
    """Every stage entered and every phase change happened once, at one revision each."""
    steps = [
        (event.kind, event.data.get("stage"), event.data.get("to"), event.data.get("attempt"))
        for event in trail(stack.store, rollout_id)
        if event.kind in ("stage", "phase")
    ]
    repeated = [step for step, count in Counter(steps).items() if count > 1]
    assert not repeated, f"applied twice: {repeated}"


def alerts(alertmanager: ServiceProcess, rollout_id: str) -> list[dict[str, Any]]:
    return list_alerts(alertmanager.url, [f'rollout_id="{rollout_id}"'])


def wait_for_alerts(alertmanager: ServiceProcess, rollout_id: str) -> None:
    wait_until(f"an alert for {rollout_id}", lambda: alerts(alertmanager, rollout_id), 15)


def past_any_duplicate(stack: CeleryStack) -> None:
    """Until a duplicate alert would have been sent. It would come from a second step (an
    advance on the rollouts queue, which queues a second notify item) or a second delivery (the
    notify queue): once the worker has run a reconcile, then an outbox delivery, both sent
    after the decision, either would be in Alertmanager and the outbox. (An advance held for
    its countdown finds the rollout decided and does nothing.)"""
    stack.ran_after_now(RECONCILE)
    stack.ran_after_now(DELIVER)


def notify_items(stack: CeleryStack, rollout_id: str) -> list[dict[str, str]]:
    """The outbox's alert items of the rollout, as Redis holds them (not the start's and the
    steps' notices, which the route does not follow: those are settled without a post)."""
    client = redis.Redis.from_url(stack.env["CANARIST_REDIS__URL"], decode_responses=True)
    try:
        prefix = stack.env["CANARIST_TEST_STORE_PREFIX"]
        items = [client.hgetall(key) for key in client.scan_iter(f"{prefix}outbox:item:*")]
    finally:
        client.close()
    return [
        item
        for item in items
        if item["rollout_id"] == rollout_id
        and json.loads(item["payload"])["type"] == "notify"
        and json.loads(item["payload"])["kind"] not in FOLLOW_KINDS
    ]


def test_a_healthy_canary_is_promoted_on_the_observe_platform(
    celery_stack: CeleryStack,
    prometheus_server: ServiceProcess,
    alertmanager_server: ServiceProcess,
) -> None:
    rollout_id = submit(celery_stack, workload(prometheus_server, unique("healthy"), HEALTHY))

    state = celery_stack.wait_for(rollout_id, decided, DECISION_TIMEOUT, "a decision")

    if state.phase is not Phase.PROMOTED:
        celery_stack.fail(rollout_id, f"expected promoted, got {state.phase}")
    assert phases(celery_stack, rollout_id) == ["progressing", "promoting", "promoted"]
    looks = [e for e in trail(celery_stack.store, rollout_id) if e.kind == "analysis"]
    assert looks and looks[-1].data["outcome"] == "pass"
    assert state.last_verdict is not None and state.last_verdict.window_end is not None
    assert_no_step_twice(celery_stack, rollout_id)
    assert alerts(alertmanager_server, rollout_id) == []  # a promotion pages nobody


def test_b_a_canary_with_5x_errors_is_aborted_with_exactly_one_alert(
    celery_stack: CeleryStack,
    prometheus_server: ServiceProcess,
    alertmanager_server: ServiceProcess,
) -> None:
    payload = workload(prometheus_server, unique("errors"), ERRORS_5X)
    celery_stack.client.send_task(SUBMIT, args=[payload], kwargs={"actor": "ci"})  # Celery door
    rollout_id = wait_until(
        "the submit_rollout task to create the rollout",
        lambda: celery_stack.store.latest_for(payload["app"], "shop"),
    )

    state = celery_stack.wait_for(rollout_id, decided, DECISION_TIMEOUT, "a decision")

    if state.phase is not Phase.ABORTED:
        celery_stack.fail(rollout_id, f"expected aborted, got {state.phase}")
    assert "error-ratio" in (state.abort_reason or "")
    wait_for_alerts(alertmanager_server, rollout_id)
    past_any_duplicate(celery_stack)
    fired = alerts(alertmanager_server, rollout_id)
    assert len(fired) == 1, fired
    assert fired[0]["labels"]["alertname"] == "RolloutAborted"
    assert fired[0]["labels"]["app"] == payload["app"]
    assert "error-ratio" in fired[0]["annotations"]["failed_metrics"]
    (item,) = notify_items(celery_stack, rollout_id)
    assert item["delivered"] == "1"
    assert_no_step_twice(celery_stack, rollout_id)


def test_c_a_worker_killed_mid_rollout_is_replaced_and_nothing_happens_twice(
    celery_stack: CeleryStack,
    prometheus_server: ServiceProcess,
    alertmanager_server: ServiceProcess,
) -> None:
    rollout_id = submit(celery_stack, workload(prometheus_server, unique("killed"), ERRORS_5X))
    celery_stack.wait_for(rollout_id, analysing, 15, "the analysis step")
    killed = celery_stack.worker
    assert killed is not None
    killed.kill()  # it dies holding the rollout's next wake-up, unacked in Redis
    assert not pid_exists(killed.pid)
    assert not celery_stack.state(rollout_id).phase.terminal

    celery_stack.start_worker("w2")
    state = celery_stack.wait_for(
        rollout_id, decided, DECISION_TIMEOUT, "the new worker's decision"
    )

    if state.phase is not Phase.ABORTED:
        celery_stack.fail(rollout_id, f"expected aborted, got {state.phase}")
    assert_no_step_twice(celery_stack, rollout_id)
    wait_for_alerts(alertmanager_server, rollout_id)
    past_any_duplicate(celery_stack)
    assert len(alerts(alertmanager_server, rollout_id)) == 1
    assert len(notify_items(celery_stack, rollout_id)) == 1


def test_d_a_rollout_completes_across_a_redis_restart(
    celery_stack: CeleryStack, redis_server: ServiceProcess, prometheus_server: ServiceProcess
) -> None:
    rollout_id = submit(celery_stack, workload(prometheus_server, unique("restart"), HEALTHY))
    celery_stack.wait_for(rollout_id, analysing, 15, "the analysis step")

    redis_server.restart()  # SIGTERM flushes the AOF; the same port and data directory

    state = celery_stack.wait_for(rollout_id, decided, DECISION_TIMEOUT, "a decision")
    if state.phase is not Phase.PROMOTED:
        celery_stack.fail(rollout_id, f"expected promoted, got {state.phase}")
    assert phases(celery_stack, rollout_id) == ["progressing", "promoting", "promoted"]
    assert_no_step_twice(celery_stack, rollout_id)


def test_e_without_prometheus_a_rollout_extends_instead_of_promoting(
    celery_stack: CeleryStack, prometheus_server: ServiceProcess
) -> None:
    rollout_id = submit(celery_stack, workload(prometheus_server, unique("blind"), HEALTHY))
    celery_stack.wait_for(rollout_id, analysing, 15, "the analysis step")

    prometheus_server.stop()
    try:
        state = celery_stack.wait_for(
            rollout_id,
            lambda state: state.extensions >= 1 or state.phase is not Phase.PROGRESSING,
            25,
            "the step to be extended",
        )
        assert state.phase is Phase.PROGRESSING, state.phase
        assert state.last_verdict is not None
        assert state.last_verdict.outcome.value == "inconclusive"
        assert state.tally.consecutive_errors >= 1
        assert "promoting" not in phases(celery_stack, rollout_id)
    finally:
        prometheus_server.start()

    state = celery_stack.wait_for(rollout_id, decided, DECISION_TIMEOUT, "a decision")
    if state.phase is not Phase.PROMOTED:
        celery_stack.fail(rollout_id, f"expected promoted, got {state.phase}")
    extended = [e for e in trail(celery_stack.store, rollout_id) if e.kind == "extended"]
    assert extended, "the step was never extended"
    assert_no_step_twice(celery_stack, rollout_id)


BACKLOG = 3000  # routine steps queued ahead of the abort: seconds of a worker's work


def test_f_an_abort_is_carried_out_ahead_of_a_backlog_of_routine_steps(
    celery_stack: CeleryStack, prometheus_server: ServiceProcess
) -> None:
    """An overloaded worker's queue holds thousands of late looks; a person's abort (and the
    rollback's own steps) go ahead of them, not behind (README, Scale: the queue's priorities).
    The backlog here is advances of rollouts that do not exist: each a few ms of real work."""
    rollout_id = submit(celery_stack, workload(prometheus_server, unique("urgent"), HEALTHY))
    celery_stack.wait_for(rollout_id, analysing, 15, "the analysis step")
    with celery_stack.client.producer_or_acquire() as producer:
        routine = producer.channel._q_for_pri(ROLLOUTS_QUEUE, ROUTINE)  # kombu's list for it
        for index in range(BACKLOG):
            celery_stack.client.send_task(
                ADVANCE, args=(f"gone-{index}", 1), priority=ROUTINE, producer=producer
            )
    broker = redis.Redis.from_url(celery_stack.env["CANARIST_REDIS__URL"])
    try:
        queued_before = broker.llen(routine)
        assert queued_before > BACKLOG / 2, "the worker drained the backlog while it was sent"

        result = celery_stack.intake.command(rollout_id, "abort", "alice", reason="p99 doubled")
        assert result.applied
        state = celery_stack.wait_for(rollout_id, decided, 30, "the rollback")
        left = broker.llen(routine)

        assert state.phase is Phase.ABORTED and state.abort_reason is not None
        assert "p99 doubled" in state.abort_reason
        assert left > queued_before / 2, f"{queued_before - left} routine steps went first"
        wait_until("the backlog to drain", lambda: broker.llen(routine) == 0, 120, every=0.5)
    finally:
        broker.close()
    assert_no_step_twice(celery_stack, rollout_id)
