"""A rollout pins its whole policy at submit: a real Celery worker over the real Redis and
Prometheus keeps judging a rollout by the policy it was submitted with while the file is edited
under it, and the API says which one; a rollout submitted after the edit runs the new one."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from canarist.api import create_app
from canarist.demo.stack import ServiceProcess
from tests.canarist.test_api import api_settings, bearer
from tests.waiting import wait_until
from tests.workers.conftest import DEMO_POLICY, CeleryStack, trail
from tests.workers.test_celery_worker import (
    DECISION_TIMEOUT,
    ERRORS_5X,
    analysing,
    decided,
    submit,
    unique,
    workload,
)
from workers.state import Phase

# Five times the baseline's errors: within a tolerance of 1000%, far past one of 25% (the demo
# policy's, which aborts this canary in test_celery_worker.py).
LENIENT = DEMO_POLICY.replace("name: demo\n", "name: pinned\n").replace(
    "tolerance: 0.25", "tolerance: 10.0"
)
STRICT = LENIENT.replace("tolerance: 10.0", "tolerance: 0.25")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_an_edited_policy_changes_the_next_rollout_not_the_one_in_flight(
    celery_stack: CeleryStack, prometheus_server: ServiceProcess
) -> None:
    policy_file = celery_stack.policy_dir / "pinned.yaml"
    policy_file.write_text(LENIENT)
    job = {**workload(prometheus_server, unique("pinned"), ERRORS_5X), "policy": "pinned"}
    first = submit(celery_stack, job)
    wait_until("the analysis step", lambda: analysing(celery_stack.state(first)), 20)

    policy_file.write_text(STRICT)  # mid-rollout: the file now says this canary must abort
    api = TestClient(create_app(api_settings(), celery_stack.intake))
    served = api.get("/v1/policies/pinned", headers=bearer("viewer")).json()
    assert (served["digest"], served["text"]) == (sha256(STRICT), STRICT)

    wait_until("the decision", lambda: decided(celery_stack.state(first)), DECISION_TIMEOUT)
    state = celery_stack.state(first)
    assert state.phase is Phase.PROMOTED, state.abort_reason
    assert state.policy_digest == sha256(LENIENT)
    looks = [event for event in trail(celery_stack.store, first) if event.kind == "analysis"]
    assert looks and all(event.data.get("outcome") != "fail" for event in looks)
    shown = api.get(f"/v1/rollouts/{first}", headers=bearer("viewer")).json()
    assert (shown["policy"], shown["policy_digest"]) == ("pinned", sha256(LENIENT))

    second = submit(celery_stack, {**job, "version": "v3"})
    assert celery_stack.state(second).policy_digest == sha256(STRICT)
    wait_until("the decision", lambda: decided(celery_stack.state(second)), DECISION_TIMEOUT)
    assert celery_stack.state(second).phase is Phase.ABORTED
