"""The in-memory store's schedule (base.py's ``Schedule``): due advances, each taken once."""

from __future__ import annotations

import threading

from workers.store.records import check_limit


class MemorySchedule:
    """Due advances by (rollout, revision); ``take`` pops the due ones under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: dict[tuple[str, int], float] = {}

    def put(self, rollout_id: str, revision: int, at: float) -> None:
        with self._lock:
            self._at[(rollout_id, revision)] = at

    def take(self, now: float, limit: int = 500) -> list[tuple[str, int]]:
        check_limit(limit)
        with self._lock:
            due = sorted((at, entry) for entry, at in self._at.items() if at <= now)[:limit]
            for _, entry in due:
                del self._at[entry]
        return [entry for _, entry in due]
