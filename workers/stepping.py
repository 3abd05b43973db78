"""One step of a loaded rollout, as every path takes it: ``engine.step``, then one atomic
compare-and-set save of the new state with the step's events and outbox items, then a wake-up
of the outbox delivery when the step queued alerts or hand-overs.

Two paths load a rollout and step it, and both call ``step_and_save``:

- the ``advance`` task (tasks.py), holding the rollout's lease, with what it observed for the
  revision it loaded (the platform's readiness, an analysis look);
- ``Intake.tell``, for a person's command, ``Superseded`` and ``Released``, without a lease.

Each then enqueues what follows: the task applies the step's platform actions and requeues
itself for the step's ``Schedule``; intake, which holds no platform credentials, enqueues
``advance`` at once for the task to apply them (the engine re-asserts what its state awaits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from analyzer.policy import Policy
from workers.actions import Action, Notify, Observation, RecordEvent, Release
from workers.engine import step
from workers.metrics import rollout_log
from workers.state import RolloutState
from workers.store import StateStore, Stored


@dataclass(frozen=True)
class Stepped:
    """A step as saved: the new state, its revision, every action and the events among them."""

    state: RolloutState
    revision: int
    actions: tuple[Action, ...]
    events: tuple[RecordEvent, ...]


def step_and_save(
    store: StateStore,
    loaded: Stored,
    policy: Policy,
    observation: Observation,
    now: float,
    *,
    lease_owner: str | None = None,
    events: Sequence[RecordEvent] = (),
    wake_outbox: Callable[[], None] | None = None,
) -> Stepped:
    """Step ``loaded`` with ``observation`` and save it at its revision, ``events`` first.

    Raises Conflict when the revision moved on, and LeaseLost when ``lease_owner`` is given and
    no longer holds the lease: then nothing was written. A failed wake-up of the outbox is
    logged, not raised: the step is saved, and the beat's delivery schedule finds the items.

    The task passes its lease; intake passes none, deliberately. A person's abort must not wait
    for a task that holds the lease through an analysis (seconds of queries): it reaches the
    users at once. Compare-and-set keeps the two apart all the same: whichever saves second
    finds the revision moved on and writes nothing. The task then drops its step, since what it
    observed was about a state that is gone; intake steps the command again on the new state
    (a command does not depend on the revision), and the task it enqueues carries on.
    """
    new, actions = step(loaded.state, policy, observation, now)
    kept, outbox = split(actions)
    saved = store.save(
        new, loaded.revision, events=[*events, *kept], outbox=outbox, lease_owner=lease_owner
    )
    if outbox and wake_outbox is not None:
        try:
            wake_outbox()
        except Exception as exc:  # the broker is down: beat's schedule delivers them later
            rollout_log(new.id).warning("could not wake the outbox delivery (%s)", exc)
    return Stepped(new, saved, tuple(actions), tuple(kept))


def split(actions: Sequence[Action]) -> tuple[list[RecordEvent], list[Action]]:
    """A step's events (for the audit trail) and its outbox items (alerts and hand-overs)."""
    events = [action for action in actions if isinstance(action, RecordEvent)]
    outbox: list[Action] = [action for action in actions if isinstance(action, Notify | Release)]
    return events, outbox
