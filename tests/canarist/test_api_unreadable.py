"""A rollout whose record this release cannot read, through the API and the CLI: a 500
``unreadable_record`` that names the record, its format and the formats read (one log line, no
traceback), never a write over it; the listing shows the others; an event that cannot be read
shows as ``unreadable_event`` in its rollout's trail.

The records are those the release before formats left (tests/fixtures/stored/v0), written back
into the real Redis, one of them raised to a format no release reads yet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from canarist.api import create_app
from canarist.cli import app
from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.canarist.test_api import POLICIES, SECRETS, api_settings, bearer
from tests.waiting import wait_until
from tests.workers.stored_records import STORED, restore, rewrite_state
from tests.workers.test_store import wipe
from workers.actions import EventKind
from workers.intake import Intake
from workers.store import FORMATS, RedisStateStore

NEWER = 1 + max(max(found.reads) for found in FORMATS.values())
BAD, GOOD = "checkout-in-analysis", "checkout-paused"


@dataclass
class Stack:
    client: TestClient
    raw: redis.Redis
    prefix: str
    bad_text: str  # the unreadable record, as stored

    def stored(self) -> str:
        return str(self.raw.hget(f"{self.prefix}rollout:{BAD}", "state"))


@pytest.fixture
def stack(redis_server: ServiceProcess) -> Iterator[Stack]:
    prefix = f"test:{uuid.uuid4().hex}:"
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    for scenario in ("in-analysis", "paused"):
        restore(raw, prefix, json.loads((STORED / "v0" / f"{scenario}.json").read_text())["keys"])
    bad_text = rewrite_state(raw, prefix, BAD, format=NEWER)
    store = RedisStateStore.from_url(redis_server.url, prefix=prefix)
    intake = Intake(store, POLICIES, time.time, lambda *task: None, alert_routes={"oncall"})
    try:
        with TestClient(create_app(api_settings(), intake)) as client:
            yield Stack(client, raw, prefix, bad_text)
    finally:
        store.close()
        raw.close()
        wipe(redis_server.url, prefix)


def refused_as_unreadable(answer: httpx.Response) -> None:
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert body["error"] == "unreadable_record"
    assert body["detail"].startswith(f"rollout {BAD} is stored in format {NEWER}"), body
    assert "(it reads formats 1, 2, 3, 4, 5, 6)" in body["detail"]
    assert "a newer release wrote it" in body["detail"]


def test_reading_or_commanding_an_unreadable_rollout_names_it_and_writes_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="canarist.api"):
        refused_as_unreadable(stack.client.get(f"/v1/rollouts/{BAD}", headers=bearer("ops")))
        for kind in ("abort", "pause", "promote"):
            answer = stack.client.post(f"/v1/rollouts/{BAD}/{kind}", headers=bearer("ops"))
            refused_as_unreadable(answer)
        refused_as_unreadable(stack.client.get(f"/v1/rollouts/{BAD}/report", headers=bearer("ops")))
    assert stack.stored() == stack.bad_text
    logged = [record for record in caplog.records if "unreadable_record" in record.getMessage()]
    assert len(logged) == 5 and all(record.exc_info is None for record in logged)


def test_the_listing_shows_the_rollouts_it_can_read(stack: Stack) -> None:
    answer = stack.client.get("/v1/rollouts", headers=bearer("ops"))
    assert answer.status_code == 200, answer.text
    assert [rollout["id"] for rollout in answer.json()["rollouts"]] == [GOOD]


def test_an_unreadable_event_shows_in_its_rollouts_trail(stack: Stack) -> None:
    key = f"{stack.prefix}events:{GOOD}"
    event_id = stack.raw.xadd(key, {"event": "{}", "format": str(NEWER)})
    answer = stack.client.get(f"/v1/rollouts/{GOOD}", headers=bearer("ops"))
    assert answer.status_code == 200, answer.text
    shown = next(event for event in answer.json()["events"] if event["id"] == event_id)
    assert shown["kind"] == EventKind.UNREADABLE_EVENT
    assert f"is stored in format {NEWER}" in shown["message"]


def test_an_event_kind_this_release_does_not_know_shows_as_written(stack: Stack) -> None:
    key = f"{stack.prefix}events:{GOOD}"
    (last,) = stack.raw.xrevrange(key, count=1)
    written = {**json.loads(last[1]["event"]), "kind": "canary_rewound", "message": "newer"}
    event_id = stack.raw.xadd(key, {"event": json.dumps(written), "format": "1"})
    answer = stack.client.get(f"/v1/rollouts/{GOOD}", headers=bearer("ops"))
    assert answer.status_code == 200, answer.text
    shown = answer.json()["events"][-1]
    assert (shown["id"], shown["kind"], shown["message"]) == (event_id, "canary_rewound", "newer")
    report = stack.client.get(f"/v1/rollouts/{GOOD}/report", headers=bearer("ops"))
    assert report.status_code == 200 and "canary_rewound" in report.text


def test_the_cli_says_why_and_exits_1(stack: Stack) -> None:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(stack.client.app, host=HOST, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until("uvicorn to start", lambda: server.started or not thread.is_alive())
        assert server.started, "uvicorn exited while starting"
        env = {"CANARIST_API_URL": f"http://{HOST}:{port}", "CANARIST_TOKEN": SECRETS["ops"]}
        result = CliRunner().invoke(app, ["status", BAD], env=env)
    finally:
        server.should_exit = True
        thread.join(10)
    assert result.exit_code == 1, result.output
    assert f"error: 500 unreadable_record: rollout {BAD} is stored in format {NEWER}" in " ".join(
        result.stderr.split()
    )
