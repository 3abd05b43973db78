"""An in-memory platform for task and intake tests: it records what it was asked, in order.

Like every platform it judges readiness against what the rollout requires: it keeps, per
rollout attempt, the latest applied action of each kind, and answers NotYet while ``wants``
would change that (an abort saved without its Rollback reads NotYet here as on a real
platform). Once it matches, readiness is scriptable (``script(NotYet(), Ready())`` answers the
next calls in turn, then keeps the last answer), and ``fail_next(n)`` makes the next ``n``
applies raise, temporarily or for good, so a test can check that a lost apply is re-asserted
and a failure rolls back. ``drift(rollout_id)`` forgets what was applied, as a platform that
lost its state would.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from workers.actions import PlatformAction
from workers.errors import TemporaryError
from workers.platforms.base import NotYet, PlatformError, Readiness, Ready
from workers.state import RolloutState


@dataclass(frozen=True)
class Applied:
    """One call of ``apply``: which rollout (and attempt) was asked what."""

    rollout_id: str
    attempt: int
    action: PlatformAction


class MemoryPlatform:
    """Records applied actions; readiness and failures are scripted by the test."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.applied: list[Applied] = []
        self.readiness_calls: list[tuple[str, tuple[PlatformAction, ...]]] = []
        self._holds: dict[str, tuple[int, dict[str, PlatformAction]]] = {}
        self._answers: deque[Readiness] = deque()
        self._last: Readiness = Ready()
        self._failures_left = 0
        self._temporary = True

    def script(self, *answers: Readiness) -> None:
        """The next readiness answers, in order; the last one is kept afterwards."""
        with self._lock:
            self._answers = deque(answers)
            if answers:
                self._last = answers[-1]

    def fail_next(self, count: int = 1, *, temporary: bool = True) -> None:
        """The next ``count`` applies raise TemporaryError (or PlatformError) and record nothing."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._failures_left, self._temporary = count, temporary

    def apply(self, rollout: RolloutState, action: PlatformAction) -> None:
        with self._lock:
            if self._failures_left > 0:
                self._failures_left -= 1
                if self._temporary:
                    raise TemporaryError(f"memory platform: scripted failure of {action}", 1.0)
                raise PlatformError(f"memory platform: scripted refusal of {action}")
            self.applied.append(Applied(rollout.id, rollout.attempt, action))
            self._holds[rollout.id] = (rollout.attempt, _folded(self._held(rollout), [action]))

    def readiness(self, rollout: RolloutState, wants: Sequence[PlatformAction]) -> Readiness:
        with self._lock:
            self.readiness_calls.append((rollout.id, tuple(wants)))
            held = self._held(rollout)
            if _folded(held, wants) != held:
                missing = [type(a).__name__ for a in wants if held.get(type(a).__name__) != a]
                return NotYet(f"memory platform: {', '.join(missing)} not applied")
            return self._answers.popleft() if self._answers else self._last

    def drift(self, rollout_id: str) -> None:
        """Forget what was applied for ``rollout_id``: the next readiness check reads NotYet."""
        with self._lock:
            self._holds.pop(rollout_id, None)

    def _held(self, rollout: RolloutState) -> dict[str, PlatformAction]:
        attempt, held = self._holds.get(rollout.id, (rollout.attempt, {}))
        return held if attempt == rollout.attempt else {}

    def actions_for(self, rollout_id: str) -> list[PlatformAction]:
        with self._lock:
            return [call.action for call in self.applied if call.rollout_id == rollout_id]


def _folded(
    held: dict[str, PlatformAction], actions: Sequence[PlatformAction]
) -> dict[str, PlatformAction]:
    """The latest action of each kind after ``actions``: what a declarative platform holds."""
    folded = dict(held)
    for action in actions:
        folded[type(action).__name__] = action
    return folded
