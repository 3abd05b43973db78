from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from canarist.api.broker import celery_from_settings
from canarist.settings import Settings, hash_token
from workers import celery_app
from workers.settings import WorkerSettings


def test_defaults_point_at_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARIST_SETTINGS_FILE", raising=False)
    settings = Settings()
    assert settings.redis.url.startswith("redis://127.0.0.1")
    assert settings.prometheus.timeout_seconds == 10


def test_yaml_file_and_environment_variables_combine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_hash = hash_token("secret-token")
    settings_file = tmp_path / "canarist.yaml"
    settings_file.write_text(
        f"""
prometheus:
  url: http://prom.example:9090
alert_routes:
  oncall:
    type: alertmanager
    url: http://alertmanager:9093
api_tokens:
  - name: deploy-bot
    sha256: {token_hash}
    namespaces: [shop]
"""
    )
    monkeypatch.setenv("CANARIST_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("CANARIST_PROMETHEUS__TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("CANARIST_REDIS__URL", "redis://127.0.0.1:7777/1")
    settings = Settings()
    assert settings.prometheus.url == "http://prom.example:9090"
    assert settings.prometheus.timeout_seconds == 3
    assert settings.redis.url.endswith(":7777/1")
    assert settings.alert_routes["oncall"].type == "alertmanager"
    found = settings.token_for("secret-token")
    assert found is not None and found.name == "deploy-bot"
    assert settings.token_for("wrong") is None
    assert "secret-token" not in settings_file.read_text()


def test_unknown_setting_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = tmp_path / "canarist.yaml"
    settings_file.write_text("prometheus:\n  urll: http://x\n")
    monkeypatch.setenv("CANARIST_SETTINGS_FILE", str(settings_file))
    with pytest.raises(ValidationError, match="urll"):
        Settings()


def test_missing_settings_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARIST_SETTINGS_FILE", "/nonexistent/canarist.yaml")
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/canarist\.yaml"):
        Settings()


def test_plain_tokens_cannot_be_configured() -> None:
    with pytest.raises(ValidationError, match="sha256"):
        Settings(api_tokens=[{"name": "x", "sha256": "plain-token-here"}])


def test_the_api_group_reads_from_the_environment_beside_api_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CANARIST_SETTINGS_FILE", raising=False)
    assert (Settings().api.max_body_bytes, Settings().api.store_timeout_seconds) == (65536, 2.0)
    monkeypatch.setenv("CANARIST_API_URL", "http://api.example:8000")
    monkeypatch.setenv("CANARIST_API__STORE_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("CANARIST_API__MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.api_url == "http://api.example:8000"
    assert (settings.api.max_body_bytes, settings.api.store_timeout_seconds) == (2048, 0.5)
    monkeypatch.setenv("CANARIST_API__MAX_BODY_BYTES", "10")
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings()


ROUTE = {"type": "webhook", "url": "https://hooks.example/x", "headers": {"X-Key": "k"}}
SETTINGS_FILE = f"""
redis: {{url: 'redis://from-file:6379/0'}}
prometheus: {{url: 'http://from-file:9090'}}
alert_routes: {json.dumps({"chat": ROUTE})}
api_tokens:
  - name: deploy-bot
    sha256: {hash_token("secret-token")}
api_url: http://api.example:8000
"""
ENVIRONMENTS = {
    "variables": {
        "CANARIST_REDIS__URL": "redis://redis:6379/2",
        "CANARIST_PROMETHEUS__URL": "http://prometheus:9090",
        "CANARIST_PROMETHEUS__TIMEOUT_SECONDS": "4.5",
        "CANARIST_PROMETHEUS__BEARER_TOKEN": "prom-token",
        "CANARIST_POLICY_DIR": "/etc/canarist/policies",
        "CANARIST_ALERT_ROUTES": json.dumps({"oncall": ROUTE}),
        "CANARIST_WORKER_METRICS_PORT": "9101",
        "CANARIST_PUBLIC_URL": "https://canarist.example",
        "CANARIST_REPORT_SECRET": "0123456789abcdef-report",
        "CANARIST_API_TOKENS": "[]",
        "CANARIST_API__MAX_BODY_BYTES": "2048",
    },
    "a settings file with the API's keys": {"CANARIST_SETTINGS_FILE": "{file}"},
    "a settings file under variables": {
        "CANARIST_SETTINGS_FILE": "{file}",
        "CANARIST_REDIS__URL": "redis://redis:6379/3",
        "CANARIST_ALERT_ROUTES": "{routes}",
        "CANARIST_PUBLIC_URL": "",
    },
}


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_the_workers_and_the_api_read_the_same_values_from_one_environment(
    environment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file, routes_file = tmp_path / "canarist.yaml", tmp_path / "routes.yaml"
    settings_file.write_text(SETTINGS_FILE)
    routes_file.write_text(yaml.safe_dump({"oncall": ROUTE}))
    for name in [name for name in os.environ if name.startswith("CANARIST_")]:
        monkeypatch.delenv(name)
    for name, value in ENVIRONMENTS[environment].items():
        named = value.replace("{file}", str(settings_file)).replace("{routes}", str(routes_file))
        monkeypatch.setenv(name, named)
    monkeypatch.setattr(celery_app, "_default", None)

    service, workers = Settings(), WorkerSettings()
    probe = celery_app.app  # what `celery -A workers.celery_app inspect ping` builds

    assert isinstance(service, WorkerSettings)
    assert {name: getattr(service, name) for name in WorkerSettings.model_fields} == dict(workers)
    assert probe.conf.broker_url == celery_from_settings(service).conf.broker_url
    assert probe.conf.broker_url == service.redis.url
