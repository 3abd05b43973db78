"""Dashboard sign-in: a person posts an API token once and gets a session cookie.

The token never goes back to the browser. The cookie carries only the session's id (32 random
bytes from ``secrets``), HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it), Secure when the request came over HTTPS, with a Max-Age equal to the session's
lifetime (``api.session_seconds``).

Why the store (Redis) and not the API process's memory: the API runs as several replicas behind
one Service with no sticky routing, and the dashboard must keep working when the API restarts.
Sessions in one process's memory would look signed-out on every other replica and would all
end at each restart; kept in the StateStore (``store.sessions``) every API process sees the
same sessions and they outlive a restart.

What is stored, under the SHA-256 of the session id (so a copy of Redis's data holds no cookie
that opens anything): a small JSON record with the token's *name* (never the token), the
session's CSRF secret and its expiry. The record expires on Redis's clock after the lifetime
(SET PX), and ``find`` also checks the expiry on the API's clock. There is no cap on the number
of sessions: only a valid token can start one, each is a few hundred bytes and expires on its
own, so Redis's TTL bounds them; a new sign-in in the same browser ends that browser's old one.

Each request re-reads the token by its name from the settings, so removing a token from the
settings ends its sessions at once. Sign-out deletes the record, on every replica at once. A
store that cannot be reached raises StoreUnavailable, which the API answers with a 503 (never
a sign-out: a session that cannot be read is not a session that ended).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from canarist.settings import ApiToken, Settings
from workers.store import SessionRecords

COOKIE = "canarist_session"
RECORD_FORMAT = 1
log = logging.getLogger("canarist.ui")


@dataclass(frozen=True)
class Session:
    id: str
    token_name: str
    csrf: str
    expires_at: float

    def csrf_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(self.csrf.encode(), offered.encode())


def record_key(session_id: str) -> str:
    """Where a session is kept: the SHA-256 of its id, never the id the cookie carries."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """The signed-in sessions, kept in the store's ``sessions`` so every API process shares
    them; ``clock`` (wall time) stamps and checks each session's expiry."""

    def __init__(
        self, records: SessionRecords, clock: Callable[[], float], lifetime_seconds: int
    ) -> None:
        self.records, self.clock, self.lifetime_seconds = records, clock, lifetime_seconds

    def start(self, token: ApiToken) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            token_name=token.name,
            csrf=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.lifetime_seconds,
        )
        record = {
            "format": RECORD_FORMAT,
            "token_name": session.token_name,
            "csrf": session.csrf,
            "expires_at": session.expires_at,
        }
        self.records.put(record_key(session.id), json.dumps(record), self.lifetime_seconds)
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The live session of that id; None when unknown, ended or expired. StoreUnavailable
        when the store cannot say."""
        if not session_id or len(session_id) > 100:
            return None
        key = record_key(session_id)
        text = self.records.get(key)
        if text is None:
            return None
        try:
            kept = json.loads(text)
            if kept["format"] != RECORD_FORMAT:
                raise ValueError(f"format {kept['format']!r}")
            session = Session(
                session_id, str(kept["token_name"]), str(kept["csrf"]), float(kept["expires_at"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a dashboard session record is unreadable (%s): ended", exc)
            self.records.delete(key)
            return None
        if session.expires_at <= self.clock():
            self.records.delete(key)
            return None
        return session

    def end(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 100:
            self.records.delete(record_key(session_id))


def token_named(settings: Settings, name: str) -> ApiToken | None:
    return next((token for token in settings.api_tokens if token.name == name), None)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, session: Session, lifetime: int) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=lifetime,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/ui", httponly=True, samesite="strict", secure=is_https(request)
    )
