"""The Celery door as README.md documents it for clients that are not Canarist's own Python.

The README's section "Celery from any language" names the task, the queue, the exchange and the
routing key, and shows the message. These tests read those names from the README itself, check
them against workers/celery_app.py and workers/tasks.py (so the page cannot drift from the
code), and then speak to the real worker of the test stack the way another language would:
messages built by hand (no ``send_task``) and pushed onto the Redis list, in protocol 2 exactly
as celery-node builds it and in protocol 1, and the README's own redis-cli example, run as
written. A job left on celery-node's default queue, ``celery``, is shown never to be consumed.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import redis

from tests.waiting import wait_until
from tests.workers.conftest import CeleryStack, trail
from workers.celery_app import NOTIFY_QUEUE, ROLLOUTS_QUEUE, make_celery
from workers.settings import RedisSettings, WorkerSettings
from workers.tasks import ADVANCE, DELIVER, RECONCILE, SUBMIT

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Celery from any language: the queue, the task and the message"
CREATION_TIMEOUT = 20.0


def section() -> str:
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, f"README.md lost its section {HEADING!r}"
    return text.split(HEADING, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def documented() -> dict[str, str]:
    """The section's table: the first word of each row, and the first `code` of its value."""
    rows: dict[str, str] = {}
    for line in section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        code = re.search(r"`([^`]+)`", cells[-1]) if len(cells) == 2 else None
        if code and not set(cells[0]) <= {"-"}:
            rows[cells[0].split(" (")[0]] = code.group(1)
    return rows


def test_the_readme_names_the_task_queue_exchange_and_routing_key_the_worker_uses() -> None:
    # configured only: it never connects
    app = make_celery(WorkerSettings(redis=RedisSettings(url="redis://127.0.0.1:9/0")))
    try:
        queue = app.amqp.queues[ROLLOUTS_QUEUE]
        routed = app.amqp.router.route({}, SUBMIT)["queue"]
    finally:
        app.close()
    table = documented()
    assert table["task name"] == SUBMIT
    assert table["queue"] == routed.name == queue.name
    assert table["exchange"] == queue.exchange.name
    assert queue.exchange.type == "direct" and "(type `direct`)" in section()
    assert table["routing key"] == queue.routing_key
    assert table["message protocol"] == "2"
    names = set(re.findall(r"canarist\.[a-z_]+", section()))
    assert (
        {SUBMIT, ROLLOUTS_QUEUE}
        <= names
        <= {SUBMIT, ADVANCE, RECONCILE, DELIVER}.union({ROLLOUTS_QUEUE, NOTIFY_QUEUE})
    ), names  # every name the page gives is one the worker knows
    node = section().split("```js", 1)[1].split("```", 1)[0]
    assert f'"{ROLLOUTS_QUEUE}");' in node and f'createTask("{SUBMIT}")' in node


def job(app: str) -> dict[str, Any]:
    return {
        "app": app,
        "namespace": "shop",
        "version": "v2",
        "policy": "demo",
        "baseline": f'app="{app}",version="v1"',
        "canary": f'app="{app}",version="v2"',
        "platform": "observe",
        "idempotency_key": f"ci-{app}",
    }


def envelope(headers: dict[str, Any], body: Any, queue: str) -> str:
    """The Redis transport's message, field for field as celery-node's Redis broker writes it."""
    task_id = str(headers.get("id") or body["id"])
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": headers,
            "properties": {
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": queue},
                "delivery_mode": 2,
                "delivery_tag": str(uuid.uuid4()),
                "correlationId": task_id,
                "replyTo": "",
            },
        }
    )


def protocol_2(task_id: str, payload: dict[str, Any], queue: str, **kwargs: str) -> str:
    headers = {"lang": "js", "task": documented()["task name"], "id": task_id}
    return envelope(headers, [[payload], kwargs, {}], queue)


def protocol_1(task_id: str, payload: dict[str, Any], queue: str, **kwargs: str) -> str:
    body = {"task": documented()["task name"], "id": task_id, "args": [payload], "kwargs": kwargs}
    return envelope({}, body, queue)


def push(stack: CeleryStack, queue: str, message: str) -> None:
    client = redis.Redis.from_url(stack.env["CANARIST_REDIS__URL"])
    try:
        client.lpush(queue, message)
    finally:
        client.close()


def created(stack: CeleryStack, app: str, timeout: float = CREATION_TIMEOUT) -> str:
    worker = stack.worker
    assert worker is not None
    rollout_id: str = wait_until(
        f"a rollout for {app}",
        lambda: stack.store.latest_for(app, "shop"),
        timeout,
        every=0.1,
        detail=lambda: worker.tail(40),
    )
    return rollout_id


def task_result(stack: CeleryStack, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """What the task returned, as the worker logged it (the stock worker keeps no results)."""
    worker = stack.worker
    assert worker is not None
    pattern = re.compile(rf"\[{re.escape(task_id)}\] succeeded in [0-9.]+s: (\{{.*\}})")
    found = wait_until(
        f"task {task_id} to succeed",
        lambda: pattern.search(worker.tail(400)),
        timeout,
        every=0.1,
        detail=lambda: worker.tail(40),
    )
    result: dict[str, Any] = ast.literal_eval(found.group(1))
    return result


def assert_submitted(stack: CeleryStack, app: str, task_id: str, actor: str) -> None:
    rollout_id = created(stack, app)
    submitted = trail(stack.store, rollout_id)[0]
    assert (submitted.kind, submitted.actor) == ("submitted", actor)
    assert submitted.data["policy"] == "demo" and submitted.data["platform"] == "observe"
    result = task_result(stack, task_id)
    assert result == {"rollout_id": rollout_id, "created": True, "superseded": None}


def test_a_protocol_2_message_built_by_hand_creates_the_rollout(celery_stack: CeleryStack) -> None:
    app, task_id, queue = f"door-v2-{uuid.uuid4().hex[:6]}", str(uuid.uuid4()), ROLLOUTS_QUEUE
    push(celery_stack, documented()["queue"], protocol_2(task_id, job(app), queue, actor="ci"))
    assert_submitted(celery_stack, app, task_id, actor="ci")


def test_a_protocol_1_message_without_kwargs_creates_the_rollout(
    celery_stack: CeleryStack,
) -> None:
    app, task_id, queue = f"door-v1-{uuid.uuid4().hex[:6]}", str(uuid.uuid4()), ROLLOUTS_QUEUE
    push(celery_stack, documented()["queue"], protocol_1(task_id, job(app), queue))
    assert_submitted(celery_stack, app, task_id, actor="celery")  # the default actor


def test_the_readme_redis_cli_example_runs_as_written(celery_stack: CeleryStack) -> None:
    script = section().split("```sh\n", 1)[1].split("```", 1)[0]
    app = f"door-sh-{uuid.uuid4().hex[:6]}"
    broker = celery_stack.env["CANARIST_REDIS__URL"]
    script, urls = re.subn(r"(?m)^REDIS_URL=.*$", f"REDIS_URL={broker}", script)
    script, jobs = re.subn(r"(?ms)^JOB='.*?'$", f"JOB='{json.dumps(job(app))}'", script)
    assert (urls, jobs) == (1, 1), "the example no longer sets REDIS_URL and JOB"
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert created(celery_stack, app)
    assert trail(celery_stack.store, created(celery_stack, app))[0].actor == "ci"


def test_a_job_on_the_default_celery_queue_is_never_consumed(celery_stack: CeleryStack) -> None:
    stranded, control = (f"door-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("lost", "ok"))
    push(celery_stack, "celery", protocol_2(str(uuid.uuid4()), job(stranded), "celery"))
    push(celery_stack, ROLLOUTS_QUEUE, protocol_2(str(uuid.uuid4()), job(control), ROLLOUTS_QUEUE))

    created(celery_stack, control)  # the worker is running and reading its queue...

    client = redis.Redis.from_url(celery_stack.env["CANARIST_REDIS__URL"])
    try:
        assert client.llen("celery") == 1  # ...and never touches this one
        client.delete("celery")
    finally:
        client.close()
    assert celery_stack.store.latest_for(stranded, "shop") is None
