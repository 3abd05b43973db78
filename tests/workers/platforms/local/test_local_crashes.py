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

from tests.workers.platforms.local.conftest import NAMESPACE, LocalApps, service_command
from tests.workers.rollout_harness import (
    STRATEGIES,
    Harness,
    Serving,
    Start,
    command_at_every_stage,
    in_the_first_analysis,
    killed_before_every_call,
    policy_name,
    stage_count,
    write_policies,
)
from workers.platforms.local import LocalPlatform

_versions = itertools.count(2)


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("policies"))


@pytest.fixture(scope="module")
def crash_app(local_apps: LocalApps) -> str:
    return local_apps.register("orders", replicas=2)


def world(local_apps: LocalApps, app: str, policies: Path, strategy: str) -> tuple[Start, Serving]:
    """Runs of ``strategy`` on ``app``, each a new version, every worker a new LocalPlatform on
    the same directory (as a restarted process builds one); and the check of what serves."""
    directory = local_apps.platform.state_dir

    def start() -> tuple[Harness, str, str, str]:
        runner = Harness(policies, lambda: LocalPlatform(directory), poll=0.05)
        old, new = local_apps.status(app).stable_version, f"v{next(_versions)}"
        rollout_id = runner.submit(
            app=app, namespace=NAMESPACE, version=new, policy=policy_name(strategy),
            platform="local", image=service_command(new),
            baseline=f'app="{app}",version="{old}"', canary=f'app="{app}",version="{new}"',
        )  # fmt: skip
        return runner, rollout_id, old, new

    def serves_only(version: str, why: str) -> None:
        status = local_apps.status(app)
        assert (status.stable_version, status.canary_version) == (version, None), why
        instances = {(i.track, i.version, i.healthy) for i in status.instances}
        assert instances == {("stable", version, True)}, why
        assert local_apps.served(app, 30) == {version: 30}, why
        assert local_apps.served(app, 10, {"x-tester": "yes"}) == {version: 10}, why

    return start, serves_only


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_worker_killed_between_any_two_actions_ends_promoted_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str
) -> None:
    killed_before_every_call(*world(local_apps, crash_app, policies, strategy))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["abort", "promote-full"])
def test_a_command_at_every_stage_ends_where_it_says_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str, command: str
) -> None:
    start, serves_only = world(local_apps, crash_app, policies, strategy)
    command_at_every_stage(start, stage_count(policies, strategy), command, serves_only)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", ["pause-resume", "abort-retry"])
def test_pause_resume_and_retry_in_the_first_analysis_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str, command: str
) -> None:
    start, serves_only = world(local_apps, crash_app, policies, strategy)
    in_the_first_analysis(start, command, serves_only)
