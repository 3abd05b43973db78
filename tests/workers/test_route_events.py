"""Alert routes that choose their events (settings ``alert_routes.<name>.events``), delivered by
the real delivery code to a local HTTP receiver and to the real Alertmanager of the test session,
for rollouts driven by the real task code: a route following ``promoted`` gets one message per
promotion and none for aborts, a chat follows every step, a route without ``events`` gets exactly
what routes got before they could choose, and Alertmanager only what should page (and, when
asked, the wait for an approval, as ``info``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarist.demo.stack import ServiceProcess, list_alerts
from tests.workers.notify.capture import CaptureServer
from tests.workers.rollout_harness import ANALYSIS, POLICIES, Harness
from workers.delivery import Delivery
from workers.notify.base import Route, notifier_for
from workers.platforms.memory import MemoryPlatform
from workers.settings import WorkerSettings
from workers.state import Phase, RolloutState

ROUTES = ("releases", "chat", "legacy", "oncall")


@pytest.fixture
def receivers() -> Iterator[dict[str, CaptureServer]]:
    with CaptureServer() as releases, CaptureServer() as chat, CaptureServer() as legacy:
        yield {"releases": releases, "chat": chat, "legacy": legacy}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    alerts = f"alerts: [{', '.join(ROUTES)}]\n"
    canary = POLICIES["canary"]
    (tmp_path / "routed.yaml").write_text(f"name: routed\n{alerts}{ANALYSIS}{canary}")
    manual = canary.replace("  type: canary\n", "  type: canary\n  confirm_promotion: manual\n")
    (tmp_path / "routed-manual.yaml").write_text(f"name: routed-manual\n{alerts}{ANALYSIS}{manual}")
    return tmp_path


def settings(
    receivers: dict[str, CaptureServer], alertmanager: str, paging: list[str]
) -> WorkerSettings:
    """The routes as a person writes them in the settings file."""
    return WorkerSettings(
        alert_routes={
            "releases": {
                "type": "webhook",
                "url": receivers["releases"].url,
                "events": ["promoted"],
            },
            "chat": {
                "type": "slack",
                "url": receivers["chat"].url,
                "events": ["started", "stage", "awaiting_approval", "promoted", "aborted"],
            },
            "legacy": {"type": "webhook", "url": receivers["legacy"].url},  # no events: as before
            "oncall": {
                "type": "alertmanager",
                "url": alertmanager,
                **({"events": paging} if paging else {}),
            },
        }
    )


def harness_with(policies: Path, configured: WorkerSettings) -> tuple[Harness, Delivery]:
    platform = MemoryPlatform()
    harness = Harness(policies, lambda: platform)
    harness.clock.now = time.time()  # Alertmanager holds an alert only until its endsAt
    harness.intake.alert_routes = frozenset(configured.alert_routes)
    routes = configured.alert_routes
    delivery = Delivery(
        harness.store,
        {
            name: notifier_for(Route(name, r.type, r.url, r.revealed_headers(), r.severity))
            for name, r in routes.items()
        },
        harness.clock,
        lambda successor, predecessor: None,
        record=harness.intake.record,
        events={name: route.events for name, route in routes.items()},
    )
    return harness, delivery


def submit(harness: Harness, policy: str, app: str) -> str:
    return harness.submit(
        app=app, namespace="shop", version="v2", policy=policy, platform="observe",
        baseline=f'app="{app}",version="v1"', canary=f'app="{app}",version="v2"',
    )  # fmt: skip


def deliver(delivery: Delivery) -> None:
    while settled := delivery.run():
        assert all(item.outcome == "delivered" for item in settled), settled


def kinds(receiver: CaptureServer) -> list[str]:
    return [request.json()["kind"] for request in receiver.requests]


def titles(receiver: CaptureServer) -> list[str]:
    return [request.json()["blocks"][0]["text"]["text"] for request in receiver.requests]


def test_routes_get_the_events_they_follow_and_the_default_is_as_before(
    receivers: dict[str, CaptureServer], alertmanager_server: ServiceProcess, policies: Path
) -> None:
    harness, delivery = harness_with(policies, settings(receivers, alertmanager_server.url, []))
    app = f"routes-{uuid.uuid4().hex[:6]}"
    promoted = submit(harness, "routed", app)
    assert harness.finish(promoted).phase is Phase.PROMOTED
    deliver(delivery)
    deliver(delivery)  # nothing twice
    aborted = submit(harness, "routed", f"{app}-b")
    harness.run(aborted, lambda s: s.stage_index >= 1 and s.awaiting is None)
    assert harness.command(aborted, "abort", reason="bad build") == 202
    assert harness.finish(aborted).phase is Phase.ABORTED
    deliver(delivery)

    assert kinds(receivers["releases"]) == ["promoted"]  # one per promotion, none for the abort
    assert receivers["releases"].requests[0].json()["rollout_id"] == promoted
    assert kinds(receivers["legacy"]) == ["promoted", "aborted"]  # what every route got before
    stages = 5  # the harness's canary: set 20, analyze, set 60, analyze, set 100
    chat = titles(receivers["chat"])
    assert sum("Rollout started" in title for title in chat) == 2
    assert sum("Rollout moved on" in title for title in chat) == stages + 2  # b: stages 1 and 2
    assert sum("Rollout promoted" in title for title in chat) == 1
    assert sum("Rollout aborted" in title for title in chat) == 1
    alerts = list_alerts(alertmanager_server.url, [f'app=~"{app}.*"'])
    assert sorted(a["labels"]["alertname"] for a in alerts) == ["RolloutAborted"]


def test_alertmanager_hears_of_an_approval_wait_only_when_it_asks_and_then_as_info(
    receivers: dict[str, CaptureServer], alertmanager_server: ServiceProcess, policies: Path
) -> None:
    paging = ["aborted", "failed", "awaiting_approval", "started", "stage"]
    harness, delivery = harness_with(policies, settings(receivers, alertmanager_server.url, paging))
    app = f"approve-{uuid.uuid4().hex[:6]}"
    rollout_id = submit(harness, "routed-manual", app)
    harness.run(rollout_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    deliver(delivery)
    (alert,) = list_alerts(alertmanager_server.url, [f'app="{app}"'])
    assert alert["labels"]["alertname"] == "RolloutAwaitingApproval"
    assert alert["labels"]["severity"] == "info"  # worth a look, never a page
    assert any("Rollout awaiting approval" in title for title in titles(receivers["chat"]))
    assert "awaiting_approval" not in kinds(receivers["legacy"])
    assert harness.command(rollout_id, "approve") == 202
    state: RolloutState = harness.finish(rollout_id)
    assert state.phase is Phase.PROMOTED
    deliver(delivery)
    assert kinds(receivers["releases"]) == ["promoted"]
    assert len(list_alerts(alertmanager_server.url, [f'app="{app}"'])) == 1  # no promotion there
