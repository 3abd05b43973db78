"""A Slack-compatible incoming webhook: a message a person reads in a channel.

The body has ``text`` (the fallback shown in push notifications and by clients without Block Kit)
and ``blocks``: a header with the title, a section with the reason, a section listing the metrics
behind the decision, a context line naming the rollout, and the report link. Mattermost and
Rocket.Chat accept the same ``text`` and ignore what they do not render.

Slack treats ``&``, ``<`` and ``>`` as markup (``<!channel>`` would ping everyone), so text from
policies, judges and people is escaped; texts are cut to Slack's limits (a header 150 characters,
a section 3000) so a long reason cannot get the whole message refused with ``invalid_blocks``.
Slack has no idempotency key: a post that reached Slack but whose answer was lost is repeated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workers.notify.base import Notice
from workers.notify.transport import HttpNotifier

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FALLBACK_LIMIT = 1000
EMOJI = {
    "aborted": ":rotating_light:",
    "failed": ":x:",
    "paused": ":double_vertical_bar:",
    "promoted": ":white_check_mark:",
    "started": ":rocket:",
    "stage": ":arrow_forward:",
    "awaiting_approval": ":raised_hand:",
}


class SlackNotifier(HttpNotifier):
    """POSTs every notice as a Block Kit message to the incoming webhook at ``route.url``."""

    def payload(self, notice: Notice) -> dict[str, Any]:
        return slack_message(notice)


def slack_message(notice: Notice) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{EMOJI[notice.kind]} {notice.title}", HEADER_LIMIT)},
        {"type": "section", "text": _mrkdwn(f"*Reason:* {escape(notice.reason)}")},
    ]
    if notice.metrics:
        heading = "*Failing metrics*" if notice.kind in ("aborted", "failed") else "*Metrics*"
        lines = [f"• {escape(metric.line())}" for metric in notice.metrics]
        blocks.append({"type": "section", "text": _mrkdwn("\n".join([heading, *lines]))})
    when = datetime.fromtimestamp(notice.occurred_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    context = (
        f"rollout `{escape(notice.rollout_id)}` · policy `{escape(notice.policy)}` · "
        f"namespace `{escape(notice.namespace)}` · {when}"
    )
    blocks.append({"type": "context", "elements": [_mrkdwn(context)]})
    if notice.report_url:
        link = f"<{escape(notice.report_url)}|Open the report>"
        blocks.append({"type": "section", "text": _mrkdwn(link)})
    fallback = _cut(f"{notice.title}: {notice.reason}", FALLBACK_LIMIT)
    return {"text": escape(fallback), "blocks": blocks}


def escape(text: str) -> str:
    """Slack's three control characters, as its message formatting asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, SECTION_LIMIT)}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
