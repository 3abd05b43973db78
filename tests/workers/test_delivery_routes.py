"""One abort, two alert routes, one of them unreachable, against the real Alertmanager of the test
stack: the good route receives the alert exactly once while the bad one is retried and, in the
end, given up with an audit event, not dropped with a log line."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from canarist.demo.stack import ServiceProcess, free_port, list_alerts
from tests.workers.conftest import DEMO_POLICY, FakeClock, Queued, job, trail
from workers.actions import EventKind
from workers.delivery import Backoff, Delivery
from workers.intake import Intake
from workers.notify.base import Route, notifier_for
from workers.store import MemoryStateStore

RECEIVED = re.compile(r"^alertmanager_alerts_received_total\{.*\} (\S+)$", re.M)


def received(alertmanager: ServiceProcess) -> float:
    """Alerts Alertmanager has taken in since it started, every post counted (it merges the
    alerts it holds by labels, so only this counter shows a repeated post)."""
    text = httpx.get(f"{alertmanager.url}/metrics", trust_env=False, timeout=5).text
    return sum(float(value) for value in RECEIVED.findall(text))


@pytest.fixture
def two_routes(policy_dir: Path) -> str:
    policy = DEMO_POLICY.replace("name: demo", "name: two-routes")
    (policy_dir / "two-routes.yaml").write_text(policy.replace("[oncall]", "[oncall, backup]"))
    return "two-routes"


def test_the_good_route_gets_one_alert_while_the_unreachable_one_is_retried(
    alertmanager_server: ServiceProcess,
    memory_store: MemoryStateStore,
    policy_dir: Path,
    clock: FakeClock,
    queued: Queued,
    two_routes: str,
) -> None:
    intake = Intake(
        memory_store, policy_dir, clock, queued.enqueue, alert_routes={"oncall", "backup"}
    )
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    routes = {
        "oncall": notifier_for(Route("oncall", "alertmanager", alertmanager_server.url)),
        "backup": notifier_for(Route("backup", "alertmanager", unreachable)),
    }
    delivery = Delivery(
        memory_store,
        routes,
        clock,
        lambda successor, predecessor: None,
        record=intake.record,
        backoff=Backoff(base=5, cap=300, give_up_after=3),
    )
    clock.now = time.time()  # Alertmanager holds an alert only until its endsAt
    app = f"routes-{uuid.uuid4().hex[:6]}"
    rollout_id = intake.submit(job(app=app, policy=two_routes), "alice").rollout_id
    intake.command(rollout_id, "abort", "carol", reason="bad build")
    before = received(alertmanager_server)

    first = {settled.item_id: settled.outcome for settled in delivery.run()}
    assert first == {
        f"{rollout_id}/1/aborted>oncall": "delivered",
        f"{rollout_id}/1/aborted>backup": "retry",
    }
    clock.advance(5)
    assert [(s.item_id, s.outcome) for s in delivery.run()] == [
        (f"{rollout_id}/1/aborted>backup", "retry")
    ]
    clock.advance(10)
    assert [s.outcome for s in delivery.run()] == ["given_up"]
    clock.advance(86_400)
    assert delivery.run() == []

    assert received(alertmanager_server) - before == 1  # posted once, not once per retry
    (alert,) = list_alerts(alertmanager_server.url, [f'rollout_id="{rollout_id}"'])
    assert alert["labels"]["alertname"] == "RolloutAborted"
    (lost,) = [
        event
        for event in trail(memory_store, rollout_id)
        if event.kind == EventKind.ALERT_UNDELIVERED
    ]
    assert lost.data["routes"] == ["backup"]
    assert "aborted alert not delivered to route 'backup': 3 attempts failed" in lost.message
