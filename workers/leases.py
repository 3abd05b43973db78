"""Keeping a rollout's lease while a task works on it.

A short lease is what lets another worker take over soon after this one dies; renewing it keeps
a slow step (a Prometheus at its timeout, a platform settling) from losing it. A renewal that
finds the lease gone is left to the save, which then raises LeaseLost.

One thread per process (the keeper, started with the first lease) renews every lease the
process's tasks hold, each every third of its length. A task only registers its lease and
unregisters it: no thread is started or joined per task, and the keeper is not woken per task
either (it sleeps until the first renewal due, or a third of the last lease's length when none
is held, and a lease due sooner than that wakes it). An advance takes a few milliseconds, so
almost every lease is given up long before its first renewal.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from workers.errors import WorkerError
from workers.metrics import RolloutLog
from workers.store.base import Leases


@dataclass(eq=False)
class _Held:
    leases: Leases
    rollout_id: str
    owner: str
    seconds: float
    log: RolloutLog
    renew_at: float  # time.monotonic()
    # Held by the keeper while it renews: the task gives the lease up only after that renewal,
    # which would otherwise take a released lease again.
    renewing: threading.Lock = field(default_factory=threading.Lock)
    active: bool = True


class LeaseKeeper:
    """Renews the leases registered with ``held`` every third of their length, on one thread."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: set[_Held] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = 0.0  # when the keeper's thread looks next (monotonic)
        self._idle = 5.0  # s: how long it sleeps with nothing held (a third of the last lease)

    @contextlib.contextmanager
    def held(
        self, leases: Leases, rollout_id: str, owner: str, seconds: float, log: RolloutLog
    ) -> Iterator[None]:
        """Renew ``owner``'s lease of ``rollout_id`` every third of ``seconds`` while the block
        runs; on leaving it, no renewal is in flight or to come."""
        entry = _Held(leases, rollout_id, owner, seconds, log, time.monotonic() + seconds / 3)
        with self._changed:
            self._held.add(entry)
            self._idle = seconds / 3
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._wake_at = entry.renew_at
                self._thread.start()
            elif entry.renew_at < self._wake_at:
                self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._held.discard(entry)
            with entry.renewing:
                entry.active = False

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [entry for entry in self._held if entry.renew_at <= now]
                if not due:
                    self._wake_at = min(
                        (entry.renew_at for entry in self._held), default=now + self._idle
                    )
                    self._changed.wait(max(0.0, self._wake_at - now))
                    continue
            for entry in due:
                self._renew(entry)

    def _renew(self, entry: _Held) -> None:
        with entry.renewing:
            if not entry.active:
                return
            entry.renew_at = time.monotonic() + entry.seconds / 3
            try:
                if not entry.leases.acquire(entry.rollout_id, entry.owner, entry.seconds):
                    entry.log.warning("lost the lease while working: the save will not be kept")
                    entry.active = False
                    with self._changed:
                        self._held.discard(entry)
            except WorkerError as exc:
                entry.log.warning("could not renew the lease (%s): trying again", exc)
            except Exception:  # the keeper renews every task's lease: it must not die of one
                entry.log.exception("could not renew the lease: trying again")


_keeper = LeaseKeeper()


def _new_keeper_in_child() -> None:
    """A forked child (the prefork pool) has none of its parent's threads: its own keeper."""
    global _keeper  # noqa: PLW0603 - the process's one keeper, replaced only across a fork
    _keeper = LeaseKeeper()


os.register_at_fork(after_in_child=_new_keeper_in_child)


def renewed(
    leases: Leases, rollout_id: str, owner: str, seconds: float, log: RolloutLog
) -> contextlib.AbstractContextManager[None]:
    """Renew ``owner``'s lease of ``rollout_id`` every third of ``seconds`` while the block runs
    (by the process's one LeaseKeeper)."""
    return _keeper.held(leases, rollout_id, owner, seconds, log)
