"""The generic webhook posts the notice as JSON, with the route's headers, to a local receiver."""

from __future__ import annotations

import httpx

from tests.workers.notify.capture import CaptureServer
from tests.workers.notify.samples import notice
from workers.notify.base import Notice, Route, notifier_for
from workers.notify.transport import USER_AGENT


def webhook_route(url: str) -> Route:
    return Route("audit", "webhook", url, {"Authorization": "Bearer s3cret"})


def test_the_body_is_the_notice_with_a_schema_and_a_summary(
    capture: CaptureServer, client: httpx.Client
) -> None:
    sent = notice("aborted")

    notifier_for(webhook_route(capture.url + "/hooks/canarist?team=a"), client=client).post(sent)

    [request] = capture.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hooks/canarist?team=a")
    body = request.json()
    assert body["schema"] == "canarist.notice/v1"
    assert body["summary"] == "Rollout aborted: checkout v2 in shop"
    assert body["kind"] == "aborted"
    assert body["rollout_id"] == "r-1"
    assert body["policy"] == "web-default"
    assert body["report_url"] == "https://canarist.example.com/v1/rollouts/r-1/report"
    assert [metric["name"] for metric in body["metrics"]] == ["error-ratio", "latency-p99"]
    assert body["metrics"][0]["effect_interval"] == [2.1, 7.0]
    receiver_view = {k: v for k, v in body.items() if k not in ("schema", "summary")}
    assert Notice.from_record(receiver_view) == sent


def test_the_route_headers_and_an_idempotency_key_go_along(
    capture: CaptureServer, client: httpx.Client
) -> None:
    notifier_for(webhook_route(capture.url), client=client).post(notice("promoted"))

    [request] = capture.wait_for(1)
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "r-1/1/promoted"
    assert request.headers["user-agent"] == USER_AGENT


def test_every_kind_is_sent(capture: CaptureServer, client: httpx.Client) -> None:
    notifier = notifier_for(webhook_route(capture.url), client=client)

    for kind in ("aborted", "failed", "paused", "promoted"):
        notifier.post(notice(kind))

    assert [request.json()["kind"] for request in capture.wait_for(4)] == [
        "aborted",
        "failed",
        "paused",
        "promoted",
    ]
