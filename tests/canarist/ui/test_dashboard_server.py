"""The dashboard's server side through httpx (FastAPI's TestClient), over the memory store: the
session cookie's attributes, sign-in and sign-out, expiry, CSRF, roles and namespace scopes,
and that an action takes the API's own path and is recorded under the token's name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analyzer.sources.memory import MemorySource
from canarist.api import create_app
from canarist.ui.sessions import COOKIE
from tests.canarist.test_api import JOB, POLICIES, SECRETS, Clock, api_settings, bearer
from workers.intake import Intake
from workers.store import MemoryStateStore

HOUR = 3600.0


@dataclass
class Board:
    app: Any
    store: MemoryStateStore
    session_clock: Clock

    def client(self, base_url: str = "http://testserver") -> TestClient:
        return TestClient(self.app, base_url=base_url, follow_redirects=False)

    def submit(self, namespace: str = "shop", app: str = "checkout") -> str:
        with self.client() as client:
            who = "alice" if namespace == "shop" else "bob"
            job = {**JOB, "namespace": namespace, "app": app}
            response = client.post("/v1/rollouts", json=job, headers=bearer(who))
        assert response.status_code == 202, response.text
        rollout_id: str = response.json()["id"]
        return rollout_id


@pytest.fixture
def board() -> Iterator[Board]:
    store, clock, session_clock = MemoryStateStore(), Clock(), Clock()
    intake = Intake(store, POLICIES, clock, lambda *a, **k: None, alert_routes={"oncall"})
    app = create_app(api_settings(), intake, session_clock=session_clock)
    app.state.report_source = MemorySource(strict=False)
    yield Board(app, store, session_clock)


def sign_in(client: TestClient, who: str) -> str:
    """Sign ``who`` in; return the page's CSRF token (from the sign-out form)."""
    response = client.post("/ui/sign-in", data={"token": SECRETS[who], "next": "/ui/rollouts"})
    assert response.status_code == 303, response.text
    page = client.get("/ui/rollouts")
    assert page.status_code == 200
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def test_the_session_cookie_is_httponly_strict_with_an_expiry_and_no_token(board: Board) -> None:
    with board.client() as client:
        response = client.post("/ui/sign-in", data={"token": SECRETS["alice"]})
    cookie = response.headers["set-cookie"]
    assert response.status_code == 303 and response.headers["location"] == "/ui/rollouts"
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "Max-Age=28800" in cookie
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    assert SECRETS["alice"] not in cookie

    with board.client("https://testserver") as client:
        secure = client.post("/ui/sign-in", data={"token": SECRETS["alice"]})
    assert "secure" in secure.headers["set-cookie"].lower()


def test_pages_need_a_session_and_a_bad_token_is_refused(board: Board) -> None:
    with board.client() as client:
        assert client.get("/ui/rollouts").headers["location"].startswith("/ui/sign-in?next=")
        refused = client.post("/ui/sign-in", data={"token": "cnr_guessed"})
        assert refused.status_code == 401 and "not a valid API token" in refused.text
        assert COOKIE not in client.cookies
        assert client.get("/ui/live/rollouts").status_code == 401


def test_a_session_expires_and_sign_out_ends_it(board: Board) -> None:
    with board.client() as client:
        sign_in(client, "alice")
        board.session_clock.now += 8 * HOUR + 1
        assert client.get("/ui/rollouts").status_code == 303
        assert client.get("/ui/live/rollouts").status_code == 401

        csrf = sign_in(client, "alice")
        kept = client.cookies[COOKIE]
        assert client.post("/ui/sign-out", data={"csrf": csrf}).status_code == 303
        client.cookies.set(COOKIE, kept, path="/ui")  # a copy of the cookie opens nothing now
        assert client.get("/ui/rollouts").status_code == 303


def test_the_list_shows_only_the_tokens_namespaces_and_filters(board: Board) -> None:
    mine = board.submit("shop", "checkout")
    board.submit("shop", "cart")
    theirs = board.submit("payments", "ledger")
    with board.client() as client:
        sign_in(client, "alice")
        page = client.get("/ui/rollouts").text
        assert f'id="rollout-{mine}"' in page and theirs not in page and "ledger" not in page
        assert "2 rollouts" in page
        only = client.get("/ui/rollouts", params={"app": "checkout", "phase": "pending"}).text
        assert mine in only and "cart" not in only
        assert client.get("/ui/rollouts", params={"namespace": "payments"}).status_code == 403
        assert client.get(f"/ui/rollouts/{theirs}").status_code == 404
        assert client.get(f"/ui/live/rollouts/{theirs}").status_code == 404
        assert client.get(f"/ui/rollouts/{theirs}/actions/abort").status_code == 404


def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(board: Board) -> None:
    rollout_id = board.submit()
    with board.client() as client:
        sign_in(client, "alice")
        for path in ("/ui/rollouts", f"/ui/rollouts/{rollout_id}", "/ui/sign-in"):
            response = client.get(path)
            policy = response.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "unsafe-inline" not in policy
            assert "<script>" not in response.text and "<style" not in response.text
            assert " style=" not in response.text
        script = client.get("/ui/static/dashboard.js")
        assert script.status_code == 200 and "text/javascript" in script.headers["content-type"]
        assert client.get("/ui/static/../../settings.py").status_code == 404


def test_abort_needs_csrf_the_operate_role_and_a_reason(board: Board) -> None:
    rollout_id = board.submit()
    url = f"/ui/rollouts/{rollout_id}/actions/abort"
    with board.client() as client:
        csrf = sign_in(client, "alice")
        assert client.post(url, data={"reason": "bad"}).status_code == 403
        assert client.post(url, data={"csrf": "forged", "reason": "bad"}).status_code == 403
        assert client.post(url, data={"csrf": csrf, "reason": " "}).status_code == 422
        assert board.store.load(rollout_id).state.phase.value == "pending"

        confirm = client.get(url).text
        assert "Abort checkout v2 in shop?" in confirm and "required" in confirm
        done = client.post(url, data={"csrf": csrf, "reason": "pager is on fire"})
        assert done.status_code == 303 and done.headers["location"].endswith("?done=abort")
    state = board.store.load(rollout_id).state
    assert state.phase.value == "aborted" and "pager is on fire" in (state.abort_reason or "")
    commands = [e for e in board.store.events(rollout_id) if e.actor == "alice"]
    assert commands and "pager is on fire" in commands[-1].message


def test_a_read_only_token_sees_no_forms_and_its_post_is_403(board: Board) -> None:
    rollout_id = board.submit()
    with board.client() as client:
        csrf = sign_in(client, "viewer")
        page = client.get(f"/ui/rollouts/{rollout_id}").text
        assert "/actions/" not in page and "read only" in page
        forged = client.post(
            f"/ui/rollouts/{rollout_id}/actions/abort", data={"csrf": csrf, "reason": "x"}
        )
        assert forged.status_code == 403
        assert client.get(f"/ui/rollouts/{rollout_id}/actions/abort").status_code == 403
    assert board.store.load(rollout_id).state.phase.value == "pending"


def test_another_namespaces_token_cannot_act_even_with_its_own_csrf(board: Board) -> None:
    rollout_id = board.submit("shop")
    with board.client() as client:
        csrf = sign_in(client, "bob")
        forged = client.post(
            f"/ui/rollouts/{rollout_id}/actions/abort", data={"csrf": csrf, "reason": "mine now"}
        )
        assert forged.status_code == 404
    assert board.store.load(rollout_id).state.phase.value == "pending"


def test_the_live_json_answers_204_until_something_changes(board: Board) -> None:
    rollout_id = board.submit()
    with board.client() as client:
        csrf = sign_in(client, "alice")
        first = client.get(f"/ui/live/rollouts/{rollout_id}").json()
        assert {"summary", "actions", "timeline"} <= set(first["parts"])
        seen = {"seen": first["version"]}
        assert client.get(f"/ui/live/rollouts/{rollout_id}", params=seen).status_code == 204
        listed = client.get("/ui/live/rollouts").json()
        assert rollout_id in listed["parts"]["rows"]
        again = client.get("/ui/live/rollouts", params={"seen": listed["version"]})
        assert again.status_code == 204

        client.post(
            f"/ui/rollouts/{rollout_id}/actions/abort", data={"csrf": csrf, "reason": "stop"}
        )
        changed = client.get(f"/ui/live/rollouts/{rollout_id}", params=seen).json()
        assert "aborted" in changed["parts"]["summary"]


def test_a_form_posted_from_another_site_is_refused(board: Board) -> None:
    with board.client() as client:
        refused = client.post(
            "/ui/sign-in",
            data={"token": SECRETS["alice"]},
            headers={"Origin": "https://evil.example"},
        )
        assert refused.status_code == 403 and COOKIE not in client.cookies
        same = client.post(
            "/ui/sign-in", data={"token": SECRETS["alice"]}, headers={"Origin": "http://testserver"}
        )
        assert same.status_code == 303


def test_a_command_the_phase_refuses_is_409_and_audited_under_the_name(board: Board) -> None:
    rollout_id = board.submit()
    with board.client() as client:
        csrf = sign_in(client, "alice")
        refused = client.post(f"/ui/rollouts/{rollout_id}/actions/resume", data={"csrf": csrf})
    assert refused.status_code == 409 and "Not done:" in refused.text
    ignored = [e for e in board.store.events(rollout_id) if e.kind == "command_ignored"]
    assert [event.actor for event in ignored] == ["alice"]


def test_sign_in_goes_back_only_to_a_dashboard_page(board: Board) -> None:
    with board.client() as client:
        for target, landing in (
            ("/ui/rollouts?app=cart", "/ui/rollouts?app=cart"),
            ("//evil.example/ui/", "/ui/rollouts"),
            ("https://evil.example/ui/", "/ui/rollouts"),
        ):
            client.cookies.clear()
            response = client.post("/ui/sign-in", data={"token": SECRETS["alice"], "next": target})
            assert response.headers["location"] == landing
