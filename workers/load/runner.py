"""``canarist load``: the process that sends the synthetic load rollouts want.

Why a process of its own, not a Celery task or a worker's thread: a load lasts minutes, and a
task that long would hold a worker (prefetch 1, acks_late) and be re-run by another worker after
a crash, doubling the load; a thread in a worker would die with that worker while the rollout
carries on elsewhere. This process owns nothing the rollout needs: every second it reads the
active rollouts from the store and works out from each one's state and pinned policy which load
is wanted now (``order.wanted``). So

- a load starts when its analysis stage has started, and stops by itself at its time or count;
- it stops at the next read (within ``POLL_SECONDS``) when the rollout pauses, aborts, moves on
  or starts a new attempt, and at once when this process stops (its threads are daemons);
- a worker crash changes nothing here; a crash of this process stops every load it sent; when it
  comes back it resumes a wanted load for its remaining time with the remaining share of its
  count (``LoadOrder.remaining``), never its whole count again.

What each load sent is written to the rollout's audit trail (``EventKind.SYNTHETIC_LOAD``: the
rate, requests sent, errors the sender saw, why it stopped), which the report and status show.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import CanaristError
from analyzer.policy import Policy
from workers.actions import EventKind, RecordEvent
from workers.errors import WorkerError
from workers.load.order import LoadKey, LoadOrder, kubernetes_url, wanted
from workers.load.sender import LoadSender, read_sample
from workers.state import Phase, RolloutState
from workers.store.base import StateStore

POLL_SECONDS = 1.0
ACTOR = "canarist load"  # the audit trail's actor of its events
LISTED = 1000  # the newest rollouts read each poll; active ones are among them
log = logging.getLogger("canarist.load")

Target = tuple[str, Mapping[str, str]]
"""A URL that reaches the new version alone, and the headers that make it so."""


def target_for(
    local: Callable[[str, str], Target] | None = None,
) -> Callable[[RolloutState, LoadOrder], Target]:
    """Where a rollout's load goes, by its platform; ``local(namespace, app)`` for the local one."""

    def target(state: RolloutState, order: LoadOrder) -> Target:
        platform = state.spec.platform
        if platform == "kubernetes":
            return kubernetes_url(state, order.port), {}
        if platform == "local":
            if local is not None:
                return local(state.namespace, state.app)
            from workers.platforms.local import LocalPlatform  # noqa: PLC0415 - when used

            return LocalPlatform.from_env().preview_target(state.namespace, state.app)
        raise WorkerError(f"the {platform} platform has no address for the new version alone")

    return target


@dataclass
class Running:
    order: LoadOrder
    sender: LoadSender
    url: str
    why: str = ""  # set when the runner stops it


class LoadRunner:
    """Starts, stops and reports the loads the store's rollouts want; ``poll`` once a second."""

    def __init__(
        self,
        store: StateStore,
        policy_for: Callable[[RolloutState], Policy],
        record: Callable[[str, RecordEvent], None],
        clock: Callable[[], float],
        *,
        policy_dir: Path,
        target: Callable[[RolloutState, LoadOrder], Target] | None = None,
    ) -> None:
        self.store, self.policy_for, self.record, self.clock = store, policy_for, record, clock
        self.policy_dir, self.target = policy_dir, target or target_for()
        self.running: dict[LoadKey, Running] = {}
        self._done: set[LoadKey] = set()

    def poll(self) -> None:
        now = self.clock()
        orders, phases = self._wanted(now)
        for key, running in self.running.items():
            ended = now >= running.order.ends_at  # its own time: it stops itself
            if key not in orders and not running.sender.finished and not ended:
                phase = phases.get(key.rollout_id, "gone")
                moved = phase == Phase.PROGRESSING.value
                running.why = "the stage ended" if moved else f"the rollout is {phase}"
                running.sender.stop()
        for key, (order, state) in orders.items():
            if key not in self.running and key not in self._done:
                self._start(order, state, now)
        for key, running in list(self.running.items()):
            if running.sender.finished:
                del self.running[key]
                self._done.add(key)
                self._report(running)
        self._done = {key for key in self._done if key.rollout_id in phases}  # forget old ones

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, then stop every load and report it."""
        while not stop.wait(POLL_SECONDS):
            try:
                self.poll()
            except (CanaristError, WorkerError) as exc:  # the store down: try again next second
                log.warning("load: %s", exc)
        self.shutdown()

    def shutdown(self) -> None:
        for running in self.running.values():
            running.why = "the load process stopped"
            running.sender.stop()
        for running in self.running.values():
            running.sender.join(10.0)
            self._report(running)
        self.running.clear()

    def _wanted(
        self, now: float
    ) -> tuple[dict[LoadKey, tuple[LoadOrder, RolloutState]], dict[str, str]]:
        """The loads wanted now (with their rollouts), and every listed rollout's phase."""
        orders, phases = {}, {}
        for stored in self.store.list_rollouts(limit=LISTED):
            state = stored.state
            phases[state.id] = state.phase.value
            if state.phase is not Phase.PROGRESSING:
                continue
            try:
                order = wanted(state, self.policy_for(state), now)
            except (CanaristError, WorkerError) as exc:
                log.warning("load for %s unknown: %s", state.id, exc)
                continue
            if order is not None:
                orders[order.key] = (order, state)
        return orders, phases

    def _start(self, order: LoadOrder, state: RolloutState, now: float) -> None:
        try:
            url, headers = self.target(state, order)
            requests = order.requests
            if isinstance(requests, str):
                requests = read_sample(self.policy_dir / requests)
        except (OSError, ValueError, CanaristError, WorkerError) as exc:
            self._done.add(order.key)
            message, data = f"synthetic load not sent: {exc}", {"sent": 0, "stopped": str(exc)}
            event = RecordEvent(EventKind.SYNTHETIC_LOAD, message, data, actor=ACTOR)
            self.record(order.key.rollout_id, event)
            return
        total = order.remaining(now)
        sender = LoadSender(
            url, requests, rate=order.rate, total=total, ends_at=order.ends_at,
            headers=dict(order.headers) | dict(headers), clock=now,
        )  # fmt: skip
        self.running[order.key] = Running(order, sender.start(), url)
        log.info("load for %s: %g/s to %s", order.key.rollout_id, order.rate, url)

    def _report(self, running: Running) -> None:
        order, tally = running.order, running.sender.tally()
        ended_by = {"count": "its request count was reached", "time": "its time was up"}
        why = running.why or ended_by.get(running.sender.ended_by, "the load process stopped")
        message = (
            f"synthetic load sent: {tally.sent} requests at {order.rate:g}/s to {running.url} "
            f"over {tally.seconds:.0f}s, {tally.errors} errors seen by the load; stopped: {why}"
        )
        data = {"rate": order.rate, "url": running.url, "stage_index": order.key.stage_index}
        data |= tally.as_data() | {"stopped": why}
        event = RecordEvent(EventKind.SYNTHETIC_LOAD, message, data, actor=ACTOR)
        try:
            self.record(order.key.rollout_id, event)
        except (CanaristError, WorkerError) as exc:
            log.warning("load report for %s not recorded: %s", order.key.rollout_id, exc)
