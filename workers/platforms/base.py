"""The Platform seam: how a rollout's traffic and workloads are changed, and when that is done.

The engine asks for platform changes as frozen, declarative actions (workers/actions.py: "set
weight to 25", never "add 5"); the task applies them to the rollout whose new state it has just
saved, in the order given, and later asks whether the world is what the rollout requires. So a
platform has two jobs, both idempotent and both safe to repeat after a crash::

    apply(rollout, action)        make the world match the action; return once it is asked for
    readiness(rollout, wants)     Ready | NotYet | Failed(reason): is the world what ``wants``,
                                  applied in order, makes it?

``wants`` is everything the rollout requires of the platform now (``engine.platform_wants``:
the stage's weight and audience, the new version's size, a switch, a promotion or a rollback),
never just the last action. Readiness compares the platform with it, so a decision saved
without its action (a person's abort through the API, a worker killed between two actions)
reads NotYet, and the next wake-up re-asserts ``wants`` until the platform matches: "rolled
back" is only ever said of a platform that has rolled back. The same question asked while
nothing is awaited is the watch: NotYet then means the platform drifted from what the rollout
applied (a dead router, an object edited by hand), and the engine re-applies it.

``apply`` does not wait for the change to take effect (Deployments become Available only after
the controllers and the nodes act): ``readiness`` reports that, and the task polls it.

``apply`` raises ``workers.errors.TemporaryError`` when the platform is unreachable or busy (the
task logs it and the next wake-up re-asserts) and ``PlatformError`` for anything permanent.
Implementations are siblings (observe.py, memory.py, local/, kubernetes/) and
``workers.platforms.platform_for(name)`` is the registry. A platform that runs a fresh baseline
(kubernetes/, local/) gives it ``baseline_share`` of the requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from analyzer.errors import UnknownNameError
from analyzer.policy.checks import FRESH_BASELINE_MAX_WEIGHT
from workers.actions import PlatformAction
from workers.errors import WorkerError
from workers.state import RolloutState


@dataclass(frozen=True)
class Ready:
    """What the token names is done: traffic moved, pods available, rollback complete."""


@dataclass(frozen=True)
class NotYet:
    """Still in progress; ``detail`` says what is awaited, for logs."""

    detail: str = ""


@dataclass(frozen=True)
class Failed:
    """It will not happen (progress deadline exceeded, crash-looping pods): roll back."""

    reason: str


Readiness = Ready | NotYet | Failed


class PlatformError(WorkerError):
    """A platform refused an action for good (forbidden, malformed object)."""


class UnknownPlatformError(PlatformError, UnknownNameError):
    """No platform is registered under a name: never fall back to another platform."""


class Platform(Protocol):
    """Changes one rollout's workloads and traffic; every call is declarative and idempotent."""

    name: str

    def apply(self, rollout: RolloutState, action: PlatformAction) -> None:
        """Make the world match ``action`` for ``rollout`` (its spec names version and image)."""
        ...

    def readiness(self, rollout: RolloutState, wants: Sequence[PlatformAction]) -> Readiness:
        """Whether the world is what ``wants`` (applied in order) makes it, for ``rollout``."""
        ...


def baseline_share(weight: int, fresh: bool) -> int:
    """A fresh baseline's percent of requests (analysis.baseline fresh): the canary's, while the
    stable keeps the rest (weights up to 50, where a policy may analyse); 0 above it, at
    promotion and after. Every platform that runs one splits by this."""
    return weight if fresh and 0 < weight <= FRESH_BASELINE_MAX_WEIGHT else 0
