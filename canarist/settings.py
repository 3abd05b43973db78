"""The service's settings: the workers' root (workers/settings.py) and what only the API and CLI
read: API tokens and limits, and where the CLI finds the API.

Every process loads this one model (``canarist api|worker|beat``, the CLI), and the workers' own
entry points load its root, so each variable means the same everywhere; workers/settings.py says
where values come from. Unlike the root, this refuses a key of the settings file it does not
know. API tokens are stored only as SHA-256 hashes.

A token holds roles (``read``, ``submit``, ``operate``, ``admin``), and least privilege is the
default: an entry that names none may only read, so a token pasted without thought cannot start or
stop a rollout.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.settings import (
    MIN_REPORT_SECRET_CHARS,
    SETTINGS_FILE_VARIABLE,
    AlertRoute,
    Group,
    PrometheusSettings,
    RedisSettings,
    WorkerSettings,
)

__all__ = [
    "MIN_REPORT_SECRET_CHARS",
    "ROLES",
    "SETTINGS_FILE_VARIABLE",
    "AlertRoute",
    "ApiSettings",
    "ApiToken",
    "PrometheusSettings",
    "RedisSettings",
    "Role",
    "Settings",
    "hash_token",
    "new_token",
]


class ApiSettings(Group):
    """Bounds the API puts on what a caller can cost it."""

    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="a larger request body is refused with 413 before it is parsed",
    )
    store_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how long a request waits for the state store before it answers 503; "
        "the workers keep their own, longer timeouts",
    )
    session_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="how long a dashboard sign-in lasts (canarist/ui/sessions.py) before the "
        "person signs in again with their token",
    )


Role = Literal["read", "submit", "operate", "admin"]
ROLES: tuple[Role, ...] = ("read", "submit", "operate", "admin")
# What each role lets a token do: submitting or steering a rollout is pointless without
# following it, so both imply read; admin implies every role.
_GRANTS: dict[Role, frozenset[Role]] = {
    "read": frozenset({"read"}),
    "submit": frozenset({"submit", "read"}),
    "operate": frozenset({"operate", "read"}),
    "admin": frozenset(ROLES),
}


class ApiToken(Group):
    """A bearer token allowed into the API, scoped to namespaces (``*`` for all) and roles."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]+$", description="recorded on every action")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of the token, never the token")
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    roles: list[Role] = Field(
        default_factory=lambda: list[Role](["read"]),
        min_length=1,
        description="read (list, status, report); submit (queue rollouts); operate (pause, "
        "resume, abort, promote, retry, approve); admin (all). submit and operate imply read. "
        "Default: read only",
    )

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.sha256, hash_token(token))

    def allows(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces

    def grants(self, role: Role) -> bool:
        return any(role in _GRANTS[held] for held in self.roles)


def hash_token(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is the right hash (no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "cnr_" + secrets.token_urlsafe(32)


class Settings(WorkerSettings):
    """The workers' root and the API's and CLI's own groups; unknown keys are refused."""

    model_config = SettingsConfigDict(extra="forbid")

    api: ApiSettings = Field(default_factory=ApiSettings)
    api_tokens: list[ApiToken] = Field(default_factory=list)
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://",
        description="where the CLI finds the API (CANARIST_API_URL)",
    )

    def token_for(self, token: str) -> ApiToken | None:
        """The configured token matching ``token``, compared in constant time."""
        found = None
        for candidate in self.api_tokens:
            if candidate.matches(token):
                found = candidate
        return found
