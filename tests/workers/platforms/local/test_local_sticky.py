"""Sticky splits on the local platform's real NGINX: each user keeps one version at a weight, a
user on the canary stays there as the weight grows (5 -> 25 -> 50), and the canary's share of
users follows the weight; keyed on the app's header, or on the cookie the router sets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from analyzer.policy.traffic import StickyKey, StickyKind
from tests.workers.platforms.local.conftest import LocalApps
from workers.actions import EnsureCanary, Match, SetTraffic
from workers.platforms import Ready
from workers.platforms.local.nginx import AppRoute, NginxRouter
from workers.platforms.local.record import STICKY_FORMAT, AppRecord
from workers.spec import RolloutTraffic
from workers.state import RolloutState

USERS = 50
REQUESTS_PER_WEIGHT = 33  # 99 requests per user across the three weights
WEIGHTS = (5, 25, 50)
# the canary's share of 50 users at each weight, with room for chance (random cookie ids): a
# per-request split would put every user on both versions long before these bounds matter
SHARE_BOUNDS = {5: (0, 10), 25: (5, 22), 50: (13, 37)}


@pytest.fixture
def app(local_apps: LocalApps) -> str:
    return local_apps.register("profile")


def sticky_rollout(local_apps: LocalApps, app: str, kind: StickyKind, name: str) -> RolloutState:
    traffic = RolloutTraffic(sticky=StickyKey(kind, name))
    return local_apps.rollout(app, "v2", traffic=traffic)


def versions_by_user(
    local_apps: LocalApps, app: str, clients: dict[str, httpx.Client]
) -> dict[str, Counter[str]]:
    """Which versions answered each user's requests, through the router."""
    url = f"http://127.0.0.1:{local_apps.ports[app]}/"
    seen: dict[str, Counter[str]] = {user: Counter() for user in clients}
    for _ in range(REQUESTS_PER_WEIGHT):
        for user, client in clients.items():
            response = client.get(url)
            assert response.status_code == 200, response.text
            seen[user][response.headers["x-canarist-version"]] += 1
    return seen


def walk_weights(
    local_apps: LocalApps, app: str, rollout: RolloutState, clients: dict[str, httpx.Client]
) -> dict[int, set[str]]:
    """The users on the canary at each weight; each user saw one version at each weight."""
    on_canary: dict[int, set[str]] = {}
    assert local_apps.apply(rollout, EnsureCanary(), SetTraffic(WEIGHTS[0])) == Ready()
    for weight in WEIGHTS:
        if weight != WEIGHTS[0]:
            assert local_apps.apply(rollout, SetTraffic(weight)) == Ready()
        seen = versions_by_user(local_apps, app, clients)
        mixed = {user: dict(versions) for user, versions in seen.items() if len(versions) != 1}
        assert not mixed, f"at {weight}% these users saw both versions: {mixed}"
        on_canary[weight] = {user for user, versions in seen.items() if "v2" in versions}
        low, high = SHARE_BOUNDS[weight]
        assert low <= len(on_canary[weight]) <= high, (weight, len(on_canary[weight]))
    return on_canary


def test_a_header_keeps_each_user_on_one_version_as_the_weight_grows(
    local_apps: LocalApps, app: str
) -> None:
    rollout = sticky_rollout(local_apps, app, StickyKind.HEADER, "x-user-id")
    clients = {
        f"user-{number}": httpx.Client(
            trust_env=False, timeout=5, headers={"x-user-id": f"user-{number}"}
        )
        for number in range(USERS)
    }
    try:
        on_canary = walk_weights(local_apps, app, rollout, clients)
    finally:
        for client in clients.values():
            client.close()
    assert on_canary[5] <= on_canary[25] <= on_canary[50]  # nobody leaves the canary
    assert on_canary[5], "the user ids are fixed: some are hashed below 5%"
    assert len(on_canary[5]) < len(on_canary[25]) < len(on_canary[50])  # new users join
    written = json.loads((local_apps.platform.state_dir / "apps" / f"shop.{app}.json").read_text())
    assert written["format"] == STICKY_FORMAT  # a release before sticky refuses it by name
    assert AppRecord.from_record(written).traffic.sticky == StickyKey(
        StickyKind.HEADER, "x-user-id"
    )
    local_apps.clean(app)


def test_the_router_sets_a_cookie_and_keeps_each_cookie_jar_on_one_version(
    local_apps: LocalApps, app: str
) -> None:
    rollout = sticky_rollout(local_apps, app, StickyKind.ROUTER_COOKIE, "canarist-split")
    clients = {
        f"user-{number}": httpx.Client(trust_env=False, timeout=5) for number in range(USERS)
    }
    try:
        on_canary = walk_weights(local_apps, app, rollout, clients)
        jars = {user: client.cookies.get("canarist-split") for user, client in clients.items()}
        url = f"http://127.0.0.1:{local_apps.ports[app]}/"
        with httpx.Client(trust_env=False, timeout=5) as newcomer:
            first = newcomer.get(url).headers.get("set-cookie", "")
            assert first.startswith("canarist-split=") and "Path=/" in first
            assert "set-cookie" not in newcomer.get(url).headers  # set once, when absent
    finally:
        for client in clients.values():
            client.close()
    assert all(jars.values()) and len(set(jars.values())) == USERS  # one random id per user
    assert on_canary[5] <= on_canary[25] <= on_canary[50]
    local_apps.clean(app)


def test_the_apps_own_cookie_keys_the_split_and_the_router_sets_none(
    local_apps: LocalApps, app: str
) -> None:
    rollout = sticky_rollout(local_apps, app, StickyKind.APP_COOKIE, "session")
    assert local_apps.apply(rollout, EnsureCanary(), SetTraffic(50)) == Ready()
    url = f"http://127.0.0.1:{local_apps.ports[app]}/"
    seen: dict[str, Counter[str]] = {}
    with httpx.Client(trust_env=False, timeout=5) as client:
        for number in range(USERS):
            cookie = {"cookie": f"theme=dark; session=s{number}; lang=en"}
            for _ in range(10):
                response = client.get(url, headers=cookie)
                assert "set-cookie" not in response.headers
                seen.setdefault(f"s{number}", Counter())[
                    response.headers["x-canarist-version"]
                ] += 1
    assert all(len(versions) == 1 for versions in seen.values()), seen
    on_canary = sum("v2" in versions for versions in seen.values())
    low, high = SHARE_BOUNDS[50]
    assert low <= on_canary <= high
    local_apps.clean(app)


def test_a_sticky_split_beside_a_fresh_baseline_and_an_audience_passes_nginx_t(
    tmp_path: Path,
) -> None:
    audience = (Match("header", "x-beta", "yes"),)
    routes = [
        AppRoute(f"ns_web_{kind.value}", 8080 + index, (1,), (2,), 25, audience, (3,), 25,
                 StickyKey(kind, "canarist-split"))
        for index, kind in enumerate(StickyKind)
    ]  # fmt: skip
    NginxRouter(tmp_path, "nginx").check(routes)  # nginx -t accepts every form, side by side
