"""``canarist approve`` against the API served for real by uvicorn over the harness's intake and
task code: the gate holds until a person approves through the CLI, ``status`` shows the wait,
the audit trail records who approved and why, and an approval at any other time is refused
(exit 2) with where the rollout is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from canarist.cli import app
from canarist.demo.stack import HOST, free_port
from tests.waiting import wait_until
from tests.workers.rollout_harness import TOKEN, Harness, write_policies
from workers.actions import EventKind
from workers.platforms.memory import MemoryPlatform
from workers.state import Phase

runner = CliRunner()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Harness, dict[str, str]]]:
    policies = write_policies(tmp_path)
    text = (policies / "rolling.yaml").read_text()
    manual = text.replace("  type: rolling\n", "  type: rolling\n  confirm_promotion: manual\n")
    (policies / "rolling-manual.yaml").write_text(
        manual.replace("name: rolling", "name: rolling-manual")
    )
    platform = MemoryPlatform()
    harness = Harness(policies, lambda: platform)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(harness.api.app, host=HOST, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until("uvicorn to start", lambda: server.started or not thread.is_alive())
    assert server.started, "uvicorn exited while starting"
    try:
        yield harness, {"CANARIST_API_URL": f"http://{HOST}:{port}", "CANARIST_TOKEN": TOKEN}
    finally:
        server.should_exit = True
        thread.join(10)


def test_canarist_approve_lets_a_waiting_rollout_promote_and_the_trail_says_who(
    served: tuple[Harness, dict[str, str]],
) -> None:
    harness, env = served
    rollout_id = harness.submit(
        app="checkout", namespace="shop", version="v2", policy="rolling-manual",
        platform="observe", baseline='app="checkout",version="v1"',
        canary='app="checkout",version="v2"',
    )  # fmt: skip
    harness.run(rollout_id, lambda s: s.phase is Phase.PROGRESSING)
    early = runner.invoke(app, ["approve", rollout_id], env=env)
    assert early.exit_code == 2, early.output
    assert "not awaiting approval: it is at stage 1 of 3" in early.output
    harness.run(rollout_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    harness.clock.advance(120.0)
    assert harness.state(rollout_id).phase is Phase.AWAITING_APPROVAL  # it holds
    shown = runner.invoke(app, ["status", rollout_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "awaiting_approval" in shown.output and f"canarist approve {rollout_id}" in shown.output
    auth = {"Authorization": f"Bearer {TOKEN}"}
    detail = harness.api.get(f"/v1/rollouts/{rollout_id}", headers=auth).json()
    assert detail["phase"] == "awaiting_approval" and not detail["terminal"]
    report = harness.api.get(f"/v1/rollouts/{rollout_id}/report", headers=auth)
    assert report.status_code == 200 and "Awaiting approval" in report.text
    approved = runner.invoke(
        app, ["approve", rollout_id, "--reason", "error budget is fine"], env=env
    )
    assert approved.exit_code == 0, approved.output
    assert f"approve sent to {rollout_id}: phase promoting" in approved.output
    assert harness.finish(rollout_id).phase is Phase.PROMOTED
    trail = harness.store.events(rollout_id, None, 500)
    (move,) = [e for e in trail if e.kind == EventKind.PHASE and e.data.get("to") == "promoting"]
    assert move.actor == "operator" and "error budget is fine" in move.message
    again = runner.invoke(app, ["approve", rollout_id], env=env)
    assert again.exit_code == 2 and "not awaiting approval: it is promoted" in again.output
