"""A rollout awaiting approval in the real Redis of the test session: stored in rollout format 4
(a release before the gate refuses it by name), its notices in outbox format 3, carried through
a worker killed while it waits to exactly one promotion."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from canarist.demo.stack import ServiceProcess
from tests.workers.conftest import FakeClock
from tests.workers.rollout_harness import Harness, write_policies
from workers.platforms.memory import MemoryPlatform
from workers.state import AWAITING_APPROVAL_FORMAT, PINNED_POLICY_FORMAT, Phase
from workers.store import RedisStateStore


@pytest.fixture
def prefix(redis_server: ServiceProcess) -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    keys = list(raw.scan_iter(f"{prefix}*"))
    if keys:
        raw.delete(*keys)


def test_a_waiting_rollout_in_redis_says_its_format_and_promotes_once_approved(
    redis_server: ServiceProcess, prefix: str, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path)
    text = (policies / "canary.yaml").read_text().replace("name: canary", "name: gated")
    gated = text.replace("  type: canary\n", "  type: canary\n  confirm_promotion: manual\n")
    (policies / "gated.yaml").write_text(
        gated.replace("\nanalysis:", "\nalerts: [oncall]\nanalysis:", 1)
    )

    def store_for(clock: FakeClock) -> RedisStateStore:
        return RedisStateStore.from_url(redis_server.url, prefix=prefix)

    platform = MemoryPlatform()
    harness = Harness(policies, lambda: platform, store_for=store_for)
    rollout_id = harness.submit(
        app="checkout", namespace="shop", version="v2", policy="gated", platform="observe",
        baseline='app="checkout",version="v1"', canary='app="checkout",version="v2"',
    )  # fmt: skip
    assert harness.run(rollout_id, lambda s: s.phase is Phase.AWAITING_APPROVAL)
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    stored = json.loads(raw.hget(f"{prefix}rollout:{rollout_id}", "state") or "{}")
    assert (stored["format"], stored["phase"]) == (AWAITING_APPROVAL_FORMAT, "awaiting_approval")
    item = raw.hgetall(f"{prefix}outbox:item:{rollout_id}/1/awaiting_approval>oncall")
    assert item["format"] == "3" and json.loads(item["payload"])["kind"] == "awaiting_approval"

    harness.queued.advance.clear()  # the worker dies while it waits
    harness.recover()
    assert harness.run(rollout_id, lambda s: s.next_look_at is not None)
    assert harness.command(rollout_id, "approve", reason="ok") == 202
    if not harness.run(rollout_id, lambda s: s.phase is Phase.PROMOTED, kill_at=0):
        harness.recover()  # killed right after the approval was saved, before the promotion
    assert harness.finish(rollout_id).phase is Phase.PROMOTED
    stored = json.loads(raw.hget(f"{prefix}rollout:{rollout_id}", "state") or "{}")
    assert stored["format"] == PINNED_POLICY_FORMAT  # readable again by the release before
    promoted = list(raw.scan_iter(f"{prefix}outbox:item:{rollout_id}/*promoted*"))
    assert promoted == [f"{prefix}outbox:item:{rollout_id}/1/promoted>oncall"]
