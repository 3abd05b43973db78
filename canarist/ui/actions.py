"""The actions a person takes from the dashboard, each one of the API's commands.

An action is offered where the rollout's phase makes it meaningful (``offered``); the engine
still has the last word, as it does for the API: a command its phase refuses is recorded as
``command_ignored`` and the page says why. Every action goes through ``Intake.command``, the
same call ``POST /v1/rollouts/{id}/<command>`` makes, with the token's name as the actor.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.actions import CommandKind
from workers.state import Phase, RolloutState

_STEERABLE = frozenset({Phase.PROGRESSING, Phase.PAUSED})


@dataclass(frozen=True)
class UiAction:
    name: str  # in the URL: /ui/rollouts/{id}/actions/{name}
    command: CommandKind
    label: str  # the button's words, followed by the rollout's app and version
    explains: str
    phases: frozenset[Phase]
    full: bool = False
    reason_required: bool = False
    danger: bool = False


ACTIONS: tuple[UiAction, ...] = (
    UiAction("promote", "promote", "Promote", "Pass the current stage now.", _STEERABLE),
    UiAction(
        "promote-all",
        "promote",
        "Promote fully",
        "Pass every remaining stage: the new version takes all the traffic.",
        _STEERABLE,
        full=True,
    ),
    UiAction(
        "pause", "pause", "Pause", "Hold at the current stage.", frozenset({Phase.PROGRESSING})
    ),
    UiAction("resume", "resume", "Resume", "Carry on after the pause.", frozenset({Phase.PAUSED})),
    UiAction(
        "approve",
        "approve",
        "Approve",
        "Approve the promotion this rollout waits for.",
        frozenset({Phase.AWAITING_APPROVAL}),
    ),
    UiAction(
        "abort",
        "abort",
        "Abort",
        "Roll back to the stable version.",
        frozenset({Phase.PENDING, Phase.AWAITING_APPROVAL}) | _STEERABLE,
        reason_required=True,
        danger=True,
    ),
    UiAction(
        "retry",
        "retry",
        "Retry",
        "Start this rollout again.",
        frozenset({Phase.ABORTED, Phase.FAILED}),
    ),
)
BY_NAME = {action.name: action for action in ACTIONS}


def offered(state: RolloutState) -> list[UiAction]:
    return [action for action in ACTIONS if state.phase in action.phases]
