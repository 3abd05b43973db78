"""A hung Redis (alive, accepting connections, answering nothing: SIGSTOP) is a 503 with
Retry-After within seconds, through the app as production builds it from settings; and a
submission retried with its idempotency key after that 503 makes one rollout, not two.

The test starts its own redis-server, so stopping it hangs no other test, and always resumes
and stops it by its PID.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from canarist.api import app_from_settings
from canarist.demo.stack import ServiceProcess, start_redis
from canarist.settings import RedisSettings
from tests.canarist.test_api import JOB, api_settings, bearer

WITHIN_SECONDS = 3.0  # the API's store timeout is 2 s by default


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = start_redis(tmp_path / "redis")
    try:
        yield service
    finally:
        os.kill(service.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        service.stop()


def test_a_hung_redis_is_a_503_within_seconds_and_a_keyed_retry_makes_one_rollout(
    own_redis: ServiceProcess,
) -> None:
    settings = api_settings().model_copy(update={"redis": RedisSettings(url=own_redis.url)})
    keyed = {**bearer("alice"), "Idempotency-Key": "ci-build-12"}
    cart = {**JOB, "app": "cart"}
    with TestClient(app_from_settings(settings)) as client:
        rollout_id = client.post("/v1/rollouts", json=JOB, headers=bearer("alice")).json()["id"]
        os.kill(own_redis.pid, signal.SIGSTOP)
        try:
            for method, path, body, headers in [
                ("GET", f"/v1/rollouts/{rollout_id}", None, bearer("alice")),
                ("POST", "/v1/rollouts", cart, keyed),
                ("GET", "/healthz", None, {}),
            ]:
                started = time.monotonic()
                response = client.request(method, path, json=body, headers=headers)
                took = time.monotonic() - started
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"] == "store_unavailable"
                assert int(response.headers["Retry-After"]) >= 1
                assert took < WITHIN_SECONDS, f"{method} {path} took {took:.1f} s"
        finally:
            os.kill(own_redis.pid, signal.SIGCONT)
        retried = client.post("/v1/rollouts", json=cart, headers=keyed)
        again = client.post("/v1/rollouts", json=cart, headers=keyed)
        assert (retried.status_code, again.status_code) == (202, 202), retried.text
        assert again.json()["id"] == retried.json()["id"]
        listed = client.get("/v1/rollouts", headers=bearer("alice")).json()["rollouts"]
        assert sorted(rollout["app"] for rollout in listed) == ["cart", "checkout"]
        assert client.get("/healthz").status_code == 200
