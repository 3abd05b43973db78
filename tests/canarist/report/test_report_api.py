"""GET /v1/rollouts/{id}/report: a token or the alert's signed link opens it; nothing else does.

The app runs over the session's real rollouts (Redis) and Prometheus; the signed link is taken
from a Notice built the way the outbox builds one, so the link an alert carries is the link
the API accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from canarist.api import create_app
from tests.canarist.report.api_access import SECRET, alert_link, app_settings, bearer
from tests.canarist.report.page_reading import Page
from tests.canarist.report.rollout_scenario import Played
from workers.notify.notice import report_signature


@pytest.fixture(scope="module")
def client(played: Played) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings(played), played.intake)) as test_client:
        yield test_client


def refused(response: Any, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert detail in body["detail"], body
    assert (
        body["error"] == {401: "unauthorized", 403: "forbidden", 404: "rollout_not_found"}[status]
    )


def test_a_token_of_the_namespace_reads_the_report_as_html(
    client: TestClient, played: Played
) -> None:
    response = client.get(f"/v1/rollouts/{played.aborted.id}/report", headers=bearer("alice"))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert response.headers["cache-control"] == "private, no-store"
    page = Page(response.text)
    assert f"Aborted: {played.aborted.abort_reason}" in page.text
    assert len(page.all("svg")) == 3 + 3  # a data chart and an evidence chart per metric


def test_the_alerts_signed_link_opens_the_report_without_a_token(
    client: TestClient, played: Played
) -> None:
    link = alert_link(played.promoted.id)
    assert link == (
        f"/v1/rollouts/{played.promoted.id}/report"
        f"?sig={report_signature(SECRET, played.promoted.id)}"
    )

    response = client.get(link)

    assert response.status_code == 200, response.text
    assert "Promoted: v2 passed the analysis of 2 step(s)" in Page(response.text).text


def test_a_signature_opens_only_its_own_rollouts_report(client: TestClient, played: Played) -> None:
    other = alert_link(played.promoted.id).split("?")[1]
    aborted = played.aborted.id

    refused(client.get(f"/v1/rollouts/{aborted}/report?{other}"), 401, "invalid signature")
    refused(client.get(f"/v1/rollouts/{aborted}?{other}"), 401, "missing bearer token")
    signed = alert_link(aborted).split("?")[1]
    refused(client.get(f"/v1/rollouts/{aborted}?{signed}"), 401, "missing bearer token")


@pytest.mark.parametrize(
    "sig",
    ["0" * 32, "short", "", "x" * 64],
    ids=["wrong", "cut short", "empty", "too long"],
)
def test_a_bad_signature_is_refused(client: TestClient, played: Played, sig: str) -> None:
    response = client.get(f"/v1/rollouts/{played.aborted.id}/report", params={"sig": sig})

    refused(response, 401, "invalid signature: the link is not for this rollout")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_link_signed_with_an_old_secret_is_refused(client: TestClient, played: Played) -> None:
    link = alert_link(played.aborted.id, secret="the-secret-before-rotation-0000")

    refused(client.get(link), 401, "the report secret has changed")


def test_without_credentials_the_answer_says_how_to_get_in(
    client: TestClient, played: Played
) -> None:
    refused(client.get(f"/v1/rollouts/{played.aborted.id}/report"), 401, "missing credentials")
    refused(
        client.get(
            f"/v1/rollouts/{played.aborted.id}/report",
            headers={"Authorization": "Bearer cnr_nobody"},
        ),
        401,
        "invalid bearer token",
    )


def test_a_token_of_another_namespace_gets_the_404_of_an_unknown_rollout(
    client: TestClient, played: Played
) -> None:
    hidden = played.aborted.id
    response = client.get(f"/v1/rollouts/{hidden}/report", headers=bearer("bob"))
    unknown = client.get(f"/v1/rollouts/{hidden}-x/report", headers=bearer("bob"))

    refused(response, 404, f"no rollout {hidden}")
    assert response.text == unknown.text.replace(f"{hidden}-x", hidden)
    assert "Aborted" not in response.text


def test_an_unknown_rollout_is_404_only_for_a_caller_with_credentials(
    client: TestClient,
) -> None:
    refused(client.get("/v1/rollouts/nope/report", headers=bearer("alice")), 404, "no rollout")
    refused(client.get("/v1/rollouts/nope/report"), 401, "missing credentials")
    refused(client.get(alert_link("nope")), 404, "no rollout nope")


def test_without_a_report_secret_signed_links_are_refused(played: Played) -> None:
    settings = app_settings(played, report_secret=None)
    with TestClient(create_app(settings, played.intake)) as plain:
        refused(plain.get(alert_link(played.aborted.id)), 401, "signed report links are disabled")
        ok = plain.get(f"/v1/rollouts/{played.aborted.id}/report", headers=bearer("alice"))
        assert ok.status_code == 200
