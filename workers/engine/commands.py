"""A person's command (``ManualCommand``): one handler per kind, in the table ``COMMANDS``
(``approve``, and a promote while awaiting approval, in approval.py).

A handler carries the command out and returns None, or changes nothing and returns why the
command does not apply to the rollout as it is; the engine then records ``command_ignored``
with that reason, so a command is never dropped in silence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from analyzer.run import RunTally
from workers.actions import Action, CommandKind, EventKind, ManualCommand, RecordEvent
from workers.engine.approval import approve
from workers.engine.phases import abort, pause, promote
from workers.engine.plan_walk import advance, arm, complete, start
from workers.engine.run import Run
from workers.state import Phase
from workers.strategies import Gate

Handler = Callable[[Run, ManualCommand, str], str | None]
"""``(run, command, said)``: None once done, else why not; ``said`` is the audit's wording."""


def on_command(run: Run, command: ManualCommand) -> None:
    actor, kind = command.actor, command.kind
    said = f"{kind} by {actor}" + (f": {command.reason}" if command.reason else "")
    handler = COMMANDS.get(kind)
    why_not = _phase(run) if handler is None else handler(run, command, said)
    if why_not is not None:
        run.event(EventKind.COMMAND_IGNORED, f"{said} does not apply: {why_not}", actor)


def refusal(actions: Iterable[Action]) -> str | None:
    """Why the command of a step did not apply, as the audit trail says it; None if it did."""
    for action in actions:
        if isinstance(action, RecordEvent) and action.kind is EventKind.COMMAND_IGNORED:
            return action.message
    return None


def _phase(run: Run) -> str:
    return f"the rollout is {run.state.phase.value}"


def _abort(run: Run, command: ManualCommand, said: str) -> str | None:
    phase = run.state.phase
    if phase is Phase.PENDING and run.state.hook_due is None:
        run.update(abort_reason=said)
        run.notify("aborted", said)
        run.to_phase(Phase.ABORTED, said, command.actor)
    elif phase.active or phase in (Phase.PROMOTING, Phase.PENDING):  # PENDING: deployed at 0%
        abort(run, said, command.actor)  # until the promotion is done, it can be undone
    else:
        return _phase(run)
    return None


def _promote(run: Run, command: ManualCommand, said: str) -> str | None:
    state, actor = run.state, command.actor
    if not state.phase.active:
        return _phase(run)
    if state.phase is Phase.AWAITING_APPROVAL:  # a person's promote is the approval asked for
        why = f": {command.reason}" if command.reason else ""
        full = " --full" if command.full else ""
        return approve(run, actor, f"promote{full} by {actor} counts as the approval{why}")
    if command.full:
        skipped = len(run.plan) - state.stage_index
        promote(run, f"full {said}: {skipped} stage(s) and their analysis skipped", actor)
        return None
    if state.awaiting is not None:
        return f"'{run.stage.label}' is not applied yet: wait for it, or promote in full"
    if state.phase is Phase.PAUSED:
        run.update(pause_reason=None)
        run.to_phase(Phase.PROGRESSING, said, actor)
    complete(run, f"skipped: {said}", actor, automatic=False, confirm=False)
    advance(run)
    return None


def _approve(run: Run, command: ManualCommand, said: str) -> str | None:
    return approve(run, command.actor, said)


def _pause(run: Run, command: ManualCommand, said: str) -> str | None:
    if run.state.phase is not Phase.PROGRESSING:
        return _phase(run)
    pause(run, said, actor=command.actor)
    return None


def _resume(run: Run, command: ManualCommand, said: str) -> str | None:
    if run.state.phase is not Phase.PAUSED:
        return _phase(run)
    run.update(pause_reason=None)
    run.to_phase(Phase.PROGRESSING, said, command.actor)
    if run.stage.gate is Gate.PERSON:
        complete(run, said, command.actor, automatic=False)
    else:  # the stage starts over: one more window, timer or readiness check
        run.update(stage_started_at=run.now, stage_failures=0)
        arm(run)
    advance(run)
    return None


def _retry(run: Run, command: ManualCommand, said: str) -> str | None:
    state = run.state
    if state.superseded_by is not None:
        return f"{state.superseded_by} replaced this rollout"
    if state.awaiting is not None:
        return "its rollback is still in progress"
    if state.phase not in (Phase.ABORTED, Phase.FAILED):
        return _phase(run)
    run.update(attempt=state.attempt + 1, stage_index=0, canary_weight=0, tally=RunTally())
    run.update(pause_reason=None, abort_reason=None, last_verdict=None)
    start(run, said, command.actor)
    return None


COMMANDS: Mapping[CommandKind, Handler] = {
    "abort": _abort,
    "promote": _promote,
    "pause": _pause,
    "resume": _resume,
    "retry": _retry,
    "approve": _approve,
}
