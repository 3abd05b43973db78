"""The one settings model: every variable and file form it reads, and the routes it refuses."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from workers.errors import SettingsError
from workers.settings import WorkerSettings

ONCALL = {"type": "alertmanager", "url": "http://am:9093", "severity": "page"}
SECRET = "0123456789abcdef-report"

Environ = Callable[..., WorkerSettings]


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Environ:
    """``environ(NAME=value, ...)``: the workers' settings from exactly those variables."""

    def load(**variables: str) -> WorkerSettings:
        for name in [name for name in os.environ if name.startswith("CANARIST_")]:
            monkeypatch.delenv(name)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return WorkerSettings()

    return load


def test_nothing_set_is_the_defaults(environ: Environ) -> None:
    settings = environ()
    assert settings == WorkerSettings.model_construct()
    assert (settings.redis.url, settings.prometheus.url) == (
        "redis://127.0.0.1:6379/0",
        "http://127.0.0.1:9090",
    )
    assert (settings.alert_routes, settings.policy_dir) == ({}, Path("policies"))


def test_every_scalar_variable_is_read(environ: Environ) -> None:
    settings = environ(
        CANARIST_REDIS__URL="redis://redis:6379/2",
        CANARIST_PROMETHEUS__URL="http://prometheus:9090",
        CANARIST_PROMETHEUS__TIMEOUT_SECONDS="4.5",
        CANARIST_PROMETHEUS__BEARER_TOKEN="prom-token",
        CANARIST_POLICY_DIR="/etc/canarist/policies",
        CANARIST_WORKER_METRICS_PORT="9101",
        CANARIST_PUBLIC_URL="https://canarist.example",
        CANARIST_REPORT_SECRET=SECRET,
    )
    assert settings.redis.url == "redis://redis:6379/2"
    assert settings.prometheus.url == "http://prometheus:9090"
    assert settings.prometheus.timeout_seconds == 4.5
    token = settings.prometheus.bearer_token
    assert token is not None and token.get_secret_value() == "prom-token"
    assert settings.policy_dir == Path("/etc/canarist/policies")
    assert settings.worker_metrics_port == 9101
    assert settings.public_url == "https://canarist.example"
    assert settings.report_secret is not None
    assert settings.report_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and "prom-token" not in repr(settings)


def test_an_optional_variable_left_empty_is_unset(environ: Environ) -> None:
    settings = environ(
        CANARIST_PROMETHEUS__BEARER_TOKEN="",
        CANARIST_WORKER_METRICS_PORT="",
        CANARIST_PUBLIC_URL="",
        CANARIST_REPORT_SECRET="",
        CANARIST_ALERT_ROUTES=" ",
    )
    assert settings == WorkerSettings.model_construct()


def test_alert_routes_inline_as_json(environ: Environ) -> None:
    routes = environ(CANARIST_ALERT_ROUTES=json.dumps({"oncall": ONCALL})).alert_routes
    assert routes["oncall"].type == "alertmanager" and routes["oncall"].severity == "page"
    wrapped = json.dumps({"alert_routes": {"oncall": ONCALL}})
    assert environ(CANARIST_ALERT_ROUTES=wrapped).alert_routes == routes


def test_alert_routes_in_a_file_named_by_the_variable(environ: Environ, tmp_path: Path) -> None:
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(
        "oncall:\n  type: webhook\n  url: https://hooks.example/x\n  headers: {X-Priority: 1}\n"
    )
    (route,) = environ(CANARIST_ALERT_ROUTES=str(routes_file)).alert_routes.values()
    assert (route.type, route.revealed_headers()) == ("webhook", {"X-Priority": "1"})
    as_json = tmp_path / "routes.json"
    as_json.write_text(json.dumps({"oncall": ONCALL}))
    assert environ(CANARIST_ALERT_ROUTES=str(as_json)).alert_routes["oncall"].severity == "page"
    settings_file = tmp_path / "canarist.yaml"
    routes = json.dumps({"chat": ONCALL})
    settings_file.write_text(f"redis: {{url: 'redis://r:6379/0'}}\nalert_routes: {routes}\n")
    settings = environ(CANARIST_ALERT_ROUTES=str(settings_file))
    assert set(settings.alert_routes) == {"chat"}
    assert settings.redis.url == "redis://127.0.0.1:6379/0"  # only its routes are read


def test_alert_routes_from_nested_variables(environ: Environ) -> None:
    settings = environ(
        CANARIST_ALERT_ROUTES__ONCALL__TYPE="webhook",
        CANARIST_ALERT_ROUTES__ONCALL__URL="https://hooks.example/x",
    )
    assert settings.alert_routes["oncall"].url == "https://hooks.example/x"


def test_the_settings_file_and_the_variables_over_it(environ: Environ, tmp_path: Path) -> None:
    settings_file = tmp_path / "canarist.yaml"
    settings_file.write_text(
        "redis: {url: 'redis://file:6379/0'}\n"
        "prometheus: {url: 'http://file:9090', timeout_seconds: 7}\n"
        "policy_dir: /srv/policies\n"
        "public_url: https://file.example\n"
        "worker_metrics_port: 9200\n"
        f"alert_routes: {json.dumps({'chat': ONCALL})}\n"
        "api_tokens: []\n"  # the API's: the workers' root leaves it to canarist's
        "api_url: http://api:8000\n"
    )
    settings = environ(CANARIST_SETTINGS_FILE=str(settings_file))
    assert (settings.redis.url, settings.prometheus.url) == (
        "redis://file:6379/0",
        "http://file:9090",
    )
    assert (settings.policy_dir, settings.worker_metrics_port) == (Path("/srv/policies"), 9200)
    assert (settings.public_url, set(settings.alert_routes)) == ("https://file.example", {"chat"})
    settings = environ(
        CANARIST_SETTINGS_FILE=str(settings_file),
        CANARIST_PROMETHEUS__TIMEOUT_SECONDS="3",
        CANARIST_ALERT_ROUTES=json.dumps({"oncall": ONCALL}),
    )
    assert (settings.prometheus.url, settings.prometheus.timeout_seconds) == (
        "http://file:9090",
        3.0,
    )
    assert set(settings.alert_routes) == {"chat", "oncall"}


def test_a_missing_file_is_named(environ: Environ, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(FileNotFoundError, match=f"CANARIST_ALERT_ROUTES={missing}: no such file"):
        environ(CANARIST_ALERT_ROUTES=str(missing))
    with pytest.raises(FileNotFoundError, match=f"CANARIST_SETTINGS_FILE={missing}: no such file"):
        environ(CANARIST_SETTINGS_FILE=str(missing))


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            {"oncall": {"type": "alertmanager"}},
            "alert route 'oncall' needs at least a type and a url (missing: url)",
        ),
        (
            {"oncall": {"type": "webhook", "url": "https://x", "colour": "red"}},
            "alert route 'oncall' has unknown keys ['colour']",
        ),
        (
            {"oncall": {"type": "pager", "url": "https://x"}},
            "alert route 'oncall' type: Input should be 'alertmanager', 'webhook' or 'slack'",
        ),
        (
            {"oncall": {"type": "webhook", "url": "hooks.example"}},
            "alert route 'oncall' url: String should match pattern",
        ),
        ({"oncall": "https://x"}, "alert route 'oncall' needs at least a type and a url"),
        (["oncall"], "alert routes must be a mapping of name to route"),
    ],
)
def test_a_bad_route_is_refused_naming_the_variable_and_the_route(
    environ: Environ, routes: object, message: str
) -> None:
    with pytest.raises(SettingsError, match="^" + re.escape(f"CANARIST_ALERT_ROUTES: {message}")):
        environ(CANARIST_ALERT_ROUTES=json.dumps(routes))


def test_a_bad_route_in_a_file_names_the_file(environ: Environ, tmp_path: Path) -> None:
    bad = {"oncall": {"type": "slack", "url": "https://hooks.slack.com/x", "headers": {"A": []}}}
    routes_file = tmp_path / "routes.json"
    routes_file.write_text(json.dumps(bad))
    with pytest.raises(SettingsError, match=f"CANARIST_ALERT_ROUTES={routes_file}: alert route"):
        environ(CANARIST_ALERT_ROUTES=str(routes_file))
    settings_file = tmp_path / "canarist.yaml"
    settings_file.write_text(f"alert_routes: {json.dumps(bad)}\n")
    with pytest.raises(SettingsError, match=f"CANARIST_SETTINGS_FILE={settings_file}: alert route"):
        environ(CANARIST_SETTINGS_FILE=str(settings_file))
    with pytest.raises(SettingsError, match=r"CANARIST_ALERT_ROUTES__\*: alert route 'x'"):
        environ(CANARIST_ALERT_ROUTES__X__TYPE="webhook")


def test_text_that_does_not_parse_is_named(environ: Environ, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CANARIST_ALERT_ROUTES: not valid JSON"):
        environ(CANARIST_ALERT_ROUTES='{"oncall": ')
    broken = tmp_path / "routes.yaml"
    broken.write_text("oncall: [\n")
    with pytest.raises(SettingsError, match=f"CANARIST_ALERT_ROUTES={broken}: not valid YAML"):
        environ(CANARIST_ALERT_ROUTES=str(broken))


def test_a_refusal_never_quotes_a_credential(environ: Environ) -> None:
    route = {"type": "slack", "url": "https://hooks.slack.com/T0/B0/xyzzy", "headers": {"A": 1}}
    route["colour"] = "red"
    with pytest.raises(SettingsError) as refused:
        environ(CANARIST_ALERT_ROUTES=json.dumps({"chat": route}))
    assert "xyzzy" not in str(refused.value) and refused.value.__cause__ is None
    assert "unknown keys ['colour']" in str(refused.value)


def test_the_watched_namespaces_are_a_comma_separated_list(
    environ: Environ, tmp_path: Path
) -> None:
    assert environ().watch_namespaces == ()
    assert environ(CANARIST_WATCH_NAMESPACES="").watch_namespaces == ()
    watched = environ(CANARIST_WATCH_NAMESPACES="shop, payments,").watch_namespaces
    assert watched == ("shop", "payments")
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("watch_namespaces: [shop]\n")
    assert environ(CANARIST_SETTINGS_FILE=str(settings_file)).watch_namespaces == ("shop",)


def test_a_watched_namespace_that_is_no_namespace_name_is_refused(environ: Environ) -> None:
    with pytest.raises(ValueError, match=r"watch_namespaces: 'Shop_1' is not a namespace name"):
        environ(CANARIST_WATCH_NAMESPACES="shop,Shop_1")
