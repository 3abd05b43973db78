"""An analysis look (``AnalysisResult``): what it means for the run and for the stage it ends.

Every look counts toward the run's tally, and a FAIL past ``failure_limit`` aborts whatever the
stage. Only a look at an analyze stage of a progressing rollout moves the plan: a PASS completes
the stage, and a final look that did not pass extends it, then pauses or aborts as the policy's
``on_inconclusive`` says. Any other look is a background look, recorded and otherwise ignored.
"""

from __future__ import annotations

from analyzer.run import RunTally
from analyzer.verdict import Outcome, Reason, Verdict
from workers.actions import EventKind
from workers.engine.phases import abort, pause
from workers.engine.plan_walk import advance, complete
from workers.engine.run import Evidence, Run
from workers.state import AnalysisRequest, Phase, VerdictSummary
from workers.strategies import Gate, Stage


def no_data(verdict: Verdict) -> bool:
    """No counted metric had data: such a verdict never moves a rollout forward."""
    counted = [metric for metric in verdict.metrics if not metric.dry_run]
    return all(metric.judgement.reason_code is Reason.NO_DATA for metric in counted)


def blind(run: Run) -> bool:
    """Paused with queries failing past ``consecutive_error_limit``: looking again every
    interval would only fail again, so a paused rollout stops looking until a person resumes
    it (while they work it keeps its background looks: a FAIL still aborts)."""
    errors, limit = run.state.tally.consecutive_errors, run.analysis.consecutive_error_limit
    return run.state.phase is Phase.PAUSED and errors >= limit


def on_analysis(run: Run, request: AnalysisRequest, verdict: Verdict) -> None:
    if not run.state.expects(request):
        return
    state, window = run.state, (request.window_start, request.window_end)
    tally = state.tally.observe(verdict)
    summary = VerdictSummary.of(verdict, window, request.final)
    run.update(tally=tally, last_look_at=request.window_end, last_verdict=summary)
    evidence = verdict.model_dump(mode="json")
    if tally.outcome(run.analysis) is Outcome.FAIL:
        limit = f"{tally.failures} FAIL look(s), failure_limit {run.analysis.failure_limit}"
        abort(run, f"{verdict.reason} ({limit})", evidence=evidence)
        return
    outcome, why = judge(run, verdict, tally)
    run.update(stage_failures=state.stage_failures + (verdict.outcome is Outcome.FAIL))
    if blind(run) and state.tally.consecutive_errors < run.analysis.consecutive_error_limit:
        errors = f"{tally.consecutive_errors} failed queries in a row"
        run.event(EventKind.LOOKS_STOPPED, f"paused, and {errors}: no more looks until resumed")
    look = "final look" if request.final else "look"
    message = f"{look}: {outcome.value}: {why}"
    run.event(
        EventKind.ANALYSIS,
        message,
        outcome=outcome.value,
        score=verdict.score,
        window=list(window),
        verdict=evidence,
    )
    stage = run.stage
    held = run.state.hook_due is not None  # at the confirm_promotion gate
    if run.state.phase is not Phase.PROGRESSING or stage.gate is not Gate.ANALYSIS or held:
        return  # a background look: only a FAIL past failure_limit acts on it
    if outcome is Outcome.PASS:
        complete(run, f"{stage.label} passed: {verdict.reason}")
        advance(run)
    elif request.final:
        undecided(run, stage, why, evidence)


def judge(run: Run, verdict: Verdict, tally: RunTally) -> tuple[Outcome, str]:
    """What a look means for its stage: only evidence of health counts as PASS."""
    analysis = run.analysis
    if verdict.outcome is Outcome.FAIL:
        limit = f"{tally.failures} of failure_limit {analysis.failure_limit}"
        return Outcome.FAIL, f"tolerated ({limit}): {verdict.reason}"
    if tally.outcome(analysis) is Outcome.INCONCLUSIVE:
        errors = f"{tally.consecutive_errors} failed queries in a row"
        limit = f"consecutive_error_limit {analysis.consecutive_error_limit}"
        return Outcome.INCONCLUSIVE, f"{errors}, over {limit}"
    if no_data(verdict):
        return Outcome.INCONCLUSIVE, "no counted metric had data: missing data never promotes"
    return verdict.outcome, verdict.reason


def undecided(run: Run, stage: Stage, why: str, evidence: Evidence) -> None:
    """The last look of an analyze stage did not PASS: extend, then pause or abort."""
    state, limit = run.state, run.analysis.inconclusive_limit
    if state.extensions < limit:
        final_look_at = (state.final_look_at or run.now) + (stage.seconds or 0.0)
        run.update(extensions=state.extensions + 1, final_look_at=final_look_at)
        run.event(
            EventKind.EXTENDED, f"{stage.label} extended ({state.extensions + 1}/{limit}): {why}"
        )
        return
    reason = f"{stage.label} undecided after {limit} extension(s): {why}"
    if run.analysis.on_inconclusive == "abort":
        abort(run, reason, evidence=evidence)
    else:
        choice = "promote, resume for one more window, or abort"
        pause(run, f"{reason}; {choice}", notify=True, evidence=evidence)
