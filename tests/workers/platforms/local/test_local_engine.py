"""The engine walks each shipped policy on the local platform: every action it emits (including
the ones it re-asserts) is applied to real processes behind real NGINX, readiness is polled as
the task does, and the requests through the router end up on the version the engine decided."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.workers.platforms.local.conftest import NAMESPACE, LocalApps, service_command
from tests.workers.rollout_driver import FAIL, Driver, Script, always, healthy, shipped
from workers.actions import (
    AnalysisResult,
    Observation,
    PlatformAction,
    PlatformFailed,
    PlatformReady,
    Tick,
)
from workers.engine import platform_wants
from workers.platforms import Ready
from workers.spec import RolloutSpec
from workers.state import Phase

APP = "payments"


def walk(apps: LocalApps, policy_name: str, version: str, good: bool) -> tuple[Phase, list[str]]:
    """Drive one rollout of ``version`` to its end; the phase and the platform actions applied."""
    policy = shipped(policy_name)
    script: Script = healthy(policy) if good else always(policy, FAIL)
    driver = Driver(policy, rollout_id=f"{APP}-{version}", now=time.time())
    spec = RolloutSpec(version, service_command(version), "local", "s", "c",
                       strategy=policy.strategy.type)  # fmt: skip
    driver.state = replace(driver.state, app=APP, namespace=NAMESPACE, spec=spec)
    applied: list[str] = []
    for _ in range(200):
        state = driver.state
        if state.phase.terminal and state.awaiting is None:
            return state.phase, applied
        driver.at(state.next_due_at or driver.now)
        observation: Observation = Tick()
        if state.awaiting is not None:
            answer = apps.until_ready(state, platform_wants(state, policy))[-1]
            observation = (
                PlatformReady(state.awaiting)
                if answer == Ready()
                else PlatformFailed(getattr(answer, "reason", ""), state.awaiting)
            )
        elif (request := state.analysis_due(driver.now)) is not None:
            observation = AnalysisResult(request, script(request))
        for action in driver.send(observation):
            if isinstance(action, PlatformAction):
                apps.platform.apply(driver.state, action)
                applied.append(type(action).__name__)
    raise AssertionError(f"{policy_name} did not finish: {driver.state.phase}")


@pytest.mark.parametrize(
    ("policy", "version", "good", "expected"),
    [
        ("default-canary", "v2", True, "EnsureCanary SetTraffic SetTraffic SetTraffic "
                                       "SetTraffic Promote"),
        ("targeted-canary", "v3", False, "EnsureCanary SetTraffic Rollback"),
        ("blue-green", "v4", True, "EnsureCanary ScaleNew ScaleNew SwitchActive ScaleDownOld "
                                   "Promote"),
        ("blue-green", "v5", False, "EnsureCanary ScaleNew Rollback"),
        ("rolling", "v6", True, "EnsureCanary ScaleNew ScaleNew ScaleNew ScaleNew Promote"),
        ("rolling", "v7", False, "EnsureCanary ScaleNew Rollback"),
    ],
    ids=["canary-promoted", "targeted-aborted", "blue-green-promoted", "blue-green-aborted",
         "rolling-promoted", "rolling-aborted"],
)  # fmt: skip
def test_the_engine_walks_a_shipped_policy_on_real_processes(
    local_apps: LocalApps, policy: str, version: str, good: bool, expected: str
) -> None:
    if APP not in local_apps.ports:
        local_apps.register(APP, replicas=2)
    stable = local_apps.status(APP).stable_version
    phase, applied = walk(local_apps, policy, version, good)
    assert (phase, " ".join(applied)) == (
        Phase.PROMOTED if good else Phase.ABORTED,
        expected,
    )
    winner = version if good else stable
    status = local_apps.status(APP)
    assert (status.stable_version, status.canary_version) == (winner, None)
    assert [(i.track, i.version, i.healthy) for i in status.instances] == [
        ("stable", winner, True)
    ] * 2
    assert local_apps.served(APP, 40) == {winner: 40}
