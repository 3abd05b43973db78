"""Service settings: one root model, small groups, from CANARIST_* variables or a YAML file.

Environment variables win over the file (``CANARIST_REDIS__URL=redis://…`` sets ``redis.url``);
``CANARIST_SETTINGS_FILE`` names the YAML file. Secrets stay here, never in a policy or a job:
alert routes carry their URLs and credentials, and API tokens are stored only as SHA-256 hashes.

A token holds roles (``read``, ``submit``, ``operate``, ``admin``), and least privilege is the
default: an entry that names none may only read, so a token pasted without thought cannot start or
stop a rollout.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

SETTINGS_FILE_VARIABLE = "CANARIST_SETTINGS_FILE"
MIN_REPORT_SECRET_CHARS = 16


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(Group):
    url: str = Field(default="redis://127.0.0.1:6379/0", description="broker and state store")


class PrometheusSettings(Group):
    url: str = "http://127.0.0.1:9090"
    timeout_seconds: float = Field(default=10.0, gt=0, description="per query")
    bearer_token: SecretStr | None = None


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


class AlertRoute(Group):
    """Where alerts go; a policy names routes, the service decides where they lead."""

    type: Literal["alertmanager", "webhook", "slack"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    severity: str = "critical"


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
        "resume, abort, promote, retry); admin (all). submit and operate imply read. "
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CANARIST_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alert_routes: dict[str, AlertRoute] = Field(default_factory=dict)
    api: ApiSettings = Field(default_factory=ApiSettings)
    api_tokens: list[ApiToken] = Field(default_factory=list)
    policy_dir: Path = Path("policies")
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://",
        description="where the CLI finds the API (CANARIST_API_URL)",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="where people reach the API; alerts link to rollouts under it",
    )
    report_secret: SecretStr | None = Field(
        default=None,
        description=(
            "signs the report links in alerts (?sig=HMAC-SHA256) so a browser opens them "
            "without a token; at least 16 characters; change it to revoke every link "
            "(CANARIST_REPORT_SECRET)"
        ),
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serve the workers' Prometheus metrics on this port (the API has /metrics)",
    )

    @field_validator("report_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_REPORT_SECRET_CHARS:
            raise ValueError(
                f"report_secret must be at least {MIN_REPORT_SECRET_CHARS} characters "
                "(e.g. the output of 'openssl rand -hex 32')"
            )
        return secret

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        settings_file = os.environ.get(SETTINGS_FILE_VARIABLE)
        if settings_file:
            if not Path(settings_file).is_file():
                raise FileNotFoundError(f"{SETTINGS_FILE_VARIABLE}={settings_file}: no such file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=settings_file))
        return tuple(sources)

    def token_for(self, token: str) -> ApiToken | None:
        """The configured token matching ``token``, compared in constant time."""
        found = None
        for candidate in self.api_tokens:
            if candidate.matches(token):
                found = candidate
        return found
