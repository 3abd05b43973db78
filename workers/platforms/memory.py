"""An in-memory platform for task and intake tests: it records what it was asked, in order.

Readiness is scriptable (``script(NotYet(), Ready())`` answers the next calls in turn, then
keeps the last answer) and ``fail_next(n)`` makes the next ``n`` applies raise, temporarily or
for good, so a test can check that a lost apply is re-asserted and a failure rolls back.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from workers.actions import PlatformAction
from workers.errors import TemporaryError
from workers.platforms.base import PlatformError, Readiness, Ready
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
        self.readiness_calls: list[tuple[str, str]] = []
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

    def readiness(self, rollout: RolloutState, token: str) -> Readiness:
        with self._lock:
            self.readiness_calls.append((rollout.id, token))
            return self._answers.popleft() if self._answers else self._last

    def actions_for(self, rollout_id: str) -> list[PlatformAction]:
        with self._lock:
            return [call.action for call in self.applied if call.rollout_id == rollout_id]
