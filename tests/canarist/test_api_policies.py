"""The server's policies through its doors: ``GET /v1/policies[/{name}]`` and ``canarist policy
list|show|diff``, against the API served for real by uvicorn over intake and the real Redis, and
the policy a rollout pinned in ``canarist status`` and the report."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from canarist.api import create_app
from canarist.cli import app
from canarist.demo.stack import HOST, ServiceProcess, free_port
from tests.canarist.test_api import JOB, POLICIES, SECRETS, api_settings, bearer
from tests.waiting import wait_until
from tests.workers.test_store import wipe
from workers.intake import Intake
from workers.store import RedisStateStore

runner = CliRunner()
BROKEN = "name: broken\nanalysis:\n  interval: soon\n"


@dataclass
class Served:
    url: str
    policy_dir: Path
    store: RedisStateStore

    def env(self, who: str = "viewer") -> dict[str, str]:
        return {"CANARIST_API_URL": self.url, "CANARIST_TOKEN": SECRETS[who]}

    def get(self, path: str, who: str | None = "viewer") -> httpx.Response:
        return httpx.get(self.url + path, headers=bearer(who) if who else {}, timeout=10)

    def cli(self, *argv: str, who: str = "viewer") -> Any:
        return runner.invoke(app, list(argv), env=self.env(who))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def served(
    redis_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    policy_dir = tmp_path_factory.mktemp("served") / "policies"
    shutil.copytree(POLICIES, policy_dir)
    (policy_dir / "broken.yaml").write_text(BROKEN)
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStateStore.from_url(redis_server.url, prefix=prefix)
    intake = Intake(store, policy_dir, time.time, lambda *task: None, alert_routes={"oncall"})
    port = free_port()
    config = uvicorn.Config(
        create_app(api_settings(), intake), host=HOST, port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until("uvicorn to start", lambda: server.started or not thread.is_alive())
    assert server.started, "uvicorn exited while starting"
    try:
        yield Served(f"http://{HOST}:{port}", policy_dir, store)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
        wipe(redis_server.url, prefix)


def test_the_policies_are_listed_with_digest_summary_and_errors(served: Served) -> None:
    answer = served.get("/v1/policies")
    assert answer.status_code == 200, answer.text
    listed = {policy["name"]: policy for policy in answer.json()["policies"]}
    shipped = {path.stem for path in POLICIES.glob("*.yaml")}
    assert set(listed) == shipped | {"broken"}
    canary = listed["default-canary"]
    assert canary["digest"] == sha256((served.policy_dir / "default-canary.yaml").read_bytes())
    assert canary["strategy"] == "canary" and canary["metrics"] and canary["error"] is None
    broken = listed["broken"]
    assert broken["strategy"] is None and broken["metrics"] == []
    # every problem at once, sorted by line: the missing metrics (line 1), then the interval
    assert broken["error"].startswith("broken.yaml:1: metrics: missing required field")
    assert "analysis.interval: bad duration 'soon'" in broken["error"]
    assert str(served.policy_dir) not in answer.text  # the server's directory is its own business


def test_one_policy_is_its_text_as_the_server_reads_it(served: Served) -> None:
    answer = served.get("/v1/policies/default-canary", who="bob")  # any namespace may read
    assert answer.status_code == 200, answer.text
    body = answer.json()
    file = served.policy_dir / "default-canary.yaml"
    assert body["text"] == file.read_text() and body["digest"] == sha256(file.read_bytes())
    assert body["name"] == "default-canary" and body["strategy"] == "canary"


@pytest.mark.parametrize("name", ["nope", "Default-Canary", "-x"])
def test_an_unknown_policy_is_a_404_with_its_reason(served: Served, name: str) -> None:
    answer = served.get(f"/v1/policies/{name}")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "unknown_policy"
    assert "policy" in answer.json()["detail"]
    assert served.get("/v1/policies/..%2Fpolicies%2Fdefault-canary").status_code == 404


@pytest.mark.parametrize("path", ["/v1/policies", "/v1/policies/default-canary"])
def test_the_policies_need_a_token(served: Served, path: str) -> None:
    assert served.get(path, who=None).status_code == 401
    answer = httpx.get(served.url + path, headers={"Authorization": "Bearer cnr_wrong"})
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"


def test_policy_list_and_show(served: Served) -> None:
    listed = served.cli("policy", "list")
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "DIGEST", "STRATEGY", "MODIFIED", "METRICS"]
    digest = sha256((served.policy_dir / "default-canary.yaml").read_bytes())
    row = next(row for row in rows if row.startswith("default-canary "))
    assert row.split()[1:3] == [digest[:12], "canary"]
    assert any(row.startswith("broken ") and "ERROR: broken.yaml:1: metrics" in row for row in rows)

    shown = served.cli("policy", "show", "default-canary")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == (served.policy_dir / "default-canary.yaml").read_text()
    assert f"# default-canary @ {digest}" in shown.stderr
    missing = served.cli("policy", "show", "nope")
    assert missing.exit_code == 2 and "404 unknown_policy: no policy 'nope'" in missing.stderr
    unauthorised = runner.invoke(app, ["policy", "list"], env={"CANARIST_API_URL": served.url})
    assert unauthorised.exit_code == 2 and "401" in unauthorised.stderr


def test_policy_diff_exits_0_same_1_different_2_error(served: Served, tmp_path: Path) -> None:
    local = tmp_path / "default-canary.yaml"
    shutil.copyfile(served.policy_dir / "default-canary.yaml", local)
    same = served.cli("policy", "diff", str(local))
    assert same.exit_code == 0, same.output
    assert "same as the server's default-canary" in same.stdout

    text = local.read_text()
    local.write_text(text.replace("canary", "kanary", 1))
    different = served.cli("policy", "diff", str(local))
    assert different.exit_code == 1, different.output
    assert different.stdout.startswith("--- server:default-canary@")
    assert f"+++ {local}" in different.stdout
    assert "\n-" in different.stdout and "\n+" in different.stdout

    renamed = tmp_path / "mine.yaml"
    renamed.write_text(text)
    named = served.cli("policy", "diff", str(renamed), "--name", "default-canary")
    assert named.exit_code == 0, named.output
    assert served.cli("policy", "diff", str(renamed)).exit_code == 2  # no server policy "mine"
    assert served.cli("policy", "diff", str(tmp_path / "absent.yaml")).exit_code == 2
    offline = runner.invoke(
        app,
        ["policy", "diff", str(local)],
        env={"CANARIST_API_URL": f"http://{HOST}:{free_port()}", "CANARIST_TOKEN": "x"},
    )
    assert offline.exit_code == 2 and "cannot reach" in offline.stderr


def test_a_rollout_shows_the_policy_it_pinned_after_the_file_changes(served: Served) -> None:
    policy_file = served.policy_dir / "default-canary.yaml"
    original = policy_file.read_bytes()
    submitted = httpx.post(served.url + "/v1/rollouts", json=JOB, headers=bearer("alice"))
    assert submitted.status_code == 202, submitted.text
    rollout_id = submitted.json()["id"]
    try:
        policy_file.write_bytes(original.replace(b"tolerance: 0.25", b"tolerance: 0.5", 1))
        detail = served.get(f"/v1/rollouts/{rollout_id}").json()
        assert detail["policy_digest"] == sha256(original)
        assert detail["stage_label"] is not None
        status = served.cli("status", rollout_id)
        assert status.exit_code == 0, status.output
        shown = " ".join(status.stdout.split())  # rich wraps long lines
        assert f"(policy default-canary @ {sha256(original)[:12]})" in shown
        report = served.get(f"/v1/rollouts/{rollout_id}/report")
        assert report.status_code == 200
        assert f"default-canary @ {sha256(original)[:12]}" in report.text
        listed = served.get("/v1/policies/default-canary").json()
        assert listed["digest"] == sha256(policy_file.read_bytes()) != sha256(original)
    finally:
        policy_file.write_bytes(original)
