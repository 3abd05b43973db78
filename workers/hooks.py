"""The HTTP hooks' client: one signed JSON POST per hook, retried within the hook's timeout.

The engine says when a point's hooks are due (workers/engine/hooks.py); the advance task calls
them here and steps the engine with their answers (observations.py). Every call is bounded: a
hook's ``timeout`` covers all its tries and the short waits between them, so a task never
sleeps long (a hook's timeout is at most 60 s; the rollout's lease is renewed meanwhile).

What a receiver gets, for every point::

    POST <route url>
    Content-Type: application/json
    X-Canarist-Timestamp: 1767225600                    (Unix seconds, when this try was sent)
    X-Canarist-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
    X-Canarist-Idempotency-Key: <rollout id>/<attempt>/<point>/<stage>
    X-Canarist-Hook: <hook name>
    <the route's own headers>

    {"rollout_id": ..., "app": ..., "namespace": ..., "version": ..., "phase": ..., "point": ...,
     "hook": ..., "stage": 1, "stage_count": 4, "weight": 10, "attempt": 1, "try": 1,
     "idempotency_key": ..., "metadata": {...}}

The signature covers the timestamp, so a receiver that checks both (README: Hooks) rejects a
replayed body. The same idempotency key comes again when a worker died after the call and before
its answer was saved: the next wake-up calls again, so receivers must be idempotent.

Answers: 2xx is yes / PASS; for an ``analysis`` hook a JSON body ``{"result": "fail" |
"inconclusive" | "pass", "reason": "..."}`` may say otherwise. 408, 429, 5xx, a timeout or no
connection is tried again while the budget lasts, then is a FAIL; any other status is a FAIL at
once (a definite "no"). An answer is data (``HookCall``), never an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from analyzer.hook_verdicts import hook_row
from analyzer.policy import Policy
from analyzer.policy.hooks import HookPoint, HookSpec, hooks_at
from analyzer.verdict import MetricVerdict, Outcome
from workers.actions import HookCall
from workers.settings import HookRoute
from workers.state import RolloutState
from workers.strategies import plan_for

USER_AGENT = "canarist-hooks/0.1"
SIGNATURE, TIMESTAMP = "X-Canarist-Signature", "X-Canarist-Timestamp"
IDEMPOTENCY_KEY, HOOK_NAME = "X-Canarist-Idempotency-Key", "X-Canarist-Hook"
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 2.0  # seconds between tries, doubling, within the budget
_EXCERPT = 200
_RESULTS = {"pass": Outcome.PASS, "fail": Outcome.FAIL, "inconclusive": Outcome.INCONCLUSIVE}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Canarist-Signature`` value: what a receiver recomputes to trust a call."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def idempotency_key(state: RolloutState, point: HookPoint) -> str:
    return f"{state.id}/{state.attempt}/{point.value}/{state.stage_index}"


class HookCaller:
    """Calls a policy's hooks through the routes the settings define (``hook_routes``)."""

    def __init__(
        self,
        routes: Mapping[str, HookRoute],
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = dict(routes)
        self._client = client  # made at the first call: most rollouts call no hook
        self.clock = clock

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=False)
        return self._client

    def call(self, state: RolloutState, policy: Policy, point: HookPoint) -> tuple[HookCall, ...]:
        """Every hook of ``point`` in policy order, each answered within its timeout."""
        return tuple(self.call_one(state, policy, hook) for hook in hooks_at(policy.hooks, point))

    def analysis_rows(self, state: RolloutState, policy: Policy) -> list[MetricVerdict]:
        """The analysis hooks' answers as rows of a look's verdict (analyzer/hook_verdicts.py)."""
        hooks = {hook.name: hook for hook in hooks_at(policy.hooks, HookPoint.ANALYSIS)}
        if not hooks:
            return []
        return [
            hook_row(call.name, call.outcome, call.reason, hooks[call.name].critical,
                     {"status": call.status, "attempts": call.attempts, "seconds": call.seconds})
            for call in self.call(state, policy, HookPoint.ANALYSIS)
        ]  # fmt: skip

    def call_one(self, state: RolloutState, policy: Policy, hook: HookSpec) -> HookCall:
        route = self.routes.get(hook.route)
        if route is None:
            return HookCall(hook.name, Outcome.FAIL, f"hook route {hook.route!r} is not defined")
        started = time.monotonic()
        deadline = started + hook.timeout.total_seconds()
        backoff, tries, outcome, reason, status = FIRST_BACKOFF, 0, Outcome.FAIL, "", None
        while tries <= hook.retries:
            tries += 1
            left = deadline - time.monotonic()
            if left <= 0:
                break
            outcome, reason, status, again = self._try(state, policy, hook, route, tries, left)
            if not again:
                break
            pause = min(backoff, MAX_BACKOFF, deadline - time.monotonic())
            if tries <= hook.retries and pause > 0:
                time.sleep(pause)  # short, and within the hook's own timeout
            backoff *= 2
        seconds = round(time.monotonic() - started, 3)
        if outcome is Outcome.FAIL and not reason:
            reason = f"no answer within its timeout of {hook.timeout.total_seconds():g}s"
        return HookCall(hook.name, outcome, reason, status, tries, seconds)

    def _try(
        self,
        state: RolloutState,
        policy: Policy,
        hook: HookSpec,
        route: HookRoute,
        number: int,
        left: float,
    ) -> tuple[Outcome, str, int | None, bool]:
        """One try: (outcome, reason, status, worth trying again)."""
        body = json.dumps(self.body(state, policy, hook, number), separators=(",", ":")).encode()
        timestamp = str(int(self.clock()))
        headers = {
            "User-Agent": USER_AGENT,
            **route.revealed_headers(),
            "Content-Type": "application/json",
            TIMESTAMP: timestamp,
            IDEMPOTENCY_KEY: idempotency_key(state, hook.point),
            HOOK_NAME: hook.name,
        }
        if route.secret is not None:
            headers[SIGNATURE] = signature(route.secret.get_secret_value(), timestamp, body)
        try:
            response = self.client.post(route.url, content=body, headers=headers, timeout=left)
        except httpx.TimeoutException:
            return Outcome.FAIL, f"timed out after {left:.1f}s", None, True
        except httpx.TransportError as exc:
            return Outcome.FAIL, f"no answer: {type(exc).__name__}", None, True
        status = response.status_code
        excerpt = " ".join(response.text[:_EXCERPT].split())
        if not 200 <= status < 300:
            again = status >= 500 or status in (408, 429)
            return (
                Outcome.FAIL,
                f"HTTP {status}" + (f": {excerpt}" if excerpt else ""),
                status,
                again,
            )
        if hook.point is not HookPoint.ANALYSIS:
            return Outcome.PASS, f"HTTP {status}", status, False
        outcome, reason = analysis_answer(response)
        return outcome, reason or f"HTTP {status}", status, False

    def body(
        self, state: RolloutState, policy: Policy, hook: HookSpec, number: int
    ) -> dict[str, Any]:
        return {
            "rollout_id": state.id,
            "app": state.app,
            "namespace": state.namespace,
            "version": state.spec.version,
            "phase": state.phase.value,
            "point": hook.point.value,
            "hook": hook.name,
            "stage": state.stage_index + 1,
            "stage_count": _stage_count(policy),
            "weight": state.canary_weight,
            "attempt": state.attempt,
            "try": number,
            "idempotency_key": idempotency_key(state, hook.point),
            "metadata": dict(hook.metadata),
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def analysis_answer(response: httpx.Response) -> tuple[Outcome, str]:
    """A 2xx analysis answer: its body's result (PASS when it says none) and reason."""
    try:
        answer = response.json()
    except ValueError:
        return Outcome.PASS, ""
    if not isinstance(answer, dict):
        return Outcome.PASS, ""
    result = str(answer.get("result", "pass")).lower()
    reason = " ".join(str(answer.get("reason", "")).split())[:_EXCERPT]
    outcome = _RESULTS.get(result)
    if outcome is None:
        return Outcome.INCONCLUSIVE, f"answered result {result[:40]!r}, not pass/fail/inconclusive"
    return outcome, reason


def _stage_count(policy: Policy) -> int:
    return len(plan_for(policy.strategy))
