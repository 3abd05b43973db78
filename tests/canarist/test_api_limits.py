"""What a hostile caller can cost the API: a body over the limit is a 413 before it is parsed
(announced or streamed), no error body is more than a few KB whatever was sent, and ``OPTIONS``
names every method of a path. Served for real by uvicorn where the HTTP framing matters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from canarist.api import create_app
from canarist.api.handlers import MAX_ERROR_BYTES, MAX_PROBLEMS
from canarist.demo.stack import HOST, free_port
from canarist.settings import ApiSettings
from tests.canarist.test_api import JOB, NOW, POLICIES, api_settings, bearer
from tests.waiting import wait_until
from workers.intake import Intake
from workers.store import MemoryStateStore

LIMIT = 64 * 1024


def make_app(store: MemoryStateStore, **api: Any) -> FastAPI:
    settings = api_settings().model_copy(update={"api": ApiSettings(**api)})
    intake = Intake(
        store, POLICIES, lambda: NOW, lambda *args, **kwargs: None, alert_routes={"oncall"}
    )
    return create_app(settings, intake)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` behind a real uvicorn on a loopback port, for real HTTP framing."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until("uvicorn to start", lambda: server.started or not thread.is_alive())
    assert server.started, "uvicorn exited while starting"
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def store() -> MemoryStateStore:
    return MemoryStateStore()


@pytest.fixture
def client(store: MemoryStateStore) -> Iterator[TestClient]:
    with TestClient(make_app(store)) as client:
        yield client


def too_large(response: httpx.Response, limit: int = LIMIT) -> None:
    assert response.status_code == 413, response.text[:300]
    answer = response.json()
    assert set(answer) == {"error", "detail", "problems"}
    assert answer["error"] == "payload_too_large"
    assert str(limit) in answer["detail"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed(
    client: TestClient, store: MemoryStateStore
) -> None:
    huge = {**JOB, "baseline": 'app="' + "x" * (10 * 1024 * 1024) + '"'}
    too_large(client.post("/v1/rollouts", json=huge, headers=bearer("alice")))
    garbage = b"{" * (LIMIT + 1)  # not JSON: a parser would have said 400
    headers = {**bearer("alice"), "Content-Type": "application/json"}
    too_large(client.post("/v1/rollouts", content=garbage, headers=headers))
    rollout_id = client.post("/v1/rollouts", json=JOB, headers=bearer("alice")).json()["id"]
    reason = {"reason": "y" * LIMIT}
    too_large(client.post(f"/v1/rollouts/{rollout_id}/abort", json=reason, headers=bearer("alice")))
    assert [stored.state.phase.value for stored in store.list_rollouts()] == ["pending"]


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(store: MemoryStateStore) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1024):  # 16 MiB if it were all read
            sent.append(1)
            yield b" " * 16384

    with served(make_app(store)) as url:
        headers = {**bearer("alice"), "Content-Type": "application/json"}
        response = httpx.post(f"{url}/v1/rollouts", content=chunks(), headers=headers, timeout=10)
        too_large(response)
        assert response.headers["connection"] == "close"
        assert len(sent) < 1024, "the whole stream was read"
        ok = httpx.post(f"{url}/v1/rollouts", json=JOB, headers=bearer("alice"))
        assert ok.status_code == 202, ok.text
    assert len(store.list_rollouts()) == 1


def test_the_limit_is_a_setting(store: MemoryStateStore) -> None:
    padded = {**JOB, "args": {}, "idempotency_key": "k" * 100}
    with TestClient(make_app(store, max_body_bytes=1024)) as client:
        headers = bearer("alice")
        assert client.post("/v1/rollouts", json=padded, headers=headers).status_code == 202
        bigger = {**padded, "baseline": 'app="' + "b" * 1000 + '"'}
        too_large(client.post("/v1/rollouts", json=bigger, headers=headers), limit=1024)


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param({**JOB, "args": {f"a{n}": n for n in range(4000)}}, id="4000 bad args"),
        pytest.param({**JOB, "platform": "\x01" * 9000}, id="control characters echoed"),
        pytest.param({**JOB, "z" * 60000: 1}, id="a 60 KB field name"),
        pytest.param({**JOB, "version": "é" * 20000}, id="20000 multi-byte characters"),
        pytest.param([JOB] * 150, id="not an object"),
    ],
)
def test_no_error_body_is_more_than_a_few_kb(client: TestClient, hostile: Any) -> None:
    content = json.dumps(hostile, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(content) <= LIMIT, "the case must reach the parser"
    headers = {**bearer("alice"), "Content-Type": "application/json"}
    response = client.post("/v1/rollouts", content=content, headers=headers)
    assert response.status_code == 422, response.text[:300]
    assert len(response.content) <= MAX_ERROR_BYTES, len(response.content)
    answer = response.json()
    assert 1 <= len(answer["problems"]) <= MAX_PROBLEMS
    assert answer["detail"]


def test_a_cut_error_still_says_what_is_wrong_and_how_much_was_left_out(
    client: TestClient,
) -> None:
    body = {**JOB, **{f"extra{n}": n for n in range(2000)}}  # 2000 unknown fields
    answer = client.post("/v1/rollouts", json=body, headers=bearer("alice")).json()
    assert answer["problems"][0] == {
        "field": "extra0",
        "message": "unknown field (not allowed)",
    }
    assert answer["detail"].endswith("; and 1995 more")
    long = client.post("/v1/rollouts", json={**JOB, "m" * 9000: 1}, headers=bearer("alice"))
    field = long.json()["problems"][0]["field"]
    assert field.startswith("mmm") and field.endswith("…") and len(field) < 1000


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/rollouts", "GET, POST, OPTIONS"),
        ("/v1/rollouts/checkout-1", "GET, OPTIONS"),
        ("/v1/rollouts/checkout-1/abort", "POST, OPTIONS"),
        ("/v1/rollouts/checkout-1/report", "GET, OPTIONS"),
    ],
)
def test_options_names_every_method_of_the_path(
    client: TestClient, path: str, allowed: str
) -> None:
    response = client.options(path)
    assert (response.status_code, response.headers["allow"]) == (204, allowed)
    wrong = client.delete(path, headers=bearer("alice"))
    assert (wrong.status_code, wrong.headers["allow"]) == (405, allowed)
    assert wrong.json()["error"] == "method_not_allowed"


def test_answers_given_before_routing_are_counted_by_route_template(client: TestClient) -> None:
    for rollout_id in ("r-1", "r-2"):
        client.options(f"/v1/rollouts/{rollout_id}/abort")
        client.post(f"/v1/rollouts/{rollout_id}/abort", content=b" " * (LIMIT + 1))
    text = client.get("/metrics").text
    assert "r-1" not in text
    for status in ("204", "413"):
        assert f'route="/v1/rollouts/{{rollout_id}}/abort",status="{status}"' in text
