"""The local platform's NGINX router when it dies: healed whatever any rollout is doing, a master
that died with its workers still alive counted as dead, and a rollout told that its analysis
window saw the outage."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.workers.platforms.local.conftest import LocalApps, gone
from workers.actions import EnsureCanary, SetTraffic
from workers.platforms import NotYet, Ready
from workers.platforms.local import LocalPlatform
from workers.platforms.local.nginx import NginxRouter
from workers.platforms.local.process import children


def master(platform: LocalPlatform) -> int:
    """The NGINX master's PID, from the router's state file (nginx/router.json)."""
    record = json.loads((platform.state_dir / "nginx" / "router.json").read_text())
    return int(record["master"]["pid"])


@pytest.fixture
def app(local_apps: LocalApps) -> str:
    return local_apps.register("ledger")


def test_a_dead_master_whose_workers_still_serve_is_replaced_by_heal(
    local_apps: LocalApps, app: str
) -> None:
    platform = local_apps.platform
    old = master(platform)
    orphans = children(old)
    assert orphans  # NGINX's worker processes
    os.kill(old, signal.SIGKILL)  # the workers live on, serving, obeying no reload
    deadline = time.monotonic() + 5
    while not gone({old}) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert platform.heal() == [f"the router of {platform.state_dir} was not running: restarted it"]
    assert master(platform) != old
    assert gone(orphans)  # stopped, or the new master could not have listened
    assert local_apps.served(app, 10) == {"v1": 10}
    assert platform.heal() == []  # running: nothing to do


def test_heal_without_any_app_does_nothing(tmp_path: Path) -> None:
    assert LocalPlatform(tmp_path / "empty").heal() == []


def test_a_watched_rollout_is_told_the_router_restarted_within_its_window(
    local_apps: LocalApps, app: str
) -> None:
    platform = local_apps.platform
    rollout = local_apps.rollout(app, "v2")
    wants = (EnsureCanary(), SetTraffic(20))
    assert local_apps.apply(rollout, *wants) == Ready()
    watching = replace(rollout, window_start=time.time())  # analysing since now, awaiting nothing
    assert platform.readiness(watching, wants) == Ready()
    os.killpg(master(platform), signal.SIGKILL)  # NGINX gone, master and workers
    answer = platform.readiness(watching, wants)  # converges: the router is started again
    assert isinstance(answer, NotYet) and "the router was down and was restarted" in answer.detail
    assert local_apps.served(app, 10, {"x-tester": "no"})
    later = replace(rollout, window_start=time.time() + 1.0)  # a window begun after that
    assert platform.readiness(later, wants) == Ready()
    awaiting = replace(watching, awaiting="1:0:repair")  # re-applying: no complaint
    assert platform.readiness(awaiting, wants) == Ready()
    local_apps.clean(app)


def test_a_master_that_dies_just_before_its_reload_is_started_again(
    local_apps: LocalApps, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = local_apps.platform
    old = master(platform)
    alive = NginxRouter.master

    def dies_after_the_check(router: NginxRouter) -> dict[str, int] | None:
        found = alive(router)
        if found is not None:
            os.killpg(found["pid"], signal.SIGKILL)  # between the check and the SIGHUP
            while not gone({found["pid"]}):
                time.sleep(0.01)
        return found

    monkeypatch.setattr(NginxRouter, "master", dies_after_the_check)
    rollout = local_apps.rollout(app, "v3")
    platform.apply(rollout, EnsureCanary())  # a change: publish reloads, finds it gone, starts
    monkeypatch.undo()
    assert master(platform) != old
    assert local_apps.apply(rollout, EnsureCanary(), SetTraffic(0)) == Ready()
    assert local_apps.served(app, 10) == {"v1": 10}
    local_apps.clean(app)
