"""The answers of a point's hooks (``HookResult``): what they mean for the rollout.

A gate's "no" (any hook not PASS) aborts before any traffic moves (pre_rollout) or holds the
promotion and asks again after one analysis interval (confirm_promotion); the informational
points (post_promotion, post_rollback) are recorded and change nothing. Every answer is an
audit event with each hook's outcome, status, attempts and reason.
"""

from __future__ import annotations

from analyzer.policy.hooks import HookPoint
from analyzer.verdict import Outcome
from workers.actions import EventKind, HookCall, HookResult
from workers.engine.phases import abort
from workers.engine.plan_walk import promote_after_gates, start
from workers.engine.run import Run
from workers.state import Phase


def on_hook(run: Run, result: HookResult) -> None:
    """The answers of the hooks ``hook_due`` asked for (a stale or repeated result is dropped)."""
    if result.token != run.state.hook_due:
        return
    calls = result.calls
    failed = [call for call in calls if call.outcome is not Outcome.PASS]
    record = [call.record() for call in calls]
    verdict = "all passed" if not failed else f"{_said(failed)}"
    message = f"{result.point.value} hooks answered: {verdict}"
    run.event(EventKind.HOOK, message, point=result.point.value, hooks=record, passed=not failed)
    if result.point is HookPoint.CONFIRM_PROMOTION and failed:
        wait = run.analysis.interval.total_seconds()
        run.update(hook_at=run.now + wait)
        run.event(
            EventKind.HOOK,
            f"promotion held: confirm_promotion said no ({_said(failed)}); asking again in "
            f"{wait:g}s",
            point=result.point.value,
        )
        return
    run.update(hook_due=None, hook_at=None)
    if result.point is HookPoint.PRE_ROLLOUT:
        _pre_rollout_answered(run, failed)
    elif result.point is HookPoint.CONFIRM_PROMOTION and run.state.phase is Phase.PROGRESSING:
        promote_after_gates(run, "confirm_promotion hooks said yes")


def _pre_rollout_answered(run: Run, failed: list[HookCall]) -> None:
    if run.state.phase is not Phase.PENDING:
        return
    if failed:
        reason = f"pre_rollout hook {_said(failed)}: no traffic was moved to the new version"
        abort(run, reason, evidence={"hooks": [call.record() for call in failed]})
        return
    start(run, "pre_rollout hooks passed", hooks_passed=True)


def _said(failed: list[HookCall]) -> str:
    return "; ".join(f"{call.name} {call.outcome.value}: {call.reason}" for call in failed)
