"""The service's settings: one root model of small groups, from CANARIST_* variables or a file.

The workers own the root, ``WorkerSettings``: what the worker, the beat and the worker's liveness
probe (``celery -A workers.celery_app``) read. ``canarist.settings.Settings`` extends it with what
only the API and the CLI read (API tokens and limits, the API's URL), so every process reads each
variable the same way, and the workers import nothing from canarist.

A value comes from the first of these that has it (group by group field, alert route by route):
keyword arguments, ``CANARIST_*`` variables (nested with ``__``: ``CANARIST_REDIS__URL`` sets
``redis.url``), then the YAML file named by ``CANARIST_SETTINGS_FILE``. ``CANARIST_ALERT_ROUTES``
holds the routes as JSON, or the path of a YAML/JSON file holding them (or a settings file with an
``alert_routes`` key). Routes are validated by ``AlertRoute`` once, where they are read, so that a
bad one is refused naming its variable or file and the route::

    CANARIST_ALERT_ROUTES: alert route 'oncall' needs at least a type and a url (missing: url)

An optional value set empty (``CANARIST_PUBLIC_URL=``, as a manifest may leave it) is unset.

Secrets stay here, never in a policy or a job: alert routes carry their URLs and credentials.

The workers' root ignores top-level keys of the file that it does not know: they may be the API's
(``api_tokens``), which it cannot name. ``canarist.settings.Settings`` refuses them, and it is
what ``canarist api|worker|beat`` load, so a misspelt key stops every process at start-up.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from workers.actions import NotifyKind
from workers.errors import SettingsError

SETTINGS_FILE_VARIABLE = "CANARIST_SETTINGS_FILE"
ROUTES_VARIABLE = "CANARIST_ALERT_ROUTES"
MIN_REPORT_SECRET_CHARS = 16
DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_ROUTES = "alert_routes"
_HOOK_ROUTES, HOOK_ROUTES_VARIABLE = "hook_routes", "CANARIST_HOOK_ROUTES"


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(Group):
    url: str = Field(default="redis://127.0.0.1:6379/0", description="broker and state store")


class PrometheusSettings(Group):
    url: str = "http://127.0.0.1:9090"
    timeout_seconds: float = Field(default=10.0, gt=0, description="per query")
    bearer_token: SecretStr | None = None
    refetch_seconds: float = Field(
        default=120.0,
        ge=0,
        description="a look asks again for the instants of this last stretch of its window, "
        "for samples that arrive late (scrape lag, remote write); older instants are reused",
    )

    @field_validator("bearer_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value


DEFAULT_EVENTS: tuple[NotifyKind, ...] = ("aborted", "failed", "paused", "promoted")
"""What a route without ``events`` receives: every kind there was before routes chose (each
notifier still skips what it never carries: Alertmanager, promotions)."""


class AlertRoute(Group):
    """Where alerts go; a policy names routes, the service decides where they lead.

    Numbers are read as text (``X-Priority: 1`` in YAML is the header value "1")."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    type: Literal["alertmanager", "webhook", "slack"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    severity: str = "critical"
    events: tuple[NotifyKind, ...] = Field(
        default=DEFAULT_EVENTS,
        description=(
            "the notices this route receives, of those its policies name it for: started, stage "
            "(each stage entered), paused, awaiting_approval, promoted, aborted, failed; by "
            "default aborted, failed, paused and promoted, as before routes could choose"
        ),
    )

    @field_validator("headers", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value  # ``headers:`` left empty in YAML

    def revealed_headers(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.headers.items()}


class HookRoute(Group):
    """Where a policy's HTTP hook is sent (analyzer/policy/hooks.py names it; workers/hooks.py
    calls it): the URL, the secret the body is signed with, and extra headers. Set as JSON in
    ``CANARIST_HOOK_ROUTES`` or under ``hook_routes`` in the settings file. A refusal never
    quotes the route: its URL and secret are credentials."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key of the body")
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    def revealed_headers(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.headers.items()}


class WorkerSettings(BaseSettings):
    """The root: what every process reads. See the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix="CANARIST_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alert_routes: dict[str, AlertRoute] = Field(default_factory=dict)
    hook_routes: dict[str, HookRoute] = Field(
        default_factory=dict, description="the policies' HTTP hooks' routes by name (JSON)"
    )
    policy_dir: Path = Path("policies")
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
    watch_namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "namespaces whose opted-in Deployments canarist watch follows, comma-separated "
            "(CANARIST_WATCH_NAMESPACES=shop,payments); see workers/platforms/kubernetes/gitops.py"
        ),
    )

    @field_validator("watch_namespaces", mode="before")
    @classmethod
    def _namespace_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        for name in value if isinstance(value, list | tuple) else ():
            if not isinstance(name, str) or not re.fullmatch(DNS_LABEL, name):
                raise ValueError(f"watch_namespaces: {str(name)[:70]!r} is not a namespace name")
        return value

    @field_validator("public_url", "report_secret", "worker_metrics_port", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

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
        sources: list[PydanticBaseSettingsSource] = [init_settings, _Environment(settings_cls)]
        settings_file = os.environ.get(SETTINGS_FILE_VARIABLE)
        if settings_file:
            sources.append(_SettingsFile(settings_cls, settings_file))
        return tuple(sources)


class _Environment(EnvSettingsSource):
    """The CANARIST_* variables; CANARIST_ALERT_ROUTES is read here rather than decoded as JSON,
    as it may be a path, and so that a bad route is refused naming the variable."""

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if field_name in (_ROUTES, _HOOK_ROUTES) and isinstance(value, str):
            return value  # read in __call__: an error raised here would lose its message
        return super().prepare_field_value(field_name, field, value, value_is_complex)

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        given = values.pop(_ROUTES, None)  # the variable's text, or its nested variables' dict
        nested = self.explode_env_vars(
            _ROUTES, self.settings_cls.model_fields[_ROUTES], self.env_vars
        )  # CANARIST_ALERT_ROUTES__ONCALL__URL=...
        if isinstance(given, str) and given.strip():
            origin, data = read_routes(given)
            if isinstance(data, dict):  # the nested variables win, field by field
                for name, fields in nested.items():
                    inline = data.get(name)
                    data[name] = {**inline, **fields} if isinstance(inline, dict) else fields
            values[_ROUTES] = validated_routes(data, origin)
        elif nested:
            values[_ROUTES] = validated_routes(nested, f"{ROUTES_VARIABLE}__*")
        hooks = values.pop(_HOOK_ROUTES, None)
        if isinstance(hooks, str) and hooks.strip():
            try:
                data = json.loads(hooks)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{HOOK_ROUTES_VARIABLE}: not valid JSON ({exc})") from None
            values[_HOOK_ROUTES] = validated_hook_routes(data, HOOK_ROUTES_VARIABLE)
        return values


class _SettingsFile(YamlConfigSettingsSource):
    """The YAML settings file; its alert routes are validated naming the file."""

    def __init__(self, settings_cls: type[BaseSettings], path: str) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{SETTINGS_FILE_VARIABLE}={path}: no such file")
        super().__init__(settings_cls, yaml_file=path)
        self.origin = f"{SETTINGS_FILE_VARIABLE}={path}"

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        if _ROUTES in values:
            values = {**values, _ROUTES: validated_routes(values[_ROUTES], self.origin)}
        if _HOOK_ROUTES in values:
            hooks = validated_hook_routes(values[_HOOK_ROUTES], self.origin)
            values = {**values, _HOOK_ROUTES: hooks}
        return values


def read_routes(text: str) -> tuple[str, Any]:
    """Where CANARIST_ALERT_ROUTES's routes come from, and what they are before validation:
    inline JSON, or the YAML/JSON file at that path (of a settings file, its ``alert_routes``)."""
    if text.lstrip().startswith(("{", "[")):
        origin = ROUTES_VARIABLE
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{origin}: not valid JSON ({exc})") from exc
    else:
        path = Path(text.strip())
        origin = f"{ROUTES_VARIABLE}={path}"
        if not path.is_file():
            raise FileNotFoundError(f"{origin}: no such file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SettingsError(f"{origin}: not valid YAML ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get(_ROUTES), dict):
        data = data[_ROUTES]
    return origin, data


def validated_routes(data: Any, origin: str) -> dict[str, AlertRoute]:
    """``data`` as routes by name, or SettingsError naming ``origin`` and the route.

    The message never quotes a value: a route's URL and headers may be credentials."""
    if not isinstance(data, dict):
        raise SettingsError(f"{origin}: alert routes must be a mapping of name to route")
    routes = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise SettingsError(f"{origin}: alert route {name!r} needs at least a type and a url")
        try:
            routes[str(name)] = AlertRoute.model_validate(spec)
        except ValidationError as exc:
            # Not chained: the cause would print the input, credentials and all.
            raise SettingsError(f"{origin}: alert route {name!r} {_problems(exc)}") from None
    return routes


def validated_hook_routes(data: Any, origin: str) -> dict[str, HookRoute]:
    """``data`` as hook routes by name, or SettingsError naming ``origin``, the route and its
    bad keys, never a value (a URL or a secret)."""
    if not isinstance(data, dict):
        raise SettingsError(f"{origin}: hook routes must be a mapping of name to route")
    routes = {}
    for name, spec in data.items():
        try:
            routes[str(name)] = HookRoute.model_validate(spec)
        except ValidationError as exc:
            problems = sorted(
                {".".join(map(str, e["loc"])) or "route" for e in exc.errors(include_input=False)}
            )
            raise SettingsError(
                f"{origin}: hook route {name!r} is not a route of url (http or https), secret "
                f"and headers (check: {', '.join(problems)})"
            ) from None
    return routes


def _problems(exc: ValidationError) -> str:
    missing, unknown, other = [], [], []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(map(str, error["loc"]))
        if error["type"] == "missing":
            missing.append(where)
        elif error["type"] == "extra_forbidden":
            unknown.append(where)
        else:
            other.append(f"{where}: {error['msg']}")
    found = [f"needs at least a type and a url (missing: {', '.join(missing)})"] if missing else []
    found += [f"has unknown keys {sorted(unknown)}"] if unknown else []
    return "; ".join(found + other)
