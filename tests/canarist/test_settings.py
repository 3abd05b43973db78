from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from canarist.settings import Settings, hash_token


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
