"""The report secret: where it is set, that it is long enough, and that it is never printed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from canarist.api.broker import celery_from_settings
from canarist.settings import Settings
from workers.celery_app import build_runtime
from workers.settings import WorkerSettings

SECRET = "0123456789abcdef-report"


def test_the_api_reads_the_secret_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARIST_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("CANARIST_REPORT_SECRET", SECRET)

    settings = Settings()

    assert settings.report_secret is not None
    assert settings.report_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_a_short_secret_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="report_secret must be at least 16 characters"):
        Settings(report_secret="hunter2")


def test_the_workers_read_the_secret_and_the_public_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CANARIST_SETTINGS_FILE", raising=False)
    monkeypatch.setenv("CANARIST_REPORT_SECRET", SECRET)
    monkeypatch.setenv("CANARIST_PUBLIC_URL", "https://canarist.example")

    settings = WorkerSettings()

    assert settings.report_secret is not None
    assert settings.report_secret.get_secret_value() == SECRET
    assert settings.public_url == "https://canarist.example"
    assert SECRET not in repr(settings)
    monkeypatch.delenv("CANARIST_REPORT_SECRET")
    assert WorkerSettings().report_secret is None
    assert WorkerSettings.model_construct().report_secret is None


def test_the_service_settings_hand_the_report_secret_to_the_workers() -> None:
    settings = Settings(public_url="https://canarist.example", report_secret="0123456789abcdef-x")

    delivery = build_runtime(celery_from_settings(settings), settings).delivery

    assert (delivery.base_url, delivery.report_secret) == (
        "https://canarist.example",
        "0123456789abcdef-x",
    )
