"""HTTP hooks at points of a rollout, as the pure engine sees them: when a point's hooks are
due, and the gates they hold (their answers, ``HookResult``, are hook_answers.py's).

The engine never calls a hook: like an awaited platform change, a due hook is state
(``hook_due``: the attempt, stage and point that asked, and ``hook_at``: when), and the task
calls the hooks when it finds them due (observations.py, workers/hooks.py) and steps the engine
with their answers. A worker killed after the call and before the save leaves ``hook_due`` as it
was, so the next wake-up calls again: receivers must be idempotent (each call carries an
idempotency key, the token's point and stage with the rollout and attempt).

    pre_rollout        start(): the new version is deployed at 0% (EnsureCanary) and the rollout
                       waits in PENDING; every hook passes -> the first stage; any fails -> abort
    confirm_promotion  the plan reaches promotion (``promotion_gate``): any "no" holds the
                       rollout, asked again every analysis interval; all yes -> promote. While
                       held, looks go on as background looks (a FAIL past failure_limit aborts),
                       as Flagger keeps running its metric checks
    post_promotion,    on PROMOTED, ABORTED or a FAILED rollback done (``after``): called once,
    post_rollback      recorded, never changing the outcome
    analysis           no state: the task calls them within each look, and their answers are
                       rows of the look's verdict (analyzer/hook_verdicts.py)

``promotion_gate`` is a function of its own so that other
gates before promotion (a person's approval) can sit in sequence after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.policy.hooks import HookPoint, hooks_at
from workers.actions import EventKind
from workers.engine.run import Run
from workers.state import Phase


@dataclass(frozen=True)
class HookToken:
    """``RolloutState.hook_due`` as its type: which attempt and stage asked for which point."""

    attempt: int
    stage_index: int
    point: HookPoint

    def format(self) -> str:
        return f"{self.attempt}:{self.stage_index}:{self.point.value}"

    @classmethod
    def parse(cls, text: str) -> HookToken:
        """The token ``format`` wrote; ValueError if ``text`` is not one."""
        parts = text.split(":")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            raise ValueError(f"{text!r} is no hook token like '1:0:pre_rollout'")
        return cls(int(parts[0]), int(parts[1]), HookPoint(parts[2]))


def has_hooks(run: Run, point: HookPoint) -> bool:
    return bool(hooks_at(run.policy.hooks, point))


def due(run: Run, point: HookPoint, message: str) -> None:
    """Ask for ``point``'s hooks to be called now."""
    token = HookToken(run.state.attempt, run.state.stage_index, point).format()
    run.update(hook_due=token, hook_at=run.now)
    names = ", ".join(hook.name for hook in hooks_at(run.policy.hooks, point))
    run.event(EventKind.HOOK, f"{point.value} hooks called: {names}: {message}", point=point.value)


def pre_rollout_held(run: Run) -> bool:
    """Whether start() must wait for the pre-rollout hooks (asking for them if not yet asked)."""
    if not has_hooks(run, HookPoint.PRE_ROLLOUT):
        return False
    if run.state.phase is not Phase.PENDING:  # a retry: waits in PENDING again
        run.to_phase(Phase.PENDING, "waiting for the pre_rollout hooks")
    due(run, HookPoint.PRE_ROLLOUT, "no traffic moves to the new version until they pass")
    return True


def promotion_gate(run: Run) -> bool:
    """Whether the plan may promote now: True when no confirm_promotion hook is configured;
    otherwise the hooks are asked (the rollout holds, in its phase, until they all say yes)."""
    if not has_hooks(run, HookPoint.CONFIRM_PROMOTION):
        return True
    token = run.state.hook_due
    if token is None or HookToken.parse(token).point is not HookPoint.CONFIRM_PROMOTION:
        due(run, HookPoint.CONFIRM_PROMOTION, "the promotion waits for them to answer yes")
    return False


def after(run: Run, point: HookPoint) -> None:
    """On a terminal phase: call the informational hooks of ``point`` once, if any."""
    run.update(hook_due=None, hook_at=None)
    if has_hooks(run, point):
        due(run, point, "informational: their answers change nothing")


def cleared(run: Run) -> None:
    """A phase change makes any due gate moot (a rollback, a promotion by a person)."""
    if run.state.hook_due is not None:
        run.update(hook_due=None, hook_at=None)


def schedule(run: Run) -> None:
    """While hooks are due, the rollout is next woken to call them, or for what else it waits
    for first: a platform change, a paused rollout's watch, a held rollout's background look
    (a terminal rollout's post hooks are all it still has to do)."""
    state = run.state
    if state.hook_due is not None and state.hook_at is not None:
        due_at = state.hook_at
        if state.awaiting is not None or state.phase is Phase.PAUSED:  # those wake it too
            due_at = min(due_at, state.next_due_at or due_at)
        else:  # held at a gate: the hook, and the background looks (a FAIL still aborts)
            due_at = min(due_at, state.next_look_at or due_at)
        run.update(next_due_at=due_at)
