"""HTTP for the notifiers: one JSON POST, with httpx's errors translated to DeliveryError.

Every HTTP notifier (Alertmanager, webhook, Slack) sends one JSON document per notice and reads
nothing back but the status, so the mapping from what went wrong to "retry or give up" lives
here, once:

- 2xx: delivered.
- 408, 429, 5xx, a timeout, a refused or dropped connection: temporary (the outbox retries,
  honouring ``Retry-After`` when the receiver sent one).
- any other status, an unsupported scheme or a malformed URL or header: permanent.

Messages name the route and the URL's scheme and host only: a Slack webhook URL is a secret.
Redirects are not followed: a POST that is redirected is a misconfigured URL, not a delivery.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx

from workers.errors import PermanentDeliveryError, TemporaryDeliveryError
from workers.notify.base import Notice, Route, redacted

USER_AGENT = "canarist-notify/0.1"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per request: a stuck receiver delays the outbox's next retry, never the abort itself."""
_BODY_EXCERPT = 200


def new_client() -> httpx.Client:
    """A client with the notifiers' timeouts; proxies come from the environment as usual."""
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False)


class HttpNotifier(ABC):
    """A notifier that POSTs ``payload(notice)`` as JSON to ``endpoint``; subclasses say what.

    Owns its client unless one is given (then the caller closes it). ``payload`` returning None
    means this route type does not carry that kind of notice: ``post`` then sends nothing.
    """

    def __init__(self, route: Route, *, client: httpx.Client | None = None) -> None:
        self.route = route
        self._owns_client = client is None
        self.client = client if client is not None else new_client()

    @property
    def endpoint(self) -> str:
        return self.route.url

    @abstractmethod
    def payload(self, notice: Notice) -> Any:
        """The JSON document to post, or None to send nothing for this notice."""

    def headers(self, notice: Notice) -> dict[str, str]:
        return dict(self.route.headers)

    def post(self, notice: Notice) -> None:
        payload = self.payload(notice)
        if payload is not None:
            post_json(self.client, self.endpoint, payload, self.headers(notice), self.route.name)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def post_json(
    client: httpx.Client, url: str, payload: Any, headers: Mapping[str, str], route_name: str
) -> None:
    """POST ``payload`` as JSON; return on 2xx, else raise DeliveryError (see the module doc)."""
    where = f"alert route {route_name!r} ({redacted(url)})"
    try:
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise PermanentDeliveryError(f"{where}: the payload is not JSON: {exc}") from exc
    sent = {"User-Agent": USER_AGENT, **headers, "Content-Type": "application/json"}
    try:
        response = client.post(url, content=body, headers=sent)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
        raise PermanentDeliveryError(f"{where}: cannot send: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise TemporaryDeliveryError(f"{where}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TemporaryDeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    excerpt = " ".join(response.text[:_BODY_EXCERPT].split())
    message = f"{where}: HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if status >= 500 or status in (408, 429):
        raise TemporaryDeliveryError(message, retry_after=retry_after(response), status=status)
    raise PermanentDeliveryError(message, status=status)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds from now (delta-seconds or an HTTP date), if it was sent."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
