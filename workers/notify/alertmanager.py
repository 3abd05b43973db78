"""Alertmanager: a rollout's abort or failure as an alert through the v2 API.

``POST {url}/api/v2/alerts`` with a one-element list of postable alerts: ``labels`` identify the
alert (Alertmanager deduplicates and groups by them), ``annotations`` describe it, ``startsAt`` and
``endsAt`` bound it, ``generatorURL`` links back to its cause (the rollout's report).

Labels: ``alertname`` (RolloutAborted, RolloutFailed, RolloutPaused or RolloutAwaitingApproval),
``app``, ``namespace``, ``policy``, ``severity`` and ``rollout_id``. ``rollout_id`` makes each
rollout's alert its own; the outbox's retries of one notice post identical alerts, which
Alertmanager merges into the alert it holds (same label fingerprint: earliest startsAt, newest
annotations), so a retry never becomes a
second alert and, while the group's firing set is unchanged, never a second notification.

Annotations: ``summary`` (one line), ``description`` (the engine's reason), ``failed_metrics`` (one
line per metric behind the decision), ``version`` and ``report_url`` when known.

Choices, and why:

- Aborts and failures carry the route's ``severity`` (critical by default). A pause waits for a
  person to promote, resume or abort: it is ``RolloutPaused`` with severity ``warning`` — worth a
  look during working hours, not a page. Promotions are not sent here at all: Alertmanager is for
  things that need a person, and a successful release needs none (send it to a webhook or Slack).
- A rollout awaiting approval (``confirm_promotion: manual``) also waits for a person, and nothing
  is wrong: ``RolloutAwaitingApproval``, severity ``info`` (a route's ``severity`` never applies),
  sent only to a route whose ``events`` name ``awaiting_approval``. A rollout's start and each
  of its steps (``started``, ``stage``) are never sent here, whatever the route subscribes to:
  they are for a chat or a webhook that follows a release.
- ``startsAt`` is the moment of the transition and ``endsAt`` comes ``resolve_after`` (4 hours by
  default) later. Canarist never sends a resolve: the rollback has already happened and nobody
  "fixes" an abort in Canarist, so without an end the alert would fire until Alertmanager's
  ``resolve_timeout`` after our last post, i.e. after 5 minutes — too soon for a person to see it.
  Both times come from the notice, not the clock, so a retry is the same alert; a retry delivered
  after ``endsAt`` posts an already-resolved alert, which Alertmanager keeps but does not notify.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from workers.notify.base import Notice, Route
from workers.notify.transport import HttpNotifier

API_PATH = "/api/v2/alerts"
RESOLVE_AFTER = timedelta(hours=4)
PAUSE_SEVERITY = "warning"
APPROVAL_SEVERITY = "info"
ALERT_NAMES = {
    "aborted": "RolloutAborted",
    "failed": "RolloutFailed",
    "paused": "RolloutPaused",
    "awaiting_approval": "RolloutAwaitingApproval",
}
_SEVERITY_OF = {"paused": PAUSE_SEVERITY, "awaiting_approval": APPROVAL_SEVERITY}
"""The kinds this notifier sends; a promotion, a start and a step are skipped (see the module
docstring)."""


class AlertmanagerNotifier(HttpNotifier):
    """Posts aborts, failures and pauses to the Alertmanager at ``route.url`` (its base URL)."""

    def __init__(
        self,
        route: Route,
        *,
        client: httpx.Client | None = None,
        resolve_after: timedelta = RESOLVE_AFTER,
    ) -> None:
        super().__init__(route, client=client)
        if resolve_after <= timedelta(0):
            raise ValueError(
                "resolve_after must be positive: Alertmanager rejects endsAt <= startsAt"
            )
        self.resolve_after = resolve_after

    @property
    def endpoint(self) -> str:
        base = self.route.url.rstrip("/")
        return base if base.endswith(API_PATH) else base + API_PATH

    def payload(self, notice: Notice) -> list[dict[str, Any]] | None:
        return alerts_for(notice, self.route.severity, self.resolve_after)


def alerts_for(
    notice: Notice, severity: str, resolve_after: timedelta = RESOLVE_AFTER
) -> list[dict[str, Any]] | None:
    """The postable alerts for ``notice`` (one), or None for a kind Alertmanager does not carry."""
    alertname = ALERT_NAMES.get(notice.kind)
    if alertname is None:
        return None
    labels = {
        "alertname": alertname,
        "app": notice.app,
        "namespace": notice.namespace,
        "policy": notice.policy,
        "severity": _SEVERITY_OF.get(notice.kind, severity),
        "rollout_id": notice.rollout_id,
    }
    annotations = {
        "summary": notice.title,
        "description": notice.reason,
        "failed_metrics": notice.metrics_text(),
        "version": notice.version,
        "report_url": notice.report_url or "",
    }
    starts_at = datetime.fromtimestamp(notice.occurred_at, UTC)
    alert: dict[str, Any] = {
        # An empty label is no label to Alertmanager; an empty annotation is noise.
        "labels": {name: value for name, value in labels.items() if value},
        "annotations": {name: value for name, value in annotations.items() if value},
        "startsAt": _rfc3339(starts_at),
        "endsAt": _rfc3339(starts_at + resolve_after),
    }
    if notice.report_url:
        alert["generatorURL"] = notice.report_url
    return [alert]


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
