"""The Slack-compatible webhook: text plus blocks a person can read, escaped and within limits."""

from __future__ import annotations

from dataclasses import replace

import httpx

from tests.workers.notify.capture import CaptureServer
from tests.workers.notify.samples import notice
from workers.notify.base import Route, notifier_for
from workers.notify.slack import SECTION_LIMIT, slack_message


def test_an_abort_is_a_header_the_reason_the_metrics_and_the_link(
    capture: CaptureServer, client: httpx.Client
) -> None:
    route = Route("team-channel", "slack", capture.url + "/services/T0/B0/XXX")

    notifier_for(route, client=client).post(notice("aborted"))

    [request] = capture.wait_for(1)
    assert request.path == "/services/T0/B0/XXX"
    assert request.headers["content-type"] == "application/json"
    message = request.json()
    assert message["text"].startswith("Rollout aborted: checkout v2 in shop: analysis failed")
    header, reason, metrics, context, link = message["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":rotating_light: Rollout aborted: checkout v2 in shop",
            "emoji": True,
        },
    }
    assert reason["text"]["type"] == "mrkdwn"
    assert reason["text"]["text"].startswith("*Reason:* analysis failed (1 FAIL look(s)")
    lines = metrics["text"]["text"].splitlines()
    assert lines[0] == "*Failing metrics*"
    assert lines[1].startswith("• error-ratio FAIL (critical): canary error-ratio ratio 2.1%")
    assert lines[2].startswith("• latency-p99 INCONCLUSIVE")
    assert context["type"] == "context"
    assert context["elements"][0]["text"].startswith(
        "rollout `r-1` · policy `web-default` · namespace `shop` · 2023-11-14 22:13:20 UTC"
    )
    assert link["text"]["text"] == (
        "<https://canarist.example.com/v1/rollouts/r-1/report|Open the report>"
    )


def test_text_from_people_cannot_ping_the_channel() -> None:
    sent = replace(notice("aborted"), reason="abort by mallory: <!channel> & <@U123>")

    message = slack_message(sent)

    assert "<!channel>" not in str(message)
    assert message["blocks"][1]["text"]["text"] == (
        "*Reason:* abort by mallory: &lt;!channel&gt; &amp; &lt;@U123&gt;"
    )


def test_long_texts_are_cut_to_slack_limits() -> None:
    sent = replace(notice("aborted"), reason="x" * 10_000, app="a" * 300)

    message = slack_message(sent)

    assert len(message["blocks"][0]["text"]["text"]) == 150
    assert len(message["blocks"][1]["text"]["text"]) == SECTION_LIMIT
    assert message["blocks"][1]["text"]["text"].endswith("…")
    assert len(message["text"]) <= 1000


def test_a_notice_without_metrics_or_link_has_just_header_reason_and_context() -> None:
    sent = replace(notice("promoted"), metrics=(), report_url=None, reason="v2 is stable")

    message = slack_message(sent)

    assert [block["type"] for block in message["blocks"]] == ["header", "section", "context"]
    assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark: Rollout promoted")
