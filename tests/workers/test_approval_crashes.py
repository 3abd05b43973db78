"""The manual confirm-promotion gate through the real doors and task code (the API over intake,
``workers.tasks.advance`` and ``reconcile``, delivery), with the worker killed while it waits
and right after the approval is saved: every run promotes exactly once, on the approval, and the
audit trail says who approved and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from canarist.api import create_app
from canarist.settings import ApiToken, Settings, hash_token
from tests.workers.rollout_harness import STRATEGIES, Harness, policy_name, write_policies
from workers.actions import EventKind, Promote
from workers.platforms.memory import MemoryPlatform
from workers.state import Phase, RolloutState


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The harness's policy of each strategy, and a ``…-manual`` twin that asks for approval
    and alerts the route ``oncall``."""
    directory = write_policies(tmp_path_factory.mktemp("policies"))
    for strategy in STRATEGIES:
        name = policy_name(strategy)
        text = (directory / f"{name}.yaml").read_text()
        manual = text.replace(f"name: {name}\n", f"name: {name}-manual\nalerts: [oncall]\n")
        manual = manual.replace(
            f"  type: {strategy}\n", f"  type: {strategy}\n  confirm_promotion: manual\n"
        )
        assert "confirm_promotion: manual" in manual
        (directory / f"{name}-manual.yaml").write_text(manual)
    return directory


def start(policies: Path, strategy: str) -> tuple[Harness, MemoryPlatform, str]:
    platform = MemoryPlatform()
    harness = Harness(policies, lambda: platform)
    rollout_id = harness.submit(
        app="checkout", namespace="shop", version="v2", policy=f"{policy_name(strategy)}-manual",
        platform="observe", baseline='app="checkout",version="v1"',
        canary='app="checkout",version="v2"',
    )  # fmt: skip
    return harness, platform, rollout_id


def waiting(state: RolloutState) -> bool:
    return state.phase is Phase.AWAITING_APPROVAL


def promoted(state: RolloutState) -> bool:
    return state.phase is Phase.PROMOTED and state.awaiting is None


def deliver(harness: Harness) -> None:
    runtime, _ = harness.worker()
    while runtime.delivery.run():
        pass


def promotes(harness: Harness, platform: MemoryPlatform, rollout_id: str) -> int:
    return sum(isinstance(a, Promote) for a in platform.actions_for(rollout_id))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_gate_holds_until_approved_and_a_worker_killed_around_it_promotes_once(
    strategy: str, policies: Path
) -> None:
    undisturbed, platform, rollout_id = start(policies, strategy)
    assert undisturbed.run(rollout_id, waiting)
    since = undisturbed.clock()  # it holds: background looks go on, never a promotion
    assert undisturbed.run(rollout_id, lambda s: (s.last_look_at or 0.0) > since + 30.0)
    assert (
        waiting(undisturbed.state(rollout_id)) and promotes(undisturbed, platform, rollout_id) == 0
    )
    assert undisturbed.command(rollout_id, "approve", reason="checked the dashboards") == 202
    undisturbed.finish(rollout_id)
    after_approval = undisturbed.applies  # the platform calls of one undisturbed approval
    killed = 0
    for kill_at in range(after_approval + 2):
        harness, platform, rollout_id = start(policies, strategy)
        assert harness.run(rollout_id, waiting)
        harness.queued.advance.clear()  # the worker dies while it waits: its messages are gone
        harness.recover()
        assert harness.run(
            rollout_id, lambda s: s.last_look_at is not None and s.next_look_at is not None
        )
        assert waiting(harness.state(rollout_id))
        assert harness.command(rollout_id, "approve", reason="checked the dashboards") == 202
        applies = harness.applies
        if not harness.run(rollout_id, promoted, kill_at=kill_at):  # killed after the save
            killed += 1
            harness.recover()
        state = harness.finish(rollout_id)
        assert state.phase is Phase.PROMOTED, f"killed at {kill_at}: {state}"
        assert harness.applies >= applies
        deliver(harness)
        kinds = [notice.kind for notice in harness.oncall.notices]
        assert kinds.count("promoted") == 1, f"killed at {kill_at}: {kinds}"
        assert "awaiting_approval" not in kinds  # the default route does not follow it
        trail = harness.store.events(rollout_id, None, 500)
        moves = [e for e in trail if e.kind == EventKind.PHASE and e.data.get("to") == "promoting"]
        assert len(moves) == 1 and moves[0].actor == "operator", moves
        assert "approve by operator: checked the dashboards" in moves[0].message
        done = [e for e in trail if e.kind == EventKind.PHASE and e.data.get("to") == "promoted"]
        assert len(done) == 1
    assert killed >= 1  # a worker died between the saved approval and the promotion


def test_approve_is_refused_with_where_the_rollout_is_and_abort_while_waiting_aborts(
    policies: Path,
) -> None:
    harness, platform, rollout_id = start(policies, "canary")
    harness.run(rollout_id, lambda s: s.stage_index == 1 and s.awaiting is None)
    response = harness.api.post(
        f"/v1/rollouts/{rollout_id}/approve",
        headers={"Authorization": "Bearer cnr_harness-operator"},
    )
    assert response.status_code == 409
    assert "not awaiting approval: it is at stage 2 of 5, analysing" in response.json()["detail"]
    harness.run(rollout_id, waiting)
    assert harness.command(rollout_id, "abort", reason="not today") == 202
    state = harness.finish(rollout_id)
    assert state.phase is Phase.ABORTED and promotes(harness, platform, rollout_id) == 0


def test_promote_full_while_waiting_is_the_approval(policies: Path) -> None:
    harness, _, rollout_id = start(policies, "rolling")
    harness.run(rollout_id, waiting)
    assert harness.command(rollout_id, "promote", full=True) == 202
    assert harness.finish(rollout_id).phase is Phase.PROMOTED
    trail = harness.store.events(rollout_id, None, 500)
    (move,) = [e for e in trail if e.kind == EventKind.PHASE and e.data.get("to") == "promoting"]
    assert "promote --full by operator counts as the approval" in move.message


def test_a_token_of_another_namespace_cannot_approve(policies: Path) -> None:
    harness, platform, rollout_id = start(policies, "canary")
    harness.run(rollout_id, waiting)
    tokens = [
        ApiToken(
            name="payments-ops",
            sha256=hash_token("cnr_payments"),
            namespaces=["payments"],
            roles=["operate"],
        ),
        ApiToken(
            name="shop-reader", sha256=hash_token("cnr_reader"), namespaces=["shop"], roles=["read"]
        ),
    ]
    api = TestClient(create_app(Settings(api_tokens=tokens, policy_dir=policies), harness.intake))
    url = f"/v1/rollouts/{rollout_id}/approve"
    other = api.post(url, headers={"Authorization": "Bearer cnr_payments"})
    unknown = api.post(
        "/v1/rollouts/no-such-rollout/approve", headers={"Authorization": "Bearer cnr_payments"}
    )
    assert (other.status_code, unknown.status_code) == (404, 404), other.text
    assert api.post(url, headers={"Authorization": "Bearer cnr_reader"}).status_code == 403
    assert waiting(harness.state(rollout_id)) and promotes(harness, platform, rollout_id) == 0
