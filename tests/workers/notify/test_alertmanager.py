"""Alertmanager: aborts posted to the real Alertmanager 0.25 of the test stack and read back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from canarist.demo.stack import ServiceProcess, free_port, list_alerts, start_alertmanager
from tests.waiting import wait_until
from tests.workers.notify.capture import CaptureServer
from tests.workers.notify.samples import fresh_notice, notice
from workers.errors import DeliveryError
from workers.notify.alertmanager import AlertmanagerNotifier, alerts_for
from workers.notify.base import Notice, Route, notifier_for


def route_to(url: str, severity: str = "critical") -> Route:
    return Route("oncall", "alertmanager", url, {"X-Scope-OrgID": "team-a"}, severity)


def held(alertmanager: ServiceProcess, sent: Notice) -> list[dict[str, Any]]:
    return list_alerts(alertmanager.url, [f'rollout_id="{sent.rollout_id}"'])


def test_an_abort_reads_back_with_its_labels_and_annotations(
    alertmanager_server: ServiceProcess, client: httpx.Client
) -> None:
    sent = fresh_notice("aborted")

    notifier_for(route_to(alertmanager_server.url), client=client).post(sent)

    [alert] = held(alertmanager_server, sent)
    assert alert["labels"] == {
        "alertname": "RolloutAborted",
        "app": sent.app,
        "namespace": "shop",
        "policy": "web-default",
        "severity": "critical",
        "rollout_id": sent.rollout_id,
    }
    annotations = alert["annotations"]
    assert annotations["summary"] == f"Rollout aborted: {sent.app} v2 in shop"
    assert annotations["description"] == sent.reason
    assert annotations["failed_metrics"].startswith("error-ratio FAIL (critical): canary error")
    assert "latency-p99 INCONCLUSIVE" in annotations["failed_metrics"]
    assert annotations["report_url"] == sent.report_url
    assert annotations["version"] == "v2"
    assert alert["generatorURL"] == sent.report_url
    starts_at = _parse(alert["startsAt"])
    assert abs(starts_at.timestamp() - sent.occurred_at) < 0.002
    assert _parse(alert["endsAt"]) - starts_at == timedelta(hours=4)


def test_posting_the_same_notice_twice_keeps_one_alert(
    alertmanager_server: ServiceProcess, client: httpx.Client
) -> None:
    sent = fresh_notice("aborted")
    notifier = notifier_for(route_to(alertmanager_server.url), client=client)

    notifier.post(sent)
    [first] = list_alerts(alertmanager_server.url, [f'app="{sent.app}"'])
    time.sleep(0.05)  # not a wait: the retry comes later, and the alert's times must not move
    notifier.post(sent)  # the outbox's retry after a lost answer

    [again] = list_alerts(alertmanager_server.url, [f'app="{sent.app}"'])
    assert again["fingerprint"] == first["fingerprint"]
    assert (again["startsAt"], again["endsAt"]) == (first["startsAt"], first["endsAt"])
    assert again["annotations"] == first["annotations"]


def test_a_pause_is_a_warning_and_a_promotion_is_not_sent(
    alertmanager_server: ServiceProcess, client: httpx.Client
) -> None:
    paused, promoted = fresh_notice("paused"), fresh_notice("promoted")
    notifier = notifier_for(route_to(alertmanager_server.url), client=client)

    notifier.post(paused)
    notifier.post(promoted)

    [alert] = held(alertmanager_server, paused)
    assert alert["labels"]["alertname"] == "RolloutPaused"
    assert alert["labels"]["severity"] == "warning"
    assert held(alertmanager_server, promoted) == []


def test_a_failure_carries_the_route_severity() -> None:
    [alert] = alerts_for(notice("failed"), "page") or []

    assert alert["labels"]["alertname"] == "RolloutFailed"
    assert alert["labels"]["severity"] == "page"
    assert alerts_for(notice("promoted"), "page") is None


def test_retries_of_a_notice_are_byte_for_byte_the_same_request(
    capture: CaptureServer, client: httpx.Client
) -> None:
    sent = notice("aborted")
    with AlertmanagerNotifier(route_to(capture.url + "/am/"), client=client) as notifier:
        notifier.post(sent)
        time.sleep(0.01)  # not a wait: the retry is made later, and the bytes must not change
        notifier.post(sent)

    first, second = capture.wait_for(2)
    assert first.body == second.body
    assert first.path == "/am/api/v2/alerts"
    assert first.headers["x-scope-orgid"] == "team-a"
    assert first.json()[0]["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert first.json()[0]["endsAt"] == "2023-11-15T02:13:20.000Z"


def test_a_refused_connection_is_temporary(client: httpx.Client) -> None:
    notifier = notifier_for(route_to(f"http://127.0.0.1:{free_port()}"), client=client)

    with pytest.raises(DeliveryError) as raised:
        notifier.post(notice())

    assert raised.value.temporary
    assert raised.value.status is None


def test_a_wrong_path_on_a_real_alertmanager_is_permanent(
    alertmanager_server: ServiceProcess, client: httpx.Client
) -> None:
    notifier = notifier_for(route_to(alertmanager_server.url + "/no-such-prefix"), client=client)

    with pytest.raises(DeliveryError) as raised:
        notifier.post(fresh_notice())

    assert not raised.value.temporary
    assert raised.value.status == 404


def test_a_nonpositive_resolve_after_is_refused() -> None:
    with pytest.raises(ValueError, match="resolve_after"):
        AlertmanagerNotifier(route_to("http://127.0.0.1:9"), resolve_after=timedelta(0))


@pytest.fixture(scope="module")
def receiver() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@pytest.fixture(scope="module")
def notifying_alertmanager(
    tmp_path_factory: pytest.TempPathFactory, receiver: CaptureServer
) -> Iterator[ServiceProcess]:
    """An Alertmanager of our own whose receiver is a webhook to ``receiver``."""
    workdir: Path = tmp_path_factory.mktemp("alertmanager-notifying")
    service = start_alertmanager(workdir, webhook_url=receiver.url + "/notifications")
    yield service
    service.stop()


def test_a_retried_post_makes_no_second_notification(
    notifying_alertmanager: ServiceProcess, receiver: CaptureServer, client: httpx.Client
) -> None:
    notifier = notifier_for(route_to(notifying_alertmanager.url), client=client)
    sent = fresh_notice("aborted")

    notifier.post(sent)
    [first] = receiver.wait_for(1)
    [alert] = first.json()["alerts"]
    assert alert["labels"]["rollout_id"] == sent.rollout_id
    assert alert["status"] == "firing"

    notifier.post(sent)  # a retry
    other = fresh_notice("aborted")  # then a marker: a new rollout's abort does notify
    notifier.post(other)

    # A notification the retry caused would be sent at the group's first flush after the
    # retry, so by the marker's flush at the latest: once the marker is in, any was too.
    wait_until("the marker's notification", lambda: _notified(receiver, other.rollout_id))
    notified = list(receiver.requests)
    assert len(notified) == 2, [request.json() for request in notified]
    rollouts = [entry["labels"]["rollout_id"] for entry in notified[1].json()["alerts"]]
    assert sorted(rollouts) == sorted([sent.rollout_id, other.rollout_id])  # no third alert


def _notified(receiver: CaptureServer, rollout_id: str) -> bool:
    return any(
        alert["labels"]["rollout_id"] == rollout_id
        for request in list(receiver.requests)
        for alert in request.json()["alerts"]
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
