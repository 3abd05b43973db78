"""Three real rollouts, played once per session for every report test.

They live in the session's real Redis (db 5, the store's default prefix, so ``canarist report``
finds them with nothing but ``CANARIST_REDIS__URL``) and their traffic in the session's real
Prometheus:

- ``aborted``:  the default policy; the canary serves 4x the errors and is aborted by analysis.
- ``promoted``: a two-step policy; a healthy canary passes both steps and is promoted.
- ``by_hand``:  a healthy canary aborted by a person after its first look, with a reason that
  is an HTML injection attempt (a reason is free text from a user).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from canarist.demo.stack import ServiceProcess
from tests.canarist.report.rollout_scenario import (
    HOSTILE_REASON,
    QUICK_POLICY,
    SHIPPED_POLICIES,
    Clock,
    Played,
    Rollout,
    past_start,
)
from tests.workloads import Behaviour
from workers.intake import Intake
from workers.store import RedisStateStore


@pytest.fixture(scope="session")
def played(
    redis_server: ServiceProcess,
    prometheus_server: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Played]:
    policy_dir = tmp_path_factory.mktemp("report-policies")
    (policy_dir / "default-canary.yaml").write_text(
        (SHIPPED_POLICIES / "default-canary.yaml").read_text()
    )
    (policy_dir / "quick-canary.yaml").write_text(QUICK_POLICY)
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/5"
    store = RedisStateStore.from_url(redis_url)
    clock = Clock(0.0)
    intake = Intake(
        store, policy_dir, clock, lambda rollout_id, revision: None, alert_routes={"oncall"}
    )
    url = prometheus_server.url

    def rollout(policy: str, canary: Behaviour, hours_ago: float) -> Rollout:
        return Rollout(
            intake, url, clock, policy=policy, canary=canary, start=past_start(hours_ago)
        )

    try:
        aborted = rollout("default-canary", Behaviour(error_ratio=0.04), 5).drive()
        promoted = rollout("quick-canary", Behaviour(), 4).drive()
        by_hand = rollout("quick-canary", Behaviour(), 3)
        by_hand.drive(until=lambda state: state.last_look_at is not None)
        intake.command(by_hand.rollout_id, "abort", "alice", reason=HOSTILE_REASON)
        rollouts = (aborted, promoted, by_hand.drive())
        yield Played(store, intake, clock, policy_dir, redis_url, url, *rollouts)
    finally:
        store.close()
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()
