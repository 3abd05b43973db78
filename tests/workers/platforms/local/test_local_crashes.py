"""The crash and command matrix on real processes behind a real NGINX: a worker killed between
any two platform actions, and abort or full promotion through the API at every stage with the
worker that takes the command up killed before it acts; each strategy's policy, and the canary
compared with a fresh baseline (``canary-fresh``: baseline processes beside the canary's with
their share of NGINX's split, stopped at promotion and abort). Each run ends with the router, the
instances and the app record exactly where the rollout's final phase says: requests (including
the targeted audience's) reach only the version that phase names, and only its instances run.

This is the test that would have caught "rolled back" said while the canary kept serving.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.workers.platforms.local.conftest import NAMESPACE, LocalApps, gone, service_command
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


def world(
    local_apps: LocalApps, app: str, policies: Path, strategy: str, baseline: list[set[int]]
) -> tuple[Start, Serving]:
    """Runs of ``strategy`` (a policy name: ``canary-fresh`` runs a fresh baseline) on ``app``,
    each a new version, every worker a new LocalPlatform on the same directory (as a restarted
    process builds one); and the check of what serves. ``baseline`` collects the fresh
    baseline's processes as seen before each task runs."""
    directory = local_apps.platform.state_dir

    def note_baseline() -> None:
        baseline.append(local_apps.status(app).pids("baseline"))

    def start() -> tuple[Harness, str, str, str]:
        runner = Harness(
            policies, lambda: LocalPlatform(directory), settle=note_baseline, poll=0.05
        )
        old, new = local_apps.status(app).stable_version, f"v{next(_versions)}"
        rollout_id = runner.submit(
            app=app, namespace=NAMESPACE, version=new, policy=policy_name(strategy),
            platform="local", image=service_command(new),
            baseline=f'app="{app}",version="{old}"', canary=f'app="{app}",version="{new}"',
        )  # fmt: skip
        fresh = bool(runner.state(rollout_id).spec.fresh_baseline_selector)
        assert fresh is strategy.endswith("fresh")
        return runner, rollout_id, old, new

    def serves_only(version: str, why: str) -> None:
        status = local_apps.status(app)
        assert (status.stable_version, status.canary_version) == (version, None), why
        instances = {(i.track, i.version, i.healthy) for i in status.instances}
        assert instances == {("stable", version, True)}, why
        assert local_apps.served(app, 30) == {version: 30}, why
        assert local_apps.served(app, 10, {"x-tester": "yes"}) == {version: 10}, why
        if strategy.endswith("fresh"):  # it ran, and no process of it runs any more
            assert any(baseline), f"{why}: no fresh baseline ever ran"
            assert gone(set().union(*baseline)), f"{why}: a fresh baseline process still runs"

    return start, serves_only


CASES = [*STRATEGIES, "canary-fresh"]  # a fresh baseline: canary strategies only


@pytest.mark.parametrize("strategy", CASES)
def test_a_worker_killed_between_any_two_actions_ends_promoted_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str
) -> None:
    killed_before_every_call(*world(local_apps, crash_app, policies, strategy, []))


@pytest.mark.parametrize("strategy", CASES)
@pytest.mark.parametrize("command", ["abort", "promote-full"])
def test_a_command_at_every_stage_ends_where_it_says_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str, command: str
) -> None:
    start, serves_only = world(local_apps, crash_app, policies, strategy, [])
    command_at_every_stage(start, stage_count(policies, strategy), command, serves_only)


@pytest.mark.parametrize("strategy", CASES)
@pytest.mark.parametrize("command", ["pause-resume", "abort-retry"])
def test_pause_resume_and_retry_in_the_first_analysis_on_real_processes(
    local_apps: LocalApps, crash_app: str, policies: Path, strategy: str, command: str
) -> None:
    baseline: list[set[int]] = []
    start, serves_only = world(local_apps, crash_app, policies, strategy, baseline)
    in_the_first_analysis(start, command, serves_only)
    if strategy.endswith("fresh"):
        # Ran for the analysis and stopped at the end; an abort stops it and the retry's first
        # stage starts it again.
        ran = [running for running, _ in itertools.groupby(bool(pids) for pids in baseline)]
        expected = [False, True, False, True, False] if command == "abort-retry" else None
        assert ran == (expected or [False, True, False]), baseline
