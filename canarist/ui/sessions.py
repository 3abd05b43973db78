"""Dashboard sign-in: a person posts an API token once and gets a session cookie.

The token never goes back to the browser. ``Sessions`` keeps, in the API process's memory, a
``Session`` per random id (32 bytes from ``secrets``): the token's *name*, a CSRF secret and an
expiry. The cookie carries only the id, HttpOnly (no script reads it), SameSite=Strict (no other
site's page sends it), Secure when the request came over HTTPS, with a Max-Age equal to the
session's lifetime (``api.session_seconds``).

Why memory and not the store: a session is a credential, and the StateStore seam holds
rollouts, not credentials; keeping sessions out of Redis means a copy of the store's data
opens nothing, and it needs no change to the workers' seam. The cost is stated, not hidden: a
restart of the API ends every session (the page's script then says so and links to sign-in),
and with several API replicas a sticky route is needed. Each request re-reads the token by its
name from the settings, so removing a token from the settings ends its sessions at once.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from canarist.settings import ApiToken, Settings

COOKIE = "canarist_session"
MAX_SESSIONS = 10_000  # a flood of sign-ins cannot grow the table without bound


@dataclass(frozen=True)
class Session:
    id: str
    token_name: str
    csrf: str
    expires_at: float

    def csrf_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(self.csrf.encode(), offered.encode())


class Sessions:
    """The signed-in sessions of one API process, by id; thread-safe (routes run in threads)."""

    def __init__(self, clock: Callable[[], float], lifetime_seconds: int) -> None:
        self.clock, self.lifetime_seconds = clock, lifetime_seconds
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, token: ApiToken) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            token_name=token.name,
            csrf=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.lifetime_seconds,
        )
        with self._lock:
            self._forget_expired()
            if len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id.values(), key=lambda kept: kept.expires_at)
                del self._by_id[oldest.id]
            self._by_id[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The live session of that id; None when unknown, ended or expired."""
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires_at <= self.clock():
                del self._by_id[session_id]
                return None
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def _forget_expired(self) -> None:
        now = self.clock()
        for session_id in [k for k, s in self._by_id.items() if s.expires_at <= now]:
            del self._by_id[session_id]


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
