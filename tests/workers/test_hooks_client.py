"""The hooks' HTTP client against a receiver on 127.0.0.1: bounded by the hook's timeout,
retrying only what may pass on a second try, and reading an analysis hook's answer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from analyzer.policy import Policy, load_policy_text
from analyzer.policy.hooks import HookPoint
from analyzer.verdict import Outcome
from tests.workers.notify.capture import CaptureServer, Reply
from tests.workers.rollout_driver import METRICS, SPEC
from workers.hooks import SIGNATURE, HookCaller
from workers.settings import HookRoute
from workers.state import RolloutState

STRATEGY = "strategy: {type: canary, steps: [{set_weight: 50}, {set_weight: 100}]}\n"


def policy(point: str, timeout: str = "2s", retries: int = 2, route: str = "r") -> Policy:
    hook = f"{{name: h, point: {point}, route: {route}, timeout: {timeout}, retries: {retries}}}"
    return load_policy_text(f"name: p\n{METRICS}\n{STRATEGY}hooks: [{hook}]\n")


@pytest.fixture
def receiver() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


def caller(receiver: CaptureServer, secret: str | None = "s3cret") -> HookCaller:
    route = HookRoute.model_validate({"url": receiver.url, "secret": secret})
    return HookCaller({"r": route})


STATE = RolloutState.new("r1", app="checkout", namespace="shop", policy="p", spec=SPEC, now=0.0)


def test_a_receiver_slower_than_the_timeout_fails_within_it(receiver: CaptureServer) -> None:
    receiver.reply(*[Reply(200, delay=3.0)] * 3)
    started = time.monotonic()
    [call] = caller(receiver).call(STATE, policy("pre_rollout", "1s"), HookPoint.PRE_ROLLOUT)
    assert time.monotonic() - started < 2.0
    assert call.outcome is Outcome.FAIL and "timed out" in call.reason and call.status is None


def test_a_5xx_is_tried_again_and_a_4xx_is_a_no_at_once(receiver: CaptureServer) -> None:
    receiver.reply(Reply(502), Reply(503), Reply(200))
    [call] = caller(receiver).call(STATE, policy("pre_rollout"), HookPoint.PRE_ROLLOUT)
    assert (call.outcome, call.attempts, call.status) == (Outcome.PASS, 3, 200)
    receiver.reply(Reply(403, b"frozen"), Reply(200))
    [call] = caller(receiver).call(STATE, policy("confirm_promotion"), HookPoint.CONFIRM_PROMOTION)
    assert (call.outcome, call.attempts, call.reason) == (Outcome.FAIL, 1, "HTTP 403: frozen")
    assert len(receiver.requests) == 4
    assert [r.json()["try"] for r in receiver.requests] == [1, 2, 3, 1]


@pytest.mark.parametrize(
    ("body", "outcome", "reason"),
    [
        (b'{"result": "inconclusive", "reason": "few  requests"}', "inconclusive", "few requests"),
        (b'{"result": "FAIL"}', "fail", "HTTP 200"),
        (b'{"result": "maybe"}', "inconclusive", "answered result 'maybe'"),
        (b"ok", "pass", "HTTP 200"),
    ],
)
def test_an_analysis_hook_body_says_its_result(
    receiver: CaptureServer, body: bytes, outcome: str, reason: str
) -> None:
    receiver.reply(Reply(200, body))
    [row] = caller(receiver).analysis_rows(STATE, policy("analysis"))
    assert row.kind == "hook" and row.critical and not row.dry_run
    assert row.outcome.value == outcome and reason in row.judgement.reason


def test_an_undefined_route_fails_without_a_call(receiver: CaptureServer) -> None:
    calls = caller(receiver).call(STATE, policy("pre_rollout", route="gone"), HookPoint.PRE_ROLLOUT)
    assert calls[0].outcome is Outcome.FAIL and "'gone' is not defined" in calls[0].reason
    assert receiver.requests == []


def test_a_route_without_a_secret_sends_no_signature(receiver: CaptureServer) -> None:
    caller(receiver, secret=None).call(STATE, policy("post_rollback"), HookPoint.POST_ROLLBACK)
    [request] = receiver.requests
    assert SIGNATURE.lower() not in request.headers and "x-canarist-timestamp" in request.headers
