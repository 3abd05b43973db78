"""The crash and command matrix on real processes behind a real NGINX: a worker killed between
any two platform actions, and abort or full promotion through the API at every stage with the
worker that takes the command up killed before it acts. Each run ends with the router, the
instances and the app record exactly where the rollout's final phase says: requests (including
the targeted audience's) reach only the version that phase names, and only its instances run.

This is the test that would have caught "rolled back" said while the canary kept serving.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from analyzer.policy import load_policy
from tests.workers.platforms.conftest import NAMESPACE, LocalApps, service_command
from tests.workers.rollout_harness import (
    STRATEGIES,
    Harness,
    policy_name,
    settled,
    write_policies,
)
from tests.workers.test_crashes_and_commands import give
from workers.platforms.local import LocalPlatform
from workers.state import Phase
from workers.strategies import plan_for

_versions = itertools.count(2)


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("policies"))


@pytest.fixture(scope="module")
def crash_app(local_apps: LocalApps) -> str:
    return local_apps.register("orders", replicas=2)


def harness(local_apps: LocalApps, policies: Path) -> Harness:
    """Every worker a new LocalPlatform on the same directory, as a restarted process."""
    directory = local_apps.platform.state_dir
    return Harness(policies, lambda: LocalPlatform(directory), poll=0.05)


def submit(runner: Harness, local_apps: LocalApps, app: str, strategy: str) -> tuple[str, str, str]:
    """A rollout of a new version of ``app``: its id, the stable version and the new one."""
    old, new = local_apps.status(app).stable_version, f"v{next(_versions)}"
    rollout_id = runner.submit(
        app=app, namespace=NAMESPACE, version=new, policy=policy_name(strategy),
        platform="local", image=service_command(new), baseline=f'app="{app}",version="{old}"',
        canary=f'app="{app}",version="{new}"',
    )  # fmt: skip
    return rollout_id, old, new


def serves_only(local_apps: LocalApps, app: str, version: str, why: str) -> None:
    status = local_apps.status(app)
    assert (status.stable_version, status.canary_version) == (version, None), why
    assert {(i.track, i.version, i.healthy) for i in status.instances} == {
        ("stable", version, True)
    }, why
    assert local_apps.served(app, 30) == {version: 30}, why
    assert local_apps.served(app, 10, {"x-tester": "yes"}) == {version: 10}, why


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_worker_killed_between_any_two_actions_ends_promoted_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str
) -> None:
    runner = harness(local_apps, policies)
    rollout_id, _, new = submit(runner, local_apps, crash_app, strategy)
    assert runner.finish(rollout_id).phase is Phase.PROMOTED
    serves_only(local_apps, crash_app, new, "undisturbed")
    for kill_at in range(runner.applies + 1):
        runner = harness(local_apps, policies)
        rollout_id, _, new = submit(runner, local_apps, crash_app, strategy)
        if not runner.run(rollout_id, settled, kill_at=kill_at):
            runner.recover()
        state = runner.finish(rollout_id)
        assert state.phase is Phase.PROMOTED, f"killed at {kill_at}: {state}"
        serves_only(local_apps, crash_app, new, f"killed at {kill_at}")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["abort", "promote-full"])
def test_a_command_at_every_stage_ends_where_it_says_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str, command: str
) -> None:
    policy = load_policy(policies / f"{policy_name(strategy)}.yaml")
    for stage in range(len(plan_for(policy.strategy))):
        runner = harness(local_apps, policies)
        rollout_id, old, new = submit(runner, local_apps, crash_app, strategy)
        runner.run(
            rollout_id,
            lambda s, stage=stage: (
                s.phase is Phase.PROMOTING
                or (s.phase is Phase.PROGRESSING and s.stage_index >= stage and s.awaiting is None)
            ),
        )
        state = give(runner, rollout_id, command, killed=True)
        expected = Phase.ABORTED if command == "abort" else Phase.PROMOTED
        assert state.phase is expected, f"stage {stage}: {state}"
        serves_only(local_apps, crash_app, old if command == "abort" else new, f"stage {stage}")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["pause-resume", "abort-retry"])
def test_pause_resume_and_retry_in_the_first_analysis_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str, command: str
) -> None:
    runner = harness(local_apps, policies)
    rollout_id, _, new = submit(runner, local_apps, crash_app, strategy)
    runner.run(rollout_id, lambda s: s.phase is Phase.PROGRESSING and s.window_start is not None)
    assert give(runner, rollout_id, command, killed=True).phase is Phase.PROMOTED
    serves_only(local_apps, crash_app, new, command)
