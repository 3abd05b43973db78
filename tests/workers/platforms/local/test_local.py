"""The local platform with real NGINX and real processes: what a request through the router
sees after each action a canary or targeted rollout asks for, and how failures are reported."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.workers.platforms.local.conftest import NAMESPACE, LocalApps, gone, service_command
from workers.actions import EnsureCanary, Match, Promote, Rollback, SetTraffic
from workers.errors import TemporaryError
from workers.platforms import Failed, NotYet, PlatformError, Ready, platform_for
from workers.platforms.local import LocalPlatform
from workers.platforms.local.model import StaleRolloutError
from workers.platforms.local.process import file_lock
from workers.state import Phase

APP = "checkout"


@pytest.fixture
def app(local_apps: LocalApps) -> Iterator[str]:
    """The app, registered once (promotions change its stable version); left clean."""
    if APP not in local_apps.ports:
        local_apps.register(APP)
    yield APP
    local_apps.clean(APP)


def test_register_runs_the_stable_version_behind_nginx_once(local_apps: LocalApps) -> None:
    local_apps.register(APP)
    status = local_apps.status(APP)
    assert status.canary_version is None
    assert [(i.track, i.healthy) for i in status.instances] == [("stable", True)] * 2
    assert local_apps.served(APP, 20) == {status.stable_version: 20}
    local_apps.register(APP)  # the same declaration again: nothing restarts
    assert local_apps.status(APP).pids() == status.pids()


def test_a_weight_sends_that_share_of_requests_to_the_canary(
    local_apps: LocalApps, app: str
) -> None:
    stable = local_apps.status(app).stable_version
    # A canary that takes a second to start, and an apply that does not wait for it: readiness
    # must say what it waits for, however fast the router reloads.
    slow = f"sh -c {shlex.quote('sleep 1 && exec ' + service_command('v2'))}"
    rollout = local_apps.rollout(app, "v2", command=slow)
    local_apps.platform.settle_seconds = 0.0  # apply returns before the canary is up
    try:
        local_apps.platform.apply(rollout, EnsureCanary())
        answers = local_apps.until_ready(rollout, (EnsureCanary(),))
    finally:
        local_apps.platform.settle_seconds = LocalPlatform.settle_seconds
    assert isinstance(answers[0], NotYet) and answers[-1] == Ready()
    assert "0 of 1 canary instance(s) of v2 up" in answers[0].detail
    assert local_apps.served(app, 20) == {stable: 20}  # no traffic until told otherwise
    assert local_apps.apply(rollout, SetTraffic(25)) == Ready()
    served = local_apps.served(app, 400)
    assert set(served) == {stable, "v2"}
    assert 57 <= served["v2"] <= 143  # 25% of 400 is 100, sd 8.7: about 5 sd either side
    status = local_apps.status(app)
    assert (status.canary_version, status.weight, status.rollout_id) == ("v2", 25, rollout.id)


def test_header_cookie_and_regex_matches_reach_the_canary_whatever_the_weight(
    local_apps: LocalApps, app: str
) -> None:
    stable = local_apps.status(app).stable_version
    rollout = local_apps.rollout(app, "v2")
    odd = 'a"b\\c$d;'  # quotes, a backslash and NGINX's variable sign are matched literally
    rules = (
        Match("header", "x-region", "KR"),
        Match("cookie", "canary-beta", "yes"),
        Match("header", "x-user", r"^tester-[0-9]+$", regex=True),
        Match("header", "x-odd", odd),
    )
    assert local_apps.apply(rollout, EnsureCanary(), SetTraffic(0, rules)) == Ready()
    assert local_apps.served(app, 30) == {stable: 30}
    assert local_apps.served(app, 30, {"x-region": "KR"}) == {"v2": 30}
    assert local_apps.served(app, 10, {"x-region": "kr"}) == {stable: 10}  # exact, with case
    assert local_apps.served(app, 10, {"cookie": "a=1; canary-beta=yes"}) == {"v2": 10}
    assert local_apps.served(app, 10, {"cookie": "canary-beta=yesterday"}) == {stable: 10}
    assert local_apps.served(app, 10, {"x-user": "tester-42"}) == {"v2": 10}
    assert local_apps.served(app, 10, {"x-user": "tester-x"}) == {stable: 10}
    assert local_apps.served(app, 10, {"x-odd": odd}) == {"v2": 10}
    assert local_apps.served(app, 10, {"x-odd": "abcd;"}) == {stable: 10}
    assert local_apps.status(app).match == rules


def test_rollback_moves_traffic_back_and_stops_the_canary(local_apps: LocalApps, app: str) -> None:
    stable = local_apps.status(app).stable_version
    rollout = local_apps.rollout(app, "v2")
    local_apps.apply(rollout, EnsureCanary(), SetTraffic(50, (Match("header", "x-region", "KR"),)))
    canary = local_apps.status(app).pids("canary")
    assert len(canary) == 1 and not gone(canary)
    assert local_apps.apply(rollout, Rollback("errors up")) == Ready()
    assert local_apps.served(app, 100) == {stable: 100}
    assert local_apps.served(app, 20, {"x-region": "KR"}) == {stable: 20}
    assert gone(canary)
    status = local_apps.status(app)
    assert (status.canary_version, status.weight, status.match) == (None, 0, ())
    assert len(status.pids("stable")) == 2


def test_promote_makes_the_new_version_the_stable_one(local_apps: LocalApps, app: str) -> None:
    old = local_apps.status(app).pids("stable")
    rollout = local_apps.rollout(app, "v3")
    local_apps.apply(rollout, EnsureCanary(), SetTraffic(50))
    assert local_apps.apply(rollout, Promote()) == Ready()
    assert local_apps.served(app, 50) == {"v3": 50}
    assert gone(old)
    status = local_apps.status(app)
    assert (status.stable_version, status.canary_version) == ("v3", None)
    assert [(i.track, i.version, i.healthy) for i in status.instances] == [
        ("stable", "v3", True)
    ] * 2
    assert local_apps.apply(rollout, Promote()) == Ready()  # re-asserted: nothing changes
    assert local_apps.status(app).pids() == status.pids()
    targets = json.loads(local_apps.platform.targets_file().read_text())
    labels = [group["labels"] for group in targets if group["labels"]["app"] == app]
    expected = {"app": app, "namespace": NAMESPACE, "version": "v3", "track": "stable"}
    assert [{k: v for k, v in found.items() if k != "pod"} for found in labels] == [expected] * 2
    ports = {instance.port for instance in status.instances}
    assert {found["pod"] for found in labels} == {f"{app}-{port}" for port in ports}  # one each


def test_a_canary_that_exits_at_once_fails_with_its_exit_code(
    local_apps: LocalApps, app: str
) -> None:
    python = shlex.quote(sys.executable)
    crash = (
        f"{python} -c \"import sys; print('no database on', sys.argv[1]); sys.exit(3)\" {{port}}"
    )
    rollout = local_apps.rollout(app, "v4", command=crash)
    answer = local_apps.apply(rollout, EnsureCanary(), SetTraffic(10))
    assert isinstance(answer, Failed)
    assert "canary instance of v4" in answer.reason
    assert "exited with code 3: no database on" in answer.reason
    stable = local_apps.status(app).stable_version
    assert local_apps.served(app, 50) == {stable: 50}  # it never took traffic
    failed = replace(rollout, phase=Phase.FAILED)
    assert local_apps.apply(failed, Rollback("canary crashed")) == Ready()
    assert local_apps.status(app).canary_version is None


def test_a_restarted_worker_adopts_the_app_and_carries_on(local_apps: LocalApps, app: str) -> None:
    first = local_apps.platform
    rollout = local_apps.rollout(app, "v5")
    first.apply(rollout, EnsureCanary())
    first.apply(rollout, SetTraffic(30))
    second = LocalPlatform(first.state_dir)  # a new worker process: nothing in memory
    assert second.status(NAMESPACE, app) == first.status(NAMESPACE, app)
    wants = (EnsureCanary(), SetTraffic(30))
    assert second.readiness(rollout, wants) == Ready()  # asked before any apply here
    second.apply(rollout, Promote())
    assert LocalApps(second, local_apps.ports).until_ready(rollout, (Promote(),))[-1] == Ready()
    assert first.status(NAMESPACE, app) == second.status(NAMESPACE, app)
    assert local_apps.served(app, 30) == {"v5": 30}


def test_a_bad_configuration_is_refused_and_the_router_keeps_serving(
    local_apps: LocalApps, app: str
) -> None:
    rollout = local_apps.rollout(app, "v6")
    korea = SetTraffic(0, (Match("header", "x-region", "KR"),))
    local_apps.apply(rollout, EnsureCanary(), korea)
    before = local_apps.status(app)
    bad = (Match("header", "x-user", "(unclosed", regex=True),)
    with pytest.raises(PlatformError, match=r"nginx refused the configuration: .*\(unclosed"):
        local_apps.platform.apply(rollout, SetTraffic(20, bad))
    assert local_apps.status(app) == before  # nothing of it was recorded
    assert local_apps.served(app, 20, {"x-region": "KR"}) == {"v6": 20}
    assert local_apps.served(app, 20) == {before.stable_version: 20}
    assert local_apps.until_ready(rollout, (EnsureCanary(), korea))[-1] == Ready()


def test_actions_of_an_older_rollout_do_not_undo_a_newer_one(
    local_apps: LocalApps, app: str
) -> None:
    older, newer = local_apps.rollout(app, "v7"), local_apps.rollout(app, "v8")
    local_apps.apply(newer, EnsureCanary(), SetTraffic(10))
    with pytest.raises(StaleRolloutError, match=f"{newer.id}.*is newer"):
        local_apps.platform.apply(older, Rollback("late"))
    retry = replace(newer, attempt=2)
    local_apps.apply(retry, EnsureCanary())
    with pytest.raises(StaleRolloutError):
        local_apps.platform.apply(newer, SetTraffic(90))  # attempt 1 is older than attempt 2
    status = local_apps.status(app)
    assert (status.canary_version, status.weight, status.rollout_id) == ("v8", 10, newer.id)
    assert isinstance(local_apps.platform.readiness(older, (EnsureCanary(),)), Failed)
    aborting = replace(older, phase=Phase.ABORTING)  # nothing of it is left to roll back
    assert local_apps.platform.readiness(aborting, (Rollback("late"),)) == Ready()


def test_a_lock_held_by_another_worker_is_a_temporary_error(
    local_apps: LocalApps, app: str
) -> None:
    platform = LocalPlatform(local_apps.platform.state_dir)
    platform.lock_timeout = 0.2
    rollout = local_apps.rollout(app, "v9")
    held = file_lock(platform.state_dir / "locks" / f"{NAMESPACE}.{app}.lock", 1.0)
    with held, pytest.raises(TemporaryError, match="locked by another worker"):
        platform.apply(rollout, EnsureCanary())
    assert local_apps.status(app).canary_version is None  # nothing was done


def test_an_unknown_app_says_how_to_register_it(local_apps: LocalApps) -> None:
    rollout = local_apps.rollout("never-registered", "v2")
    with pytest.raises(PlatformError, match=r"not registered.*LocalPlatform\.register"):
        local_apps.platform.apply(rollout, EnsureCanary())
    answer = local_apps.platform.readiness(rollout, (EnsureCanary(),))
    assert isinstance(answer, Failed) and "not registered" in answer.reason


def test_the_registry_builds_the_platform_of_canarist_local_dir(
    local_platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARIST_LOCAL_DIR", str(local_platform.state_dir))
    platform = platform_for("local")
    assert isinstance(platform, LocalPlatform)
    assert platform.state_dir == local_platform.state_dir
    assert platform_for("local") is platform  # one per directory and process
