"""Every command (abort, promote, promote in full, pause then resume, abort then retry) at every
stage of every strategy, through the API, with the worker that picks it up killed before it
acts; and a worker killed between any two platform actions of a rollout.

The platform here is the in-memory one, which judges readiness as the real ones do: against
everything the rollout requires. The same matrix runs on real processes behind NGINX
(platforms/local/test_local_crashes.py) and on the Kubernetes emulator
(platforms/kubernetes/test_kube_crashes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.policy import load_policy
from tests.workers.rollout_harness import (
    STRATEGIES,
    Harness,
    expected_end,
    give,
    policy_name,
    settled,
    stage_count,
    undisturbed_applies,
    write_policies,
)
from workers.actions import Promote, Rollback
from workers.engine import platform_wants
from workers.platforms import Ready
from workers.platforms.memory import MemoryPlatform
from workers.state import Phase, RolloutState

COMMANDS = ("abort", "promote", "promote-full", "pause-resume", "abort-retry")


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("policies"))


def fresh(policies: Path) -> tuple[Harness, MemoryPlatform]:
    platform = MemoryPlatform()  # the world outlives the workers: every worker gets this one
    return Harness(policies, lambda: platform), platform


def submitter(strategy: str) -> Callable[[Harness], str]:
    def submit(harness: Harness) -> str:
        return harness.submit(
            app="checkout", namespace="shop", version="v2", policy=policy_name(strategy),
            platform="observe", baseline='app="checkout",version="v1"',
            canary='app="checkout",version="v2"',
        )  # fmt: skip

    return submit


def ends_where_its_phase_says(
    platform: MemoryPlatform, state: RolloutState, policies: Path
) -> None:
    policy = load_policy(policies / f"{state.policy}.yaml")
    assert platform.readiness(state, platform_wants(state, policy)) == Ready()
    last = platform.actions_for(state.id)[-1]
    expected = {Phase.PROMOTED: Promote, Phase.ABORTED: Rollback}[state.phase]
    assert isinstance(last, expected), f"{state.phase}: the last action was {last}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_worker_killed_between_any_two_platform_actions_still_promotes(
    strategy: str, policies: Path
) -> None:
    submit = submitter(strategy)
    total = undisturbed_applies(fresh(policies)[0], submit)
    assert total >= 3
    for kill_at in range(total + 1):
        harness, platform = fresh(policies)
        rollout_id = submit(harness)
        if not harness.run(rollout_id, settled, kill_at=kill_at):
            harness.recover()
        state = harness.finish(rollout_id)
        assert state.phase is Phase.PROMOTED, f"killed at {kill_at}: {state}"
        ends_where_its_phase_says(platform, state, policies)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_at_every_stage_through_the_api_with_its_worker_killed(
    strategy: str, command: str, policies: Path
) -> None:
    for stage in range(stage_count(policies, strategy)):
        for applied in (False, True):  # while the stage's change is in flight, then after it
            for killed in (False, True):
                harness, platform = fresh(policies)
                rollout_id = submitter(strategy)(harness)
                harness.run(
                    rollout_id,
                    lambda s, stage=stage, applied=applied: (
                        s.phase is Phase.PROMOTING
                        or (
                            s.phase is Phase.PROGRESSING
                            and s.stage_index >= stage
                            and (s.awaiting is None or not applied)
                        )
                    ),
                )
                where = f"stage {stage}, applied {applied}, killed {killed}"
                state = give(harness, rollout_id, command, killed)
                assert state.phase is expected_end(command), f"{where}: {state}"
                ends_where_its_phase_says(platform, state, policies)


def test_an_abort_before_the_start_leaves_the_platform_untouched(policies: Path) -> None:
    harness, platform = fresh(policies)
    rollout_id = submitter("canary")(harness)
    assert harness.command(rollout_id, "abort") == 202
    assert harness.finish(rollout_id).phase is Phase.ABORTED
    assert platform.actions_for(rollout_id) == []
