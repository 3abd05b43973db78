"""HTTP hooks through a real Celery worker and beat (tests/workers/conftest.py's ``worker_app``,
built from the environment like a deployed worker): ``CANARIST_HOOK_ROUTES`` in the worker's
environment leads its calls to a receiver started here on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from canarist.demo.stack import ServiceProcess
from tests.workers.conftest import DEMO_POLICY, CeleryStack, worker_env
from tests.workers.notify.capture import CaptureServer, Reply
from workers.celery_app import enqueue_advance, make_celery, millisecond_clock, wake_outbox
from workers.intake import Intake, RolloutJob
from workers.settings import RedisSettings, WorkerSettings
from workers.state import Phase
from workers.store import RedisStateStore

SECRET = "celery-hook-secret"
HOOKS = """hooks:
  - {name: smoke, point: pre_rollout, route: smoke-tests, timeout: 3s, retries: 1}
  - {name: cleanup, point: post_rollback, route: smoke-tests, timeout: 3s, retries: 0}
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@pytest.fixture(scope="module")
def hooked_stack(
    redis_server: ServiceProcess,
    prometheus_server: ServiceProcess,
    alertmanager_server: ServiceProcess,
    receiver: CaptureServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryStack]:
    workdir = tmp_path_factory.mktemp("celery-hooks")
    policy_dir = workdir / "policies"
    policy_dir.mkdir()
    (policy_dir / "hooked.yaml").write_text(
        DEMO_POLICY.replace("name: demo", "name: hooked") + HOOKS
    )
    prefix = f"hooks:{uuid.uuid4().hex[:8]}:"
    env = worker_env(redis_server, prometheus_server, alertmanager_server, policy_dir, prefix)
    routes = {"smoke-tests": {"url": f"{receiver.url}/smoke", "secret": SECRET}}
    env["CANARIST_HOOK_ROUTES"] = json.dumps(routes)
    broker = env["CANARIST_REDIS__URL"]
    store = RedisStateStore.from_url(broker, prefix)
    client = make_celery(WorkerSettings(redis=RedisSettings(url=broker)), store_prefix=prefix)
    intake = Intake(
        store, policy_dir, millisecond_clock, enqueue_advance(client),
        alert_routes={"oncall"}, hook_routes={"smoke-tests"}, on_outbox=wake_outbox(client),
    )  # fmt: skip
    stack = CeleryStack(env, workdir, store, intake, policy_dir, client)
    try:
        stack.start_beat()
        stack.start_worker("hooks")
        yield stack
    finally:
        for process in stack.processes:
            process.stop()
        client.close()
        store.close()
        if redis_server.running:
            flush = redis.Redis.from_url(broker)
            flush.flushdb()
            flush.close()


def test_a_real_worker_aborts_on_a_failing_pre_rollout_hook(
    hooked_stack: CeleryStack, receiver: CaptureServer
) -> None:
    receiver.reply(Reply(500, b"smoke: checkout broken"), Reply(500, b"smoke: checkout broken"))
    job = RolloutJob.model_validate(
        {"app": "hooked", "namespace": "shop", "version": "v2", "policy": "hooked",
         "baseline": 'app="hooked",version="v1"', "canary": 'app="hooked",version="v2"'}
    )  # fmt: skip
    rollout_id = hooked_stack.intake.submit(job, "ci").rollout_id
    state = hooked_stack.wait_for(
        rollout_id,
        lambda s: s.phase is Phase.ABORTED and s.hook_due is None,
        45,
        "the rollout aborted and its post_rollback hook answered",
    )
    assert "smoke fail: HTTP 500: smoke: checkout broken" in (state.abort_reason or "")
    assert state.canary_weight == 0
    calls = receiver.wait_for(3)
    hooks = [call.headers["x-canarist-hook"] for call in calls]
    assert hooks == ["smoke", "smoke", "cleanup"]  # one retry, then the rollback's hook once
    for call in calls:
        timestamp = call.headers["x-canarist-timestamp"]
        signed = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + call.body, hashlib.sha256)
        assert call.headers["x-canarist-signature"] == f"sha256={signed.hexdigest()}"
        assert call.json()["rollout_id"] == rollout_id
