"""What the ``advance`` task tells the engine: the platform's readiness of what the rollout
awaits, its drift from what the rollout requires, the answers of HTTP hooks that are due
(workers/hooks.py), an analysis look that is due (with its analysis hooks' answers), or just time.

The analysis runs here, inline, within the task and its lease (tasks.py says why); a look that
cannot run at all (the policy changed and the job's args no longer fit) is a look of errors
(``analyzer.analysis.not_analyzed``), never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from analyzer.analysis import analyze, not_analyzed
from analyzer.errors import CanaristError
from analyzer.hook_verdicts import with_hooks
from analyzer.policy import Policy
from analyzer.sources.base import MetricSource
from analyzer.verdict import Verdict
from workers import metrics
from workers.actions import (
    AnalysisResult,
    HookResult,
    Observation,
    PlatformDrifted,
    PlatformFailed,
    PlatformReady,
    Tick,
)
from workers.engine import HookToken, platform_wants
from workers.errors import WorkerError
from workers.hooks import HookCaller
from workers.metrics import RolloutLog
from workers.platforms import Failed, NotYet, Platform, Readiness, Ready
from workers.state import AnalysisRequest, RolloutState
from workers.strategies import baseline_shift, plan_for


def observe(
    platforms: Callable[[str], Platform],
    source: MetricSource,
    state: RolloutState,
    policy: Policy,
    now: float,
    log: RolloutLog,
    hooks: HookCaller | None = None,
) -> Observation:
    """What the engine is told: readiness of what it awaits, drift of what it applied, due
    hooks' answers, a due look, or just time. Readiness is always of everything the rollout
    requires now."""
    hooks = hooks if hooks is not None else HookCaller({})
    token = state.awaiting
    watched = token is not None or state.phase.active
    answer = platform_readiness(platforms, state, policy, log) if watched else None
    if token is not None:
        if isinstance(answer, Ready):
            return PlatformReady(token)
        if isinstance(answer, Failed):
            return PlatformFailed(answer.reason, token)
        return Tick()
    if isinstance(answer, Failed):
        return PlatformFailed(answer.reason)
    if isinstance(answer, NotYet):
        log.warning("the platform drifted: %s", answer.detail)
        return PlatformDrifted(answer.detail or "no detail given")
    if state.hook_due is not None and (state.hook_at or 0.0) <= now:
        point = HookToken.parse(state.hook_due).point
        calls = hooks.call(state, policy, point)
        log.info("%s hooks: %s", point.value, ", ".join(f"{c.name} {c.outcome}" for c in calls))
        return HookResult(state.hook_due, point, calls)
    request = state.analysis_due(now)
    if request is None:
        return Tick()
    verdict = run_analysis(source, state, policy, request, log)
    return AnalysisResult(request, with_hooks(verdict, hooks.analysis_rows(state, policy)))


def platform_readiness(
    platforms: Callable[[str], Platform], state: RolloutState, policy: Policy, log: RolloutLog
) -> Readiness | None:
    """The platform against ``engine.platform_wants``; None when that cannot be known now."""
    try:
        wants = platform_wants(state, policy)
        return platforms(state.spec.platform).readiness(state, wants)
    except (WorkerError, CanaristError) as exc:
        log.warning("readiness of %s unknown: %s", state.awaiting or "the platform", exc)
        return None


def run_analysis(
    source: MetricSource,
    state: RolloutState,
    policy: Policy,
    request: AnalysisRequest,
    log: RolloutLog,
) -> Verdict:
    """One analysis look over the request's window; one that cannot run is a look of errors."""
    shift = timedelta(seconds=analysis_baseline_shift(state, policy))
    versions = state.spec.versions(baseline_shift=shift)
    if shift:
        log.info("baseline read %s earlier: the old version before the switch", shift)
    start = datetime.fromtimestamp(request.window_start, UTC)
    end = datetime.fromtimestamp(request.window_end, UTC)
    with metrics.ANALYSIS_DURATION.time():
        try:
            verdict = analyze(policy, source, versions, start, end, final=request.final)
        except CanaristError as exc:  # e.g. the policy changed and the job's args no longer fit
            log.error("analysis could not run: %s", exc)
            verdict = not_analyzed(policy, str(exc), final=request.final)
    log.info("%s: %s", "final look" if request.final else "look", verdict.reason)
    return verdict


def analysis_baseline_shift(state: RolloutState, policy: Policy) -> float:
    """Seconds back to read the baseline at the state's stage (workers.strategies)."""
    try:
        plan = plan_for(policy.strategy)
    except CanaristError:
        return 0.0
    begin_after = policy.analysis.begin_after.total_seconds()
    return baseline_shift(plan, min(state.stage_index, len(plan) - 1), begin_after)
