"""``canarist api`` and ``canarist worker`` as real processes over the test stack's Redis, with
one settings file: the API accepts a rollout, the worker walks it, a person aborts it.

Each test uses its own Redis database (keys and Celery queues alike) and stops what it started
by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from fastapi.testclient import TestClient

from canarist.api import app_from_settings
from canarist.demo.stack import HOST, ServiceProcess, free_port, http_probe
from canarist.settings import Settings
from tests.canarist.test_api import JOB, POLICIES, SECRETS, token_entry
from tests.waiting import wait_until

CANARIST = Path(sys.executable).with_name("canarist")
DATABASE = 7  # a Redis database of these tests' own: keys and Celery queues
WAIT_SECONDS = 30.0


@pytest.fixture
def settings_file(tmp_path: Path, redis_server: ServiceProcess) -> Iterator[Path]:
    url = f"redis://{HOST}:{redis_server.port}/{DATABASE}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    tokens = [token_entry(name) for name in SECRETS]
    path = tmp_path / "canarist.yaml"
    oncall = {"type": "alertmanager", "url": "http://127.0.0.1:9/unused"}  # the policies' route
    document = {
        "redis": {"url": url},
        "policy_dir": str(POLICIES),
        "api_tokens": tokens,
        "alert_routes": {"oncall": oncall},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    yield path
    client.flushdb()
    client.close()


def start(argv: list[str], settings_file: Path, log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "CANARIST_SETTINGS_FILE": str(settings_file)}
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(CANARIST), *argv],
            env=environment,
            cwd=settings_file.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_for(what: str, check: Callable[[], Any], log: Path) -> Any:
    return wait_until(
        what, check, WAIT_SECONDS, every=0.2, detail=lambda: f"log:\n{log.read_text()[-3000:]}"
    )


def test_the_worker_walks_a_submitted_rollout_and_applies_an_abort(
    settings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "worker.log"
    worker = start(
        ["worker", "--pool", "solo", "--without-gossip", "--without-mingle"], settings_file, log
    )
    try:
        monkeypatch.setenv("CANARIST_SETTINGS_FILE", str(settings_file))
        with TestClient(app_from_settings(Settings())) as client:
            headers = {"Authorization": f"Bearer {SECRETS['alice']}"}
            assert client.get("/healthz").json() == {"status": "ok"}
            rollout_id = client.post("/v1/rollouts", json=JOB, headers=headers).json()["id"]

            def state() -> dict[str, Any]:
                answer: dict[str, Any] = client.get(
                    f"/v1/rollouts/{rollout_id}", headers=headers
                ).json()
                return answer

            # observe is ready at once: the worker passes "set weight 5%" into the analysis
            wait_for("the analysis stage", lambda: state()["stage_index"] == 1, log)
            assert client.post(f"/v1/rollouts/{rollout_id}/abort", headers=headers).is_success
            wait_for("the rollback", lambda: state()["phase"] == "aborted", log)
            events = state()["events"]
        assert [e["actor"] for e in events if e["message"].endswith("abort by alice")] == [
            "alice",
            None,  # "rolled back: abort by alice": the worker finished what alice asked
        ]
        lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        about = [line for line in lines if line["rollout_id"] == rollout_id]
        assert {"canarist.workers", "celery.app.trace"} <= {line["logger"] for line in about}
    finally:
        stop(worker)


def test_canarist_api_serves_with_json_logs_naming_the_rollout(
    settings_file: Path, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "api.log"
    api = start(["api", "--port", str(port)], settings_file, log)
    try:
        wait_for("/healthz", lambda: http_probe("/healthz")(HOST, port), log)
        url, headers = f"http://{HOST}:{port}", {"Authorization": f"Bearer {SECRETS['ops']}"}
        submitted = httpx.post(f"{url}/v1/rollouts", json=JOB, headers=headers)
        assert submitted.status_code == 202, submitted.text
        rollout_id = submitted.json()["id"]
        metrics = httpx.get(f"{url}/metrics").text
        assert (
            'canarist_api_requests_total{method="POST",route="/v1/rollouts",status="202"} 1.0'
            in (metrics)
        )
        assert (
            "/v1/rollouts/{rollout_id}/promote" in httpx.get(f"{url}/openapi.json").json()["paths"]
        )
    finally:
        stop(api)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    submit_line = next(line for line in lines if line.get("route") == "/v1/rollouts")
    assert (submit_line["rollout_id"], submit_line["actor"], submit_line["status"]) == (
        rollout_id,
        "ops",
        202,
    )
    assert all({"time", "level", "message", "rollout_id"} <= set(line) for line in lines)
