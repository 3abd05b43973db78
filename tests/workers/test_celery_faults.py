"""Faults around the workers, with real Celery processes: a lease left by a worker that died,
and beat itself dying. The rollouts are those of test_celery_worker.py (real Prometheus data,
the demo-scale policy); the worker's lease lasts 10 s here, reconcile runs every second."""

from __future__ import annotations

import time

from canarist.demo.stack import ServiceProcess
from tests.waiting import wait_until
from tests.workers.conftest import CeleryStack, trail
from tests.workers.test_celery_worker import (
    DECISION_TIMEOUT,
    ERRORS_5X,
    HEALTHY,
    analysing,
    assert_no_step_twice,
    decided,
    submit,
    unique,
    workload,
)
from workers.state import Phase

WORKER_LEASE = 10.0


def test_a_lease_left_by_a_dead_worker_holds_its_rollout_only_until_it_runs_out(
    celery_stack: CeleryStack, prometheus_server: ServiceProcess
) -> None:
    """No beat runs: the task that finds the lease held must come back by itself."""
    (beat,) = [p for p in celery_stack.processes if p.name == "beat"]
    beat.stop()
    try:
        rollout_id = submit(celery_stack, workload(prometheus_server, unique("leased"), HEALTHY))
        celery_stack.wait_for(rollout_id, analysing, 15, "the analysis step")
        wait_until(
            "the worker to let the lease go (taken then by a worker that dies holding it)",
            lambda: celery_stack.store.leases.acquire(rollout_id, "died-holding-it", WORKER_LEASE),
            5,
            every=0.01,
        )
        held_from = time.monotonic()
        state = celery_stack.wait_for(rollout_id, decided, DECISION_TIMEOUT, "a decision")
        if state.phase is not Phase.PROMOTED:
            celery_stack.fail(rollout_id, f"expected promoted, got {state.phase}")
        assert time.monotonic() - held_from < WORKER_LEASE + 25
        assert_no_step_twice(celery_stack, rollout_id)
    finally:
        celery_stack.start_beat("beat-again")


def test_with_two_beats_either_may_die_and_lost_steps_are_still_recovered(
    celery_stack: CeleryStack, prometheus_server: ServiceProcess
) -> None:
    second = celery_stack.start_beat("second-beat")
    first = [p for p in celery_stack.processes if p.name.startswith("beat") and p is not second]
    for beat in first:
        beat.kill()
    rollout_id = submit(celery_stack, workload(prometheus_server, unique("beatless"), ERRORS_5X))
    celery_stack.wait_for(rollout_id, analysing, 15, "the analysis step")
    worker = celery_stack.worker
    assert worker is not None
    worker.kill()  # its countdown messages die with it: only a reconcile brings them back
    celery_stack.start_worker("w-after-beat")

    state = celery_stack.wait_for(rollout_id, decided, DECISION_TIMEOUT, "a decision")

    if state.phase is not Phase.ABORTED:
        celery_stack.fail(rollout_id, f"expected aborted, got {state.phase}")
    assert_no_step_twice(celery_stack, rollout_id)
    assert any(event.kind == "phase" for event in trail(celery_stack.store, rollout_id))
    log = second.log_path.read_text()
    assert "Sending due task" in log and "canarist.reconcile" in log
