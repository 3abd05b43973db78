"""HTTP hooks around a rollout's steps, through the real doors and task code: the API submits,
``workers.tasks.advance`` (the Celery task's code, as the harness plays Celery) observes, calls
the hooks over HTTP on a receiver started here on 127.0.0.1, steps and saves in the session's
real Redis.

Each route is its own receiver (tests/workers/notify/capture.py), scripted with the answers it
gives in order (then 200).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.policy import Policy
from analyzer.policy.hooks import HookPoint
from canarist.demo.stack import ServiceProcess
from canarist.report.build import render_report
from tests.workers.conftest import trail
from tests.workers.notify.capture import Captured, CaptureServer, Reply
from tests.workers.rollout_harness import ANALYSIS, Harness, Killed, settled
from workers.actions import HookCall, SetTraffic
from workers.hooks import HookCaller
from workers.notify.notice import Notice
from workers.platforms.memory import MemoryPlatform
from workers.settings import HookRoute
from workers.state import Phase, RolloutState
from workers.store import RedisStateStore

SECRET = "hook-secret-for-tests"
HEAD = (
    ANALYSIS
    + """strategy:
  type: canary
  steps:
    - set_weight: 20
    - analyze: {duration: 10s}
    - set_weight: 100
traffic: {router: gateway_api}
alerts: [oncall]
"""
)
POINTS = ("pre_rollout", "analysis", "confirm_promotion", "post_promotion", "post_rollback")


def policy_text(name: str, *points: str, timeout: str = "2s", retries: int = 2) -> str:
    hooks = "".join(
        f"  - {{name: {point.replace('_', '-')}, point: {point}, route: {point.replace('_', '-')},"
        f" timeout: {timeout}, retries: {retries}, metadata: {{suite: checkout}}}}\n"
        for point in points
    )
    return f"name: {name}\n{HEAD}hooks:\n{hooks}" if points else f"name: {name}\n{HEAD}"


@dataclass
class World:
    harness: Harness
    platform: MemoryPlatform
    receivers: dict[str, CaptureServer]

    def submit(self, policy: str) -> str:
        return self.harness.submit(
            app="checkout", namespace="shop", version="v2", policy=policy, platform="observe",
            baseline='app="checkout",version="v1"', canary='app="checkout",version="v2"',
        )  # fmt: skip

    def calls(self, point: str) -> list[Captured]:
        return list(self.receivers[point].requests)

    def weights(self, rollout_id: str) -> list[int]:
        return [
            applied.action.weight
            for applied in self.platform.applied
            if applied.rollout_id == rollout_id and isinstance(applied.action, SetTraffic)
        ]

    def actions(self, rollout_id: str) -> list[str]:
        applied = [a for a in self.platform.applied if a.rollout_id == rollout_id]
        return list(dict.fromkeys(type(a.action).__name__ for a in applied))

    def finish(self, rollout_id: str) -> RolloutState:
        """Run until settled and every hook due (a post hook too) has been answered."""
        self.harness.run(rollout_id, lambda state: settled(state) and state.hook_due is None)
        return self.harness.state(rollout_id)

    def notices(self, kind: str) -> list[Notice]:
        self.harness.worker()[0].delivery.run()
        return [notice for notice in self.harness.oncall.notices if notice.kind == kind]

    def kinds(self, rollout_id: str) -> list[str]:
        return [str(event.kind) for event in trail(self.harness.store, rollout_id)]

    def messages(self, rollout_id: str) -> list[str]:
        return [event.message for event in trail(self.harness.store, rollout_id)]


@pytest.fixture
def world(tmp_path: Path, redis_server: ServiceProcess) -> Iterator[World]:
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, points in {
        "pre": ("pre_rollout", "post_rollback"),
        "judged": ("analysis", "post_rollback"),
        "confirmed": ("confirm_promotion", "post_promotion"),
        "plain": (),
    }.items():
        (policies / f"{name}.yaml").write_text(policy_text(name, *points))
    (policies / "unrouted.yaml").write_text(
        policy_text("unrouted", "pre_rollout").replace("route: pre-rollout", "route: nowhere")
    )
    receivers = {point: CaptureServer().__enter__() for point in POINTS}
    routes = {
        point.replace("_", "-"): HookRoute.model_validate(
            {"url": f"{receiver.url}/{point}", "secret": SECRET, "headers": {"X-Team": "shop"}}
        )
        for point, receiver in receivers.items()
    }
    store = RedisStateStore.from_url(redis_server.url, f"hooks:{uuid.uuid4().hex[:8]}:")
    platform = MemoryPlatform()
    harness = Harness(policies, lambda: platform, hook_routes=routes, store_for=lambda _: store)
    try:
        yield World(harness, platform, receivers)
    finally:
        for receiver in receivers.values():
            receiver.__exit__(None, None, None)
        store.close()


def test_a_failing_pre_rollout_hook_aborts_before_any_traffic_moves(world: World) -> None:
    world.receivers["pre_rollout"].reply(*[Reply(503, b"smoke tests failed")] * 3)
    rollout_id = world.submit("pre")
    state = world.finish(rollout_id)
    assert state.phase is Phase.ABORTED
    assert "pre_rollout hook pre-rollout fail: HTTP 503: smoke tests failed" in (
        state.abort_reason or ""
    )
    assert world.weights(rollout_id) == []  # the platform never saw a weight above 0
    assert world.actions(rollout_id) == ["EnsureCanary", "Rollback"]
    assert len(world.calls("pre_rollout")) == 3  # retries: 2
    assert len(world.calls("post_rollback")) == 1
    [aborted] = world.notices("aborted")
    assert "pre-rollout" in aborted.reason
    assert "hook" in world.kinds(rollout_id)


def test_a_passing_pre_rollout_hook_lets_the_rollout_start(world: World) -> None:
    rollout_id = world.submit("pre")
    state = world.finish(rollout_id)
    assert state.phase is Phase.PROMOTED
    [call] = world.calls("pre_rollout")
    assert call.json()["weight"] == 0 and call.json()["stage"] == 1
    messages = world.messages(rollout_id)
    [entered] = [m for m in messages if m.startswith("stage 1/")]
    assert entered.endswith("(pre_rollout hooks passed)")
    assert messages.index("pre_rollout hooks answered: all passed") < messages.index(entered)
    assert world.calls("post_rollback") == []


def test_an_analysis_hook_answering_fail_aborts_naming_the_hook(world: World) -> None:
    world.receivers["analysis"].reply(Reply(200, b'{"result": "fail", "reason": "p99 of /pay"}'))
    rollout_id = world.submit("judged")
    state = world.finish(rollout_id)
    assert state.phase is Phase.ABORTED
    assert "analysis hook: p99 of /pay" in (state.abort_reason or "")
    [aborted] = world.notices("aborted")
    assert "analysis hook: p99 of /pay" in aborted.reason
    [hook] = [note for note in aborted.metrics if note.name == "analysis"]
    assert hook.outcome == "fail" and hook.critical
    assert len(world.calls("post_rollback")) == 1


def test_an_analysis_hook_that_is_inconclusive_holds_the_stage(world: World) -> None:
    undecided = Reply(200, b'{"result": "inconclusive", "reason": "not enough traffic"}')
    world.receivers["analysis"].reply(*[undecided] * 2)
    rollout_id = world.submit("judged")
    state = world.finish(rollout_id)
    assert state.phase is Phase.PROMOTED  # the third look passes
    looks = [e for e in trail(world.harness.store, rollout_id) if e.kind == "analysis"]
    rows = [row for e in looks for row in e.data["verdict"]["metrics"] if row["kind"] == "hook"]
    said = [(row["judgement"]["outcome"], row["judgement"]["reason"]) for row in rows]
    assert said[:2] == [("inconclusive", "analysis hook: not enough traffic")] * 2
    assert all(outcome == "pass" for outcome, _ in said[2:]) and len(said) > 2
    assert all(look.data["outcome"] != "pass" for look in looks[:2])


def test_a_confirm_promotion_no_holds_the_rollout_until_it_says_yes(world: World) -> None:
    world.receivers["confirm_promotion"].reply(Reply(403, b"change freeze"), Reply(409))
    world.receivers["post_promotion"].reply(*[Reply(500)] * 3)  # informational: ignored
    rollout_id = world.submit("confirmed")

    def held(state: RolloutState) -> bool:
        return len(world.calls("confirm_promotion")) == 2 and state.hook_at is not None

    world.harness.run(rollout_id, held)
    state = world.harness.state(rollout_id)
    assert state.phase is Phase.PROGRESSING and state.hook_due is not None
    assert "Promote" not in world.actions(rollout_id)  # not promoted while it says no
    holds = [m for m in world.messages(rollout_id) if m.startswith("promotion held")]
    assert len(holds) == 2 and "HTTP 403: change freeze" in holds[0]
    state = world.finish(rollout_id)
    assert state.phase is Phase.PROMOTED and state.hook_due is None
    assert len(world.calls("confirm_promotion")) == 3
    assert len(world.calls("post_promotion")) == 3  # one call, its two retries; no other call
    answered = [m for m in world.messages(rollout_id) if "post_promotion hooks answered" in m]
    assert answered == ["post_promotion hooks answered: post-promotion fail: HTTP 500: ok"]


def test_a_hook_call_is_signed_over_its_timestamp_and_body(world: World) -> None:
    rollout_id = world.submit("pre")
    world.finish(rollout_id)
    [call] = world.calls("pre_rollout")
    timestamp = call.headers["x-canarist-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + call.body, hashlib.sha256)
    assert hmac.compare_digest(
        call.headers["x-canarist-signature"], f"sha256={expected.hexdigest()}"
    )
    assert abs(time.time() - int(timestamp)) < 60  # the receiver can refuse an old one
    wrong = hmac.new(b"another-secret", f"{timestamp}.".encode() + call.body, hashlib.sha256)
    assert call.headers["x-canarist-signature"] != f"sha256={wrong.hexdigest()}"
    body = call.json()
    assert body["rollout_id"] == rollout_id and body["point"] == "pre_rollout"
    assert (body["app"], body["namespace"], body["version"]) == ("checkout", "shop", "v2")
    assert body["metadata"] == {"suite": "checkout"} and body["attempt"] == 1
    key = f"{rollout_id}/1/pre_rollout/0"
    assert body["idempotency_key"] == key == call.headers["x-canarist-idempotency-key"]
    assert call.headers["x-team"] == "shop" and call.path == "/pre_rollout"


def test_a_worker_killed_after_the_call_calls_again_with_the_same_key(world: World) -> None:
    class DiesAfterCalling(HookCaller):
        def call(
            self, state: RolloutState, policy: Policy, point: HookPoint
        ) -> tuple[HookCall, ...]:
            super().call(state, policy, point)
            raise Killed(f"killed after calling {point}")  # before the answer is saved

    harness = world.harness
    rollout_id = world.submit("pre")
    harness.hooks = DiesAfterCalling
    assert not harness.run(rollout_id, settled)
    assert harness.state(rollout_id).hook_due is not None  # nothing of the call was saved
    harness.hooks = HookCaller
    harness.recover()
    assert harness.finish(rollout_id).phase is Phase.PROMOTED
    keys = [call.headers["x-canarist-idempotency-key"] for call in world.calls("pre_rollout")]
    assert keys == [f"{rollout_id}/1/pre_rollout/0"] * 2


def test_a_policy_naming_an_undefined_hook_route_is_refused_at_submit(world: World) -> None:
    response = world.harness.api.post(
        "/v1/rollouts",
        json={"app": "checkout", "namespace": "shop", "version": "v2", "policy": "unrouted",
              "platform": "observe", "baseline": 'app="checkout",version="v1"',
              "canary": 'app="checkout",version="v2"'},
        headers={"Authorization": "Bearer cnr_harness-operator"},
    )  # fmt: skip
    assert response.status_code == 422, response.text
    text = response.text
    assert "'pre-rollout' ('nowhere')" in text and "CANARIST_HOOK_ROUTES" in text
    assert "hook_routes defined: analysis, confirm-promotion" in text


def test_the_report_shows_every_hook_answer(world: World) -> None:
    world.receivers["analysis"].reply(Reply(200, b'{"result": "fail", "reason": "p99 of /pay"}'))
    rollout_id = world.submit("judged")
    world.finish(rollout_id)
    policy = world.harness.intake.policy_for(world.harness.state(rollout_id))
    html = render_report(world.harness.store, None, policy, rollout_id, now=time.time())
    section = html[html.index('<section id="hooks">') : html.index('<section id="timeline">')]
    assert "analysis hook: p99 of /pay" in section and "post_rollback" in section
    assert section.count("<tr>") == 3  # the header, the analysis hook, the post-rollback hook
    assert 'id="analysis"' not in html  # no metric card or chart for a hook


def test_a_rollout_without_hooks_calls_none(world: World) -> None:
    rollout_id = world.submit("plain")
    assert world.finish(rollout_id).phase is Phase.PROMOTED
    assert not any(receiver.requests for receiver in world.receivers.values())
    assert "hook" not in world.kinds(rollout_id)
