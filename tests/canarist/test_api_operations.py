"""What operators see of the API: the OpenAPI schema, /metrics, /healthz when the store is down
(a fake that fails, and a real Redis that is gone), the JSON log line with the rollout's id, and
that importing ``canarist.api`` needs no broker."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from canarist.api import create_app
from canarist.api.telemetry import JsonFormatter, RolloutIdFilter
from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.canarist.test_api import JOB, NOW, POLICIES, api_settings, bearer
from workers.errors import StoreUnavailable
from workers.intake import Intake
from workers.store import MemoryStateStore, RedisStateStore

ROOT = Path(__file__).parents[2]

ROUTES = {
    ("POST", "/v1/rollouts"),
    ("GET", "/v1/rollouts"),
    ("GET", "/v1/rollouts/{rollout_id}"),
    ("GET", "/v1/rollouts/{rollout_id}/report"),
    *(
        ("POST", f"/v1/rollouts/{{rollout_id}}/{kind}")
        for kind in ("abort", "promote", "pause", "resume", "retry", "approve")
    ),
    ("GET", "/v1/policies"),
    ("GET", "/v1/policies/{name}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
}


class DownableStore(MemoryStateStore):
    """The in-memory store, except that while ``down`` every call fails as Redis would."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if callable(found) and not name.startswith("_") and super().__getattribute__("down"):

            def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable(f"{name}: Redis is unreachable (connection refused)")

            return unavailable
        return found


@pytest.fixture
def store() -> DownableStore:
    return DownableStore()


@pytest.fixture
def client(store: DownableStore) -> Iterator[TestClient]:
    intake = Intake(
        store, POLICIES, lambda: NOW, lambda *args, **kwargs: None, alert_routes={"oncall"}
    )
    with TestClient(create_app(api_settings(), intake)) as client:
        yield client


def test_openapi_lists_every_route_with_bearer_auth(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    listed = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    assert listed == ROUTES
    schemes = schema["components"]["securitySchemes"]
    assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]
    submit = schema["paths"]["/v1/rollouts"]["post"]
    assert {"202", "401", "403", "404", "422"} <= set(submit["responses"])
    assert "Idempotency-Key" in [parameter["name"] for parameter in submit["parameters"]]
    body = schema["components"]["schemas"][
        submit["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    ]
    assert body.get("additionalProperties") is False


def _requests(client: TestClient, route: str, status: str) -> float:
    families = text_string_to_metric_families(client.get("/metrics").text)
    for family in families:
        if family.name == "canarist_api_requests":
            for sample in family.samples:
                labels = sample.labels
                if sample.name.endswith("_total") and (labels["route"], labels["status"]) == (
                    route,
                    status,
                ):
                    return float(sample.value)
    return 0.0


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    route = "/v1/rollouts/{rollout_id}"
    before = _requests(client, route, "404"), _requests(client, "/v1/rollouts", "202")
    for rollout_id in ("a", "b", "c"):
        assert client.get(f"/v1/rollouts/{rollout_id}", headers=bearer("ops")).status_code == 404
    client.post("/v1/rollouts", json=JOB, headers=bearer("alice"))
    after = _requests(client, route, "404"), _requests(client, "/v1/rollouts", "202")
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)
    assert client.get("/wp-admin/setup.php").status_code == 404
    text = client.get("/metrics").text
    assert 'route="/v1/rollouts/a"' not in text
    assert "/wp-admin" not in text
    assert 'route="<unmatched>",status="404"' in text
    assert "canarist_api_request_duration_seconds_bucket" in text


def test_healthz_is_503_when_the_store_is_down_and_200_again_after(
    client: TestClient, store: DownableStore
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    store.down = True
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable"
    assert "Retry-After" in response.headers
    listing = client.get("/v1/rollouts", headers=bearer("ops"))
    assert (listing.status_code, listing.json()["error"]) == (503, "store_unavailable")
    store.down = False
    assert client.get("/healthz").status_code == 200


def test_each_request_logs_one_json_line_with_its_rollout_id(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RolloutIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("canarist.api.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        rollout_id = client.post("/v1/rollouts", json=JOB, headers=bearer("alice")).json()["id"]
        client.post(f"/v1/rollouts/{rollout_id}/abort", headers=bearer("alice"))
        client.get("/healthz")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["route"], line["status"]) for line in lines] == [
        ("/v1/rollouts", 202),
        ("/v1/rollouts/{rollout_id}/abort", 202),
        ("/healthz", 200),
    ]
    assert [line["rollout_id"] for line in lines] == [rollout_id, rollout_id, None]
    assert [line["actor"] for line in lines] == ["alice", "alice", None]


def test_importing_the_api_needs_no_broker_and_reads_no_settings() -> None:
    code = (
        "import sys, canarist.api\n"
        "assert 'celery' not in sys.modules and 'workers.tasks' not in sys.modules\n"
        "assert callable(canarist.api.create_app)\n"
    )
    environment = {"CANARIST_SETTINGS_FILE": "/nonexistent/settings.yaml", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_over_real_redis_a_key_replays_and_healthz_follows_the_server(
    redis_server: ServiceProcess,
) -> None:
    store = RedisStateStore.from_url(redis_server.url, prefix=f"api-{uuid.uuid4().hex[:8]}:")
    intake = Intake(
        store, POLICIES, lambda: NOW, lambda *args, **kwargs: None, alert_routes={"oncall"}
    )
    with TestClient(create_app(api_settings(), intake)) as client:
        assert client.get("/healthz").status_code == 200
        headers = {**bearer("alice"), "Idempotency-Key": "redis-1"}
        first = client.post("/v1/rollouts", json=JOB, headers=headers).json()
        again = client.post("/v1/rollouts", json=JOB, headers=headers).json()
        assert (first["id"], first["created"], again["created"]) == (first["id"], True, False)
        assert again["id"] == first["id"]
        detail = client.get(f"/v1/rollouts/{first['id']}", headers=bearer("alice")).json()
        assert [event["actor"] for event in detail["events"]] == ["alice"]
    store.close()


def test_healthz_is_503_when_redis_refuses_connections() -> None:
    store = RedisStateStore.from_url(f"redis://{HOST}:{free_port()}/0", timeout_seconds=1.0)
    intake = Intake(
        store, POLICIES, lambda: NOW, lambda *args, **kwargs: None, alert_routes={"oncall"}
    )
    with TestClient(create_app(api_settings(), intake)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable"
    store.close()
