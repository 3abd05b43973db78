"""An in-memory notifier for engine, task and outbox tests: it remembers what it was told.

``fail_next(n)`` makes the next ``n`` posts raise DeliveryError (temporary unless told otherwise),
so a test can check that the outbox retries, parks permanent failures, and never blocks the abort.
A failed post is not recorded in ``notices``; every attempt is counted in ``attempts``.
"""

from __future__ import annotations

from workers.errors import PermanentDeliveryError, TemporaryDeliveryError
from workers.notify.base import Notice, Route

MEMORY_ROUTE = Route(name="memory", type="memory", url="memory://")


class MemoryNotifier:
    """Records delivered notices in order; can be told to fail the next posts."""

    def __init__(self, route: Route = MEMORY_ROUTE) -> None:
        self.route = route
        self.notices: list[Notice] = []
        self.attempts = 0
        self._failures_left = 0
        self._temporary = True
        self._retry_after: float | None = None

    def fail_next(
        self, count: int = 1, *, temporary: bool = True, retry_after: float | None = None
    ) -> None:
        """The next ``count`` posts raise TemporaryDeliveryError, or PermanentDeliveryError if not
        ``temporary``."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._failures_left = count
        self._temporary, self._retry_after = temporary, retry_after

    def post(self, notice: Notice) -> None:
        self.attempts += 1
        if self._failures_left > 0:
            self._failures_left -= 1
            kind = "temporary" if self._temporary else "permanent"
            failure = TemporaryDeliveryError if self._temporary else PermanentDeliveryError
            raise failure(
                f"alert route {self.route.name!r}: scripted {kind} failure",
                retry_after=self._retry_after,
            )
        self.notices.append(notice)

    def delivered(self, dedupe_key: str) -> list[Notice]:
        """The delivered notices with this dedupe key (more than one means a duplicate)."""
        return [notice for notice in self.notices if notice.dedupe_key == dedupe_key]
