"""``canarist submit|list|status|abort|...`` against the API served for real by uvicorn on a
loopback port, over intake and an in-memory store: what a person sees, and the exit codes a CI
job branches on (0 done, 2 refused by the API, 1 API unreachable; ``status --watch``: 0
promoted, 3 aborted, 4 failed, 5 not found), the last through the installed ``canarist``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from rich.console import Console
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner

from analyzer.verdict import Outcome
from canarist.api import create_app
from canarist.cli import app, processes
from canarist.cli.status_view import status_view
from canarist.demo.stack import HOST, free_port
from tests.canarist.test_api import POLICIES, SECRETS, Api, Clock, Worker, api_settings, bearer
from tests.waiting import wait_until
from workers.intake import Intake
from workers.store import MemoryStateStore

runner = CliRunner()
CANARIST = Path(sys.executable).with_name("canarist")
SUBMIT = [
    "submit",
    "--app",
    "checkout",
    "--namespace",
    "shop",
    "--version",
    "v2",
    "--policy",
    "default-canary",
    "--baseline",
    'app="checkout",version="v1"',
    "--canary",
    'app="checkout",version="v2"',
]


@dataclass
class Served:
    url: str
    store: MemoryStateStore
    enqueued: list[tuple[str, int]]
    requests: list[str]  # "GET /v1/rollouts/<id>", in the order the server received them

    def env(self, who: str = "alice") -> dict[str, str]:
        return {"CANARIST_API_URL": self.url, "CANARIST_TOKEN": SECRETS[who]}

    def reads_of(self, rollout_id: str) -> int:
        return self.requests.count(f"GET /v1/rollouts/{rollout_id}")

    def wait_for_watching(self, rollout_id: str) -> None:
        """Until a ``--watch`` has read the rollout twice: it is following it, not just started."""
        wait_until(f"a watcher to read {rollout_id} twice", lambda: self.reads_of(rollout_id) >= 2)


def recording(app: ASGIApp, requests: list[str]) -> ASGIApp:
    """``app``, noting each HTTP request's method and path in ``requests`` as it arrives."""

    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            requests.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    return recorded


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    store, enqueued = MemoryStateStore(), []
    intake = Intake(
        store, POLICIES, time.time, lambda *task: enqueued.append(task), alert_routes={"oncall"}
    )
    port, requests = free_port(), list[str]()
    api = recording(create_app(api_settings(), intake), requests)
    server = uvicorn.Server(uvicorn.Config(api, host=HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until("uvicorn to start", lambda: server.started or not thread.is_alive())
    assert server.started, "uvicorn exited while starting"
    try:
        yield Served(f"http://{HOST}:{port}", store, enqueued, requests)
    finally:
        server.should_exit = True
        thread.join(10)


def cli(served: Served, *argv: str, who: str = "alice") -> Any:
    return runner.invoke(app, list(argv), env=served.env(who))


def answer(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_submit_list_status_abort(served: Served) -> None:
    submitted = cli(served, *SUBMIT, "--image", "registry.example/checkout:v2")
    assert submitted.exit_code == 0, submitted.output
    rollout_id = submitted.stdout.strip()
    assert rollout_id.startswith("checkout-")
    assert (rollout_id, 1) in served.enqueued

    listed = answer(cli(served, "list", "--namespace", "shop", "--json"))
    assert rollout_id in [rollout["id"] for rollout in listed["rollouts"]]
    table = cli(served, "list")
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "ID",
        "APP",
        "NAMESPACE",
        "VERSION",
        "PHASE",
        "STAGE",
        "WEIGHT",
        "VERDICT",
    ]
    row = next(row for row in rows if row.startswith(rollout_id))
    cells = "checkout shop v2 pending 1/7 set weight 5% 0% -"
    assert row.split()[1:] == cells.split()

    status = cli(served, "status", rollout_id)
    assert status.exit_code == 0, status.output
    for words in ("phase", "pending", "1/7 set weight 5%", "submitted by alice"):
        assert words in status.stdout

    aborted = cli(served, "abort", rollout_id, "--reason", "bad deploy")
    assert aborted.exit_code == 0, aborted.output
    assert f"abort sent to {rollout_id}: phase aborted" in aborted.stdout
    detail = answer(cli(served, "status", rollout_id, "--json"))
    assert detail["phase"] == "aborted"
    last = detail["events"][-1]
    assert (last["actor"], last["message"]) == ("alice", "abort by alice: bad deploy")


def test_submit_passes_args_and_the_idempotency_key(served: Served) -> None:
    argv = [*SUBMIT, "--app", "ledger", "--policy", "rolling", "--arg", "route=/api/.*"]
    argv += ["--idempotency-key", "ci-run-41"]
    first, again = cli(served, *argv), cli(served, *argv)
    assert first.exit_code == again.exit_code == 0, again.output
    assert again.stdout.split()[0] == first.stdout.strip()
    assert "already submitted" in again.stdout
    detail = answer(cli(served, "status", first.stdout.strip(), "--json"))
    assert detail["args"] == {"route": "/api/.*"}


def test_submit_names_an_image_per_container(served: Served) -> None:
    argv = [*SUBMIT, "--app", "basket", "--platform", "kubernetes"]
    argv += ["--container-image", "app=registry.example/basket:v2"]
    argv += ["--container-image", "sidecar=registry.example/envoy:1.31"]
    submitted = cli(served, *argv)
    assert submitted.exit_code == 0, submitted.output
    spec = served.store.load(submitted.stdout.strip()).state.spec
    assert dict(spec.images) == {
        "app": "registry.example/basket:v2",
        "sidecar": "registry.example/envoy:1.31",
    }
    refused = cli(served, *argv[:-1], "sidecar")
    assert refused.exit_code == 2
    assert "--container-image 'sidecar': expected name=value" in refused.output


def test_submit_passes_the_fresh_baseline_selector(served: Served) -> None:
    argv = [*SUBMIT, "--app", "pantry", "--platform", "kubernetes"]
    refused = cli(served, *argv, "--fresh-baseline", 'app="pantry",role="baseline"')
    assert refused.exit_code == 2  # the API got it: this policy compares with the stable fleet
    assert "fresh_baseline is given, but policy" in refused.output


def test_status_watch_follows_until_the_rollout_finishes(served: Served) -> None:
    rollout_id = cli(served, *SUBMIT, "--app", "cart").stdout.strip()

    def abort_once_watched() -> None:
        served.wait_for_watching(rollout_id)
        headers = {"Authorization": f"Bearer {SECRETS['ops']}"}
        httpx.post(f"{served.url}/v1/rollouts/{rollout_id}/abort", headers=headers)

    aborter = threading.Thread(target=abort_once_watched)
    aborter.start()
    watched = cli(served, "status", rollout_id, "--watch", "--interval", "0.1")
    aborter.join()
    assert watched.exit_code == 3, watched.output
    assert served.reads_of(rollout_id) >= 3  # it kept reading until it saw the abort
    assert "aborted (final)" in watched.stdout
    assert "abort by ops" in watched.stdout


def test_a_refused_token_exits_2_with_the_servers_reason(served: Served) -> None:
    result = runner.invoke(
        app, ["list"], env={"CANARIST_API_URL": served.url, "CANARIST_TOKEN": "cnr_wrong"}
    )
    assert result.exit_code == 2
    assert "error: 401 unauthorized: invalid bearer token" in result.stderr
    missing = runner.invoke(app, ["list", "--api", served.url], env={"CANARIST_TOKEN": ""})
    assert missing.exit_code == 2
    assert "missing bearer token" in missing.stderr
    assert "CANARIST_TOKEN" in missing.stderr


def test_refusals_exit_2_with_the_reason(served: Served) -> None:
    unknown = cli(served, "abort", "no-such-rollout")
    assert unknown.exit_code == 2
    assert "error: 404 rollout_not_found: no rollout no-such-rollout" in unknown.stderr
    promote = cli(served, "promote", "no-such-rollout", "--full")
    assert promote.exit_code == 2
    policy = cli(served, *SUBMIT, "--policy", "no-such-policy")
    assert policy.exit_code == 2
    assert "unknown_policy" in policy.stderr
    pending = cli(served, *SUBMIT, "--app", "search").stdout.strip()
    not_now = cli(served, "resume", pending)
    assert not_now.exit_code == 2
    assert "409 not_applicable: resume by alice does not apply" in not_now.stderr
    elsewhere = cli(served, *SUBMIT, "--namespace", "payments")
    assert elsewhere.exit_code == 2
    assert "403 forbidden" in elsewhere.stderr
    invalid = cli(served, *SUBMIT, "--app", "Checkout_Service")
    assert invalid.exit_code == 2
    assert "422 invalid_request" in invalid.stderr
    assert "  app: String should match pattern" in invalid.stderr


def test_an_unreachable_api_exits_1_saying_so() -> None:
    url = f"http://{HOST}:{free_port()}"
    result = runner.invoke(app, ["list", "--api", url, "--token", "cnr_any"])
    assert result.exit_code == 1
    assert f"cannot reach the Canarist API at {url}" in result.stderr


def test_worker_without_the_celery_app_exits_1_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "CELERY_MODULE", "workers.no_celery_app_here")
    for command in ("worker", "beat"):
        result = runner.invoke(app, [command])
        assert result.exit_code == 1
        assert "workers.no_celery_app_here is not installed" in result.stderr


def test_status_shows_the_last_verdict_per_metric_as_plain_text() -> None:
    store, clock = MemoryStateStore(), Clock()
    intake = Intake(store, POLICIES, clock, lambda *task: None, alert_routes={"oncall"})
    with TestClient(create_app(api_settings(), intake)) as client:
        api = Api(client, store, clock)
        rollout_id = api.submit()
        while not store.load(rollout_id).state.phase.terminal:
            Worker(store, clock).wake(rollout_id, Outcome.FAIL)
        detail = client.get(f"/v1/rollouts/{rollout_id}", headers=bearer("alice")).json()
    detail["abort_reason"] = "effect [+2.0%, +9.0%] [bold]not markup[/bold]"
    console = Console(record=True, width=160)
    console.print(status_view(detail))
    shown = console.export_text()
    assert "effect [+2.0%, +9.0%] [bold]not markup[/bold]" in shown
    assert "last verdict per metric" in shown
    for metric in ("error-ratio", "latency", "memory"):
        assert f"{metric}: fail" in shown
    assert "FAIL: scripted fail" in shown
    assert "compared with  the stable fleet" in shown  # the policy's analysis.baseline: stable
    detail["compared_with"] = "a fresh baseline: pods of the stable version started with it"
    console = Console(record=True, width=160)
    console.print(status_view(detail))
    assert "compared with  a fresh baseline: pods of the stable version" in console.export_text()


def canarist(served: Served, *argv: str, who: str = "viewer") -> subprocess.Popen[str]:
    """The installed ``canarist`` command, as a pipeline runs it (a read-only token)."""
    return subprocess.Popen(
        [str(CANARIST), *argv],
        env={**os.environ, **served.env(who)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _end(served: Served, rollout_id: str, ending: str) -> None:
    """Walk the rollout to ``ending`` as the workers and a person would."""
    worker = Worker(served.store, Clock(time.time()))
    if ending == "aborted":
        headers = {"Authorization": f"Bearer {SECRETS['alice']}"}
        httpx.post(f"{served.url}/v1/rollouts/{rollout_id}/abort", headers=headers)
    elif ending == "failed":
        worker.wake(rollout_id)  # pending -> progressing: the first stage asks the platform
        worker.wake(rollout_id, fails="pods crash-looping")
        worker.wake(rollout_id)  # the rollback is done
    while not served.store.load(rollout_id).state.phase.terminal:
        worker.wake(rollout_id, Outcome.PASS)


@pytest.mark.parametrize(("ending", "code"), [("promoted", 0), ("aborted", 3), ("failed", 4)])
def test_status_watch_exits_with_how_the_rollout_ended(
    served: Served, ending: str, code: int
) -> None:
    rollout_id = cli(served, *SUBMIT, "--app", f"watched-{ending}").stdout.strip()
    watcher = canarist(served, "status", rollout_id, "--watch", "--interval", "0.1")
    served.wait_for_watching(rollout_id)
    assert watcher.poll() is None, watcher.communicate()  # it is watching a pending rollout
    _end(served, rollout_id, ending)
    output, errors = watcher.communicate(timeout=30)
    assert watcher.returncode == code, errors
    assert f"{ending} (final)" in output
    again = canarist(served, "status", rollout_id, "--watch", "--json")
    assert again.wait(30) == code
    assert json.loads(again.communicate()[0])["phase"] == ending


def test_status_exit_codes_tell_not_found_refused_and_unreachable_apart(served: Served) -> None:
    rollout_id = cli(served, *SUBMIT, "--app", "watched-codes").stdout.strip()
    missing = canarist(served, "status", "no-such-rollout", "--watch")
    assert missing.wait(30) == 5
    assert "404 rollout_not_found: no rollout no-such-rollout" in missing.communicate()[1]
    elsewhere = canarist(served, "status", rollout_id, "--watch", who="bob")
    assert elsewhere.wait(30) == 5, "another namespace's rollout is not found"
    refused = canarist(served, "status", rollout_id, "--watch", "--token", "cnr_wrong")
    assert refused.wait(30) == 2
    unreachable = canarist(
        served, "status", rollout_id, "--watch", "--api", f"http://{HOST}:{free_port()}"
    )
    assert unreachable.wait(30) == 1
    shown = canarist(served, "status", rollout_id)
    assert shown.wait(30) == 0, "without --watch, showing a rollout is success"
    helped = canarist(served, "status", "--help")
    assert helped.wait(30) == 0
    text = " ".join(helped.communicate()[0].split())
    for line in ("0 promoted", "3 aborted", "4 failed", "5 no such rollout", "1 the API cannot"):
        assert line in text
