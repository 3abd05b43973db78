"""Dashboard sessions across API processes, over the session's real Redis: two replicas built
from the same settings and store (each with its own Redis client, as two pods would be) share
every session, a new app (the API restarted) keeps them, sign-out on one replica ends the
session on the other, a session expires on time, Redis holds neither the cookie nor the token,
and a store that cannot be reached is a 503 that says so, never a sign-out."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from canarist.api import create_app
from canarist.demo.stack import HOST, ServiceProcess, free_port
from canarist.ui.sessions import COOKIE
from tests.canarist.test_api import POLICIES, SECRETS, Clock, api_settings
from tests.canarist.ui.test_dashboard_server import csrf_of, sign_in
from tests.workers.test_store import wipe
from workers.intake import Intake
from workers.store import RedisStateStore

HOUR = 3600.0


@dataclass
class Replicas:
    """API apps over one Redis database and prefix, each on its own client."""

    url: str
    prefix: str
    session_clock: Clock = field(default_factory=Clock)
    stores: list[RedisStateStore] = field(default_factory=list)

    def app(self, url: str | None = None) -> FastAPI:
        store = RedisStateStore.from_url(url or self.url, prefix=self.prefix, timeout_seconds=1)
        self.stores.append(store)
        intake = Intake(store, POLICIES, Clock(), lambda *a, **k: None, alert_routes={"oncall"})
        return create_app(api_settings(), intake, session_clock=self.session_clock)


def client(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False)


def with_cookie(app: FastAPI, cookie: str) -> TestClient:
    browser = client(app)
    browser.cookies.set(COOKIE, cookie, path="/ui")
    return browser


@pytest.fixture
def replicas(redis_server: ServiceProcess) -> Iterator[Replicas]:
    kept = Replicas(redis_server.url, f"test:{uuid.uuid4().hex}:")
    yield kept
    for store in kept.stores:
        store.close()
    wipe(redis_server.url, kept.prefix)


def test_a_session_made_on_one_replica_is_accepted_by_another(replicas: Replicas) -> None:
    first, second = replicas.app(), replicas.app()
    with client(first) as one:
        csrf = sign_in(one, "alice")
        cookie = one.cookies[COOKIE]
    with with_cookie(second, cookie) as two:
        page = two.get("/ui/rollouts")
        assert page.status_code == 200, page.text
        assert csrf_of(page.text) == csrf  # the same session, not a new one
        assert two.get("/ui/live/rollouts").status_code == 200


def test_a_session_outlives_a_restart_of_the_api(replicas: Replicas) -> None:
    before = replicas.app()
    with client(before) as browser:
        sign_in(browser, "alice")
        cookie = browser.cookies[COOKIE]
    replicas.stores.pop().close()  # the old process and its connection are gone
    after = replicas.app()
    assert after is not before
    with with_cookie(after, cookie) as browser:
        assert browser.get("/ui/rollouts").status_code == 200
        assert browser.get("/ui/live/rollouts").status_code == 200


def test_sign_out_on_one_replica_ends_the_session_on_the_other(replicas: Replicas) -> None:
    first, second = replicas.app(), replicas.app()
    with client(first) as one:
        csrf = sign_in(one, "alice")
        cookie = one.cookies[COOKIE]
        with with_cookie(second, cookie) as two:
            assert two.get("/ui/rollouts").status_code == 200
            assert one.post("/ui/sign-out", data={"csrf": csrf}).status_code == 303
            assert two.get("/ui/rollouts").status_code == 303
            assert two.get("/ui/live/rollouts").status_code == 401


def test_a_session_expires_on_every_replica(replicas: Replicas) -> None:
    first, second = replicas.app(), replicas.app()
    with client(first) as one:
        sign_in(one, "alice")
        cookie = one.cookies[COOKIE]
    replicas.session_clock.now += 8 * HOUR - 1
    with with_cookie(second, cookie) as two:
        assert two.get("/ui/rollouts").status_code == 200
        replicas.session_clock.now += 2
        assert two.get("/ui/rollouts").status_code == 303
    with with_cookie(first, cookie) as one:
        assert one.get("/ui/live/rollouts").status_code == 401


def test_redis_keeps_a_hash_of_the_id_the_token_name_and_a_ttl(replicas: Replicas) -> None:
    with client(replicas.app()) as browser:
        csrf = sign_in(browser, "alice")
        cookie = browser.cookies[COOKIE]
    raw = redis.Redis.from_url(replicas.url, decode_responses=True)
    try:
        keys = list(raw.scan_iter(match=f"{replicas.prefix}session:*"))
        digest = hashlib.sha256(cookie.encode()).hexdigest()
        assert keys == [f"{replicas.prefix}session:{digest}"]
        text = raw.get(keys[0])
        ttl_ms = raw.pttl(keys[0])
    finally:
        raw.close()
    assert text is not None and cookie not in text and SECRETS["alice"] not in text
    record = json.loads(text)
    assert record["token_name"] == "alice" and record["csrf"] == csrf
    assert 8 * HOUR * 1000 - 60_000 < ttl_ms <= 8 * HOUR * 1000  # Redis forgets it on its own


def test_an_unreachable_store_is_a_503_that_says_so_not_a_sign_out(replicas: Replicas) -> None:
    with client(replicas.app()) as browser:
        sign_in(browser, "alice")
        cookie = browser.cookies[COOKIE]
    down = replicas.app(f"redis://{HOST}:{free_port()}/0")
    with with_cookie(down, cookie) as browser:
        page = browser.get("/ui/rollouts")
        assert page.status_code == 503 and page.headers["retry-after"] == "5"
        assert "cannot reach its state store" in page.text and "not signed out" in page.text
        assert "set-cookie" not in page.headers  # the cookie is kept for when Redis is back
        live = browser.get("/ui/live/rollouts")
        assert live.status_code == 503 and live.json()["error"] == "store_unavailable"
        refused = browser.post("/ui/sign-in", data={"token": SECRETS["alice"]})
        assert refused.status_code == 503 and "set-cookie" not in refused.headers
    with with_cookie(replicas.app(), cookie) as browser:  # Redis back: still signed in
        assert browser.get("/ui/rollouts").status_code == 200
