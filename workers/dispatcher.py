"""Moving due rollouts from the store's schedule into the queue, from every worker process.

Why not Celery's countdown for a rollout's next look: a countdown message is delivered at once
to one worker, which holds it until its time, and only that worker can run it, however busy it
is and however idle the others (Celery's documented behaviour for ETA tasks). Measured with two
worker processes and 4,000 rollouts (README, Scale): both workers idle more than half the time
while steps ran 25 s late. So a wait longer than ``DISPATCH_AFTER`` seconds is not a message:
it is an entry in the store's schedule (``store.schedule``, a sorted set in Redis), and each
worker process runs one ``Dispatcher`` thread that every ``DISPATCH_EVERY`` seconds takes the
due entries (each entry is taken once, by whichever dispatcher asks first) and sends
``advance`` for them to the shared queue, where the first free worker takes it.

Nothing waits inside a worker, so nothing is lost with one: the schedule lives in Redis (AOF).
An entry taken by a dispatcher that dies before sending is a lost message, which the reconciler
re-enqueues once the rollout is overdue by its grace, as it does any lost message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from workers.metrics import worker_log
from workers.store.base import Schedule

DISPATCH_AFTER = 1.0  # s: a shorter wait is a Celery countdown, a longer one an entry
DISPATCH_EVERY = 0.2  # s between two looks at the schedule: a due step waits at most this
RETRY_AFTER = 1.0  # s after a failure (the store or the broker down) before the next look
BATCH = 500  # entries taken at once


class Dispatcher:
    """Sends ``advance(id, revision)`` for every due entry of ``schedule``."""

    def __init__(
        self,
        schedule: Schedule,
        send: Callable[[str, int], None],
        clock: Callable[[], float],
        every: float = DISPATCH_EVERY,
    ) -> None:
        self.schedule, self.send, self.clock, self.every = schedule, send, clock, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, limit: int = BATCH) -> int:
        """Send every due entry (at most ``limit``); one that cannot be sent goes back on the
        schedule, due now. Returns how many were sent."""
        sent = 0
        for rollout_id, revision in self.schedule.take(self.clock(), limit):
            try:
                self.send(rollout_id, revision)
                sent += 1
            except Exception:  # the broker is down: keep the entry for the next look
                self.schedule.put(rollout_id, revision, self.clock())
                raise
        return sent

    def start(self) -> Dispatcher:
        """Run in a daemon thread until ``stop``; a failure is logged and tried again."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            try:
                while self.run_once(BATCH) == BATCH:  # a backlog: carry on at once
                    pass
                wait = self.every
            except Exception as exc:  # the store or the broker is down: never end the thread
                worker_log().warning("cannot dispatch due rollouts (%s): trying again", exc)
                wait = RETRY_AFTER
