"""A generic JSON webhook: the notice itself, for a receiver that wants data, not prose.

The body is ``Notice.to_record()`` plus ``schema`` (``canarist.notice/v1``, bumped on a breaking
change) and ``summary`` (the one-line title). The route's headers go with it (``Authorization``),
and ``Idempotency-Key`` carries the notice's dedupe key: the outbox delivers at least once, so a
post whose answer was lost is sent again, and a receiver that remembers keys can drop the repeat.
Every kind a route subscribes to is sent (its ``events``), promotions and steps included.
"""

from __future__ import annotations

from typing import Any

from workers.notify.base import Notice
from workers.notify.transport import HttpNotifier

SCHEMA = "canarist.notice/v1"


class WebhookNotifier(HttpNotifier):
    """POSTs every notice as JSON to ``route.url``."""

    def payload(self, notice: Notice) -> dict[str, Any]:
        return webhook_body(notice)

    def headers(self, notice: Notice) -> dict[str, str]:
        key = {"Idempotency-Key": notice.dedupe_key} if notice.dedupe_key else {}
        return {**key, **self.route.headers}


def webhook_body(notice: Notice) -> dict[str, Any]:
    return {"schema": SCHEMA, "summary": notice.title, **notice.to_record()}
