"""Keeping a rollout's lease while a task works on it.

A short lease is what lets another worker take over soon after this one dies; renewing it keeps
a slow step (a Prometheus at its timeout, a platform settling) from losing it. A renewal that
finds the lease gone is left to the save, which then raises LeaseLost.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from workers.errors import WorkerError
from workers.metrics import RolloutLog
from workers.store.base import Leases


@contextlib.contextmanager
def renewed(
    leases: Leases, rollout_id: str, owner: str, seconds: float, log: RolloutLog
) -> Iterator[None]:
    """Renew ``owner``'s lease of ``rollout_id`` every third of ``seconds`` while the block runs."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(seconds / 3):
            try:
                if not leases.acquire(rollout_id, owner, seconds):
                    log.warning("lost the lease while working: the save will not be kept")
                    return
            except WorkerError as exc:
                log.warning("could not renew the lease (%s): trying again", exc)

    keeper = threading.Thread(target=renew, name=f"lease:{rollout_id}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
