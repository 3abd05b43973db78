"""``canarist status`` says when an alert was given up: whoever looks at the rollout learns that
nobody was paged, however many events came after."""

from __future__ import annotations

from fastapi.testclient import TestClient
from rich.console import Console

from canarist.api import create_app
from canarist.cli.status_view import RECENT_EVENTS, status_view
from tests.canarist.test_api import POLICIES, Api, Clock, api_settings, bearer
from workers.actions import RecordEvent, Released
from workers.delivery import Delivery
from workers.intake import Intake
from workers.notify.memory import MemoryNotifier
from workers.store import MemoryStateStore


def test_status_shows_an_alert_that_was_given_up() -> None:
    store, clock = MemoryStateStore(), Clock()
    intake = Intake(store, POLICIES, clock, lambda *task: None, alert_routes={"oncall"})
    oncall = MemoryNotifier()
    oncall.fail_next(1, temporary=False)
    delivery = Delivery(
        store,
        {"oncall": oncall},
        clock,
        lambda successor, predecessor: intake.tell(successor, Released(predecessor)),
        record=intake.record,
    )
    with TestClient(create_app(api_settings(), intake)) as client:
        rollout_id = Api(client, store, clock).submit()
        intake.command(rollout_id, "abort", "carol", reason="bad build")
        clock.now += 1
        assert [settled.outcome for settled in delivery.run()] == ["given_up"]
        for index in range(RECENT_EVENTS + 2):  # push it out of the recent events
            intake.record(rollout_id, RecordEvent("note", f"later event {index}"))
        detail = client.get(f"/v1/rollouts/{rollout_id}", headers=bearer("alice")).json()

    console = Console(record=True, width=200)
    console.print(status_view(detail))
    shown = console.export_text()
    (line,) = [text for text in shown.splitlines() if text.startswith("NOT ALERTED")]
    assert "aborted alert not delivered to route 'oncall': refused for good" in line
