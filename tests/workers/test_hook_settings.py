"""``CANARIST_HOOK_ROUTES``: the hooks' routes as JSON, their secrets kept secret."""

from __future__ import annotations

import json

import pytest

from workers.errors import SettingsError
from workers.settings import WorkerSettings

ROUTES = {
    "smoke-tests": {
        "url": "https://ci.internal/smoke",
        "secret": "s3cret",
        "headers": {"X-Team": 7},
    }
}


def test_hook_routes_come_from_the_variable_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARIST_HOOK_ROUTES", json.dumps(ROUTES))
    route = WorkerSettings().hook_routes["smoke-tests"]
    assert route.url == "https://ci.internal/smoke" and route.revealed_headers() == {"X-Team": "7"}
    assert route.secret is not None and route.secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(route)


@pytest.mark.parametrize(
    "route", [{"url": "ftp://TOPSECRET"}, {"secret": "TOPSECRET"}, {"url": "https://a", "x": 1}]
)
def test_a_bad_hook_route_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, route: dict[str, object]
) -> None:
    monkeypatch.setenv("CANARIST_HOOK_ROUTES", json.dumps({"smoke": route}))
    with pytest.raises(SettingsError) as refused:
        WorkerSettings()
    message = str(refused.value)
    assert (
        message.startswith("CANARIST_HOOK_ROUTES: hook route 'smoke'")
        and "TOPSECRET" not in message
    )
