"""``traffic.sticky`` at submit: kept in the rollout (a format-4 record), and refused on Kubernetes
when the policy's router cannot key a split on a user, even without a router named."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.policy.traffic import StickyKey, StickyKind
from tests.workers.conftest import DEMO_POLICY, job
from workers.errors import InvalidJobError
from workers.intake import Intake
from workers.state import PINNED_POLICY_FORMAT, STICKY_FORMAT, RolloutState
from workers.store import MemoryStateStore

STICKY = DEMO_POLICY.replace("name: demo", "name: sticky") + (
    "traffic:\n  sticky: {header: x-user-id}\n"
)


def test_a_sticky_policy_without_a_router_runs_locally_and_is_refused_on_kubernetes(
    intake: Intake, memory_store: MemoryStateStore, policy_dir: Path
) -> None:
    (policy_dir / "sticky.yaml").write_text(STICKY)
    with pytest.raises(InvalidJobError) as refused:
        intake.submit(job(policy="sticky", platform="kubernetes"), "alice")
    assert str(refused.value).startswith(
        "policy 'sticky': traffic.sticky: traffic.router replicas cannot keep a user on one "
        "version (kube-proxy picks a pod per connection"
    )
    local = job(policy="sticky", platform="local", image="svc --port {port}")
    submitted = intake.submit(local, "alice")
    state = memory_store.load(submitted.rollout_id).state
    assert state.spec.traffic.sticky == StickyKey(StickyKind.HEADER, "x-user-id")
    record = state.to_record()
    assert record["format"] == STICKY_FORMAT  # a release before sticky refuses it by name
    assert record["spec"]["traffic"]["sticky"] == {"kind": "header", "name": "x-user-id"}
    assert RolloutState.from_record(record) == state


def test_ingress_nginx_takes_its_own_cookie_and_a_rollout_without_sticky_keeps_its_format(
    intake: Intake, memory_store: MemoryStateStore, policy_dir: Path
) -> None:
    routed = STICKY.replace(
        "  sticky: {header: x-user-id}\n",
        "  router: nginx_ingress\n  sticky: {cookie: canarist-split}\n",
    )
    (policy_dir / "sticky.yaml").write_text(routed)
    submitted = intake.submit(job(policy="sticky", platform="kubernetes"), "alice")
    sticky = memory_store.load(submitted.rollout_id).state.spec.traffic.sticky
    assert sticky == StickyKey(StickyKind.ROUTER_COOKIE, "canarist-split")

    plain = memory_store.load(intake.submit(job(version="v3"), "alice").rollout_id).state
    record = plain.to_record()
    assert record["format"] == PINNED_POLICY_FORMAT and "sticky" not in record["spec"]["traffic"]
