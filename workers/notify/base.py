"""The Notifier seam: how a rollout's transition reaches people (Alertmanager, webhooks, Slack).

The engine emits a ``Notify`` action; the store's outbox keeps it and a delivery loop turns it into
a ``Notice`` and calls ``post`` on every route the policy names, until each says it delivered. So
``post`` must be safe to repeat: the same Notice must produce the same request (no clock read at
post time), which is why the Notice carries the moment of the transition itself.

``post`` raises a ``DeliveryError``, whose class says whether retrying can help:
``TemporaryDeliveryError`` (timeouts, 5xx, 408/429, connection refused) or
``PermanentDeliveryError`` (other 4xx, a malformed URL). The seam's errors are drawn with the
workers' others in workers/errors.py; ``UnknownRouteTypeError`` is defined here, beside the
registry that raises it.

A ``Route`` is where notices go, built from the settings' ``AlertRoute`` (workers/settings.py)
with the secrets revealed. Its repr hides the URL's path and the header values, since a Slack
webhook URL is itself a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from analyzer.errors import UnknownNameError
from analyzer.registry import Registry, imported
from workers.errors import NotifyError
from workers.notify.notice import (
    REPORT_URL_TEMPLATE,
    MetricNote,
    Notice,
    report_url,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "IMPLEMENTATIONS",
    "REPORT_URL_TEMPLATE",
    "MetricNote",
    "Notice",
    "Notifier",
    "Route",
    "UnknownRouteTypeError",
    "notifier_for",
    "redacted",
    "report_url",
    "route_types",
]


@dataclass(frozen=True, repr=False)
class Route:
    """One configured destination: ``type`` picks the implementation, ``name`` is what policies say.

    ``headers`` are sent with every post (``Authorization``, ``X-Scope-OrgID``); ``severity`` is the
    Alertmanager severity of aborts and failures on this route.
    """

    name: str
    type: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    severity: str = "critical"

    def __repr__(self) -> str:
        names = sorted(self.headers)
        return (
            f"Route(name={self.name!r}, type={self.type!r}, url={redacted(self.url)!r}, "
            f"headers={names!r}, severity={self.severity!r})"
        )


def redacted(url: str) -> str:
    """``https://hooks.slack.com/…``: scheme and host only, for messages and logs."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "<unparseable URL>"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


class Notifier(Protocol):
    def post(self, notice: Notice) -> None:
        """Deliver ``notice``; raise DeliveryError. Posting the same notice again is harmless for
        Alertmanager (it deduplicates by labels) and idempotent for receivers that honour the
        webhook's ``Idempotency-Key``; Slack shows a repeat only if a delivered post looked failed.
        """
        ...


class UnknownRouteTypeError(NotifyError, UnknownNameError):
    """No notifier is registered for a route's type: never fall back to some other channel."""

    @property
    def route_type(self) -> str:
        return self.name


IMPLEMENTATIONS: Registry[str, str] = Registry(
    "type",
    {
        "alertmanager": "workers.notify.alertmanager:AlertmanagerNotifier",
        "webhook": "workers.notify.webhook:WebhookNotifier",
        "slack": "workers.notify.slack:SlackNotifier",
    },
    UnknownRouteTypeError,
)


def route_types() -> tuple[str, ...]:
    """Every route type this build can post to, sorted."""
    return IMPLEMENTATIONS.names


def notifier_for(route: Route, *, client: httpx.Client | None = None) -> Notifier:
    """A notifier posting to ``route``; ``client`` is shared if given, else the notifier owns one.

    Raises UnknownRouteTypeError for an unregistered type. Implementations are imported on first
    use, so importing this module does not import httpx.
    """
    target = IMPLEMENTATIONS.lookup(route.type, where=f"alert route {route.name!r}")
    notifier: Notifier = imported(target)(route, client=client)
    return notifier
