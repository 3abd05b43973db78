"""How the report tests reach the API: tokens, settings, and the link an alert carries."""

from __future__ import annotations

from typing import Any

from canarist.settings import ApiToken, PrometheusSettings, Settings, hash_token
from tests.canarist.report.rollout_scenario import Played
from workers.actions import Notify
from workers.notify.notice import Notice

SECRET = "report-secret-for-the-tests-0123456789"
TOKENS = {"alice": ("cnr_alice-shop", ["shop"]), "bob": ("cnr_bob-payments", ["payments"])}
BASE_URL = "http://testserver"


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}


def app_settings(played: Played, **changes: Any) -> Settings:
    tokens = [
        ApiToken(name=name, sha256=hash_token(token), namespaces=scopes)
        for name, (token, scopes) in TOKENS.items()
    ]
    return Settings(
        api_tokens=tokens,
        policy_dir=played.policy_dir,
        prometheus=PrometheusSettings(url=played.prometheus_url),
        **{"report_secret": SECRET, **changes},
    )


def alert_link(rollout_id: str, secret: str = SECRET) -> str:
    """The report link of an abort alert, as the outbox's delivery builds it."""
    action = Notify("aborted", rollout_id, "checkout", "shop", "v2", "errors", ("oncall",))
    notice = Notice.from_action(
        action, policy="default-canary", occurred_at=0.0, base_url=BASE_URL, report_secret=secret
    )
    assert notice.report_url is not None
    return notice.report_url.removeprefix(BASE_URL)
