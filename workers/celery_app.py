"""The Celery app: built from the settings (workers/settings.py) by ``make_celery``.

``canarist worker`` and ``canarist beat`` build it from the service's settings, which extend
``WorkerSettings``. For ``celery -A workers.celery_app worker|beat|inspect`` (the workers'
liveness probe) this module also offers a default ``app``, built on first access from
``WorkerSettings()``: the same CANARIST_* variables and settings file, read the same way.

Reliability settings, and why (Celery 5 over the Redis transport):

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acked after its task ran,
  and one whose worker process died is requeued, not lost. A task that *raised* is acked all
  the same (Celery's default): every task is idempotent and the reconciler repairs what a
  failed one left, so a poison message cannot loop.
- ``worker_prefetch_multiplier=1``: a worker reserves one message at a time.
- A rollout's next step more than a second away is not a countdown message (Celery delivers one
  at once to one worker, which alone can run it, busy or not): it is an entry in the store's
  schedule that every worker's dispatcher moves to the queue when due (workers/dispatcher.py),
  so the first free worker takes it. Waits of a second or less stay countdowns.
- Redis has no real acks: an unacked message is redelivered ``visibility_timeout`` seconds after
  it was delivered, even to a healthy worker still holding it. Countdown messages (a second at
  most, above) are held far below that; the schedule's waits are still capped at half the
  visibility timeout (a longer wait is several hops, each a no-op Tick).
- The beat schedule runs ``canarist.reconcile`` every ``reconcile_every`` seconds (rollouts
  overdue by ``reconcile_grace`` are re-enqueued: a message lost with a killed worker or a Redis
  restart delays a rollout, never strands it; the local platform's router is restarted if it
  died) and ``canarist.deliver_outbox`` every ``deliver_every`` seconds (besides the wake-ups a
  step sends when it queued an alert). Beat messages expire after one period, so a backlog
  never piles up while workers are away, and carry their period: the first run of a period
  takes a lock in the store and later ones of the same period do nothing, so two beats can run
  (deploy/ runs two) and either may die.
- A task holds its rollout's lease for ``lease_seconds`` (15 s), renewed every third of that
  while it works: a killed worker's rollout is free again within seconds, and a task that finds
  the lease held requeues itself for when it would have expired.
- Queues: ``canarist.rollouts`` (advance, reconcile, submit) and ``canarist.notify`` (outbox
  delivery), so an alert never waits behind a rollout's analysis. Each has two priorities
  (``priority_steps``: kombu keeps a Redis list per step and a worker pops them in order): URGENT
  (0, also what a message without a priority gets) for what Intake enqueues and a rolling-back
  rollout's steps, ROUTINE for a rollout's own timetable (workers/tasks.py says which is which),
  so under overload an abort waits for the task in hand, not behind every late look. The
  analysis runs inside ``advance`` (tasks.py says why), so there is no analysis queue. Results
  are not kept.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready
from kombu.transport import redis as kombu_redis

from analyzer.sources.incremental import IncrementalSource
from analyzer.sources.prometheus import PrometheusSource
from workers.actions import Released
from workers.delivery import Delivery
from workers.dispatcher import DISPATCH_AFTER, Dispatcher
from workers.hooks import HookCaller
from workers.intake import Intake
from workers.metrics import serve, watch_overdue
from workers.notify.base import Route, notifier_for
from workers.platforms import heal_configured, platform_for
from workers.settings import WorkerSettings
from workers.store import DEFAULT_PREFIX, store_from_url
from workers.tasks import (
    ADVANCE,
    DELIVER,
    RECONCILE,
    ROUTINE,
    SUBMIT,
    URGENT,
    Runtime,
    register,
)

ROLLOUTS_QUEUE, NOTIFY_QUEUE = "canarist.rollouts", "canarist.notify"
REMEMBERED_QUERIES = 100_000
"""Queries whose answers a worker process keeps between looks (analyzer/sources/incremental.py):
the default policy's look is 12 queries, so 8,000 rollouts' looks; least recently used first
out."""
_log = logging.getLogger(__name__)


class _RestoreSafeQoS(kombu_redis.QoS):
    """kombu's Redis QoS, made to survive a broker that vanished under a worker.

    When Redis goes away while a worker holds unacked messages (a countdown always is one),
    Celery collects the broken connection and then closes it; closing restores the unacked
    messages through a connection that has no client any more, and kombu 5.7 raises
    AttributeError, which Celery treats as unrecoverable: the worker exits. Here the restore is
    skipped instead: the messages stay in Redis' unacked set and come back after the visibility
    timeout (the reconciler re-enqueues the rollouts sooner), and the worker reconnects.
    """

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            _log.warning("broker connection gone: unacked messages return later (%s)", exc)
            return None


class _Channel(kombu_redis.Channel):
    QoS = _RestoreSafeQoS


class RedisTransport(kombu_redis.Transport):
    """The ``redis://`` transport with ``_RestoreSafeQoS``."""

    Channel = _Channel


@dataclass(frozen=True)
class Timings:
    """The periods of the reliability design above. Not settings: no variable sets them; the
    tests and benchmarks shrink them."""

    visibility_timeout: int = 3600
    reconcile_every: float = 10.0
    reconcile_grace: float = 15.0
    deliver_every: float = 10.0
    lease_seconds: float = 15.0

    def __post_init__(self) -> None:
        if self.reconcile_grace < 0 or self.visibility_timeout < 2 * self.lease_seconds:
            raise ValueError(
                f"visibility_timeout ({self.visibility_timeout} s) must be at least twice "
                f"lease_seconds ({self.lease_seconds:g} s), and reconcile_grace not negative"
            )

    @property
    def max_countdown(self) -> float:
        return self.visibility_timeout / 2


DEFAULT_TIMINGS = Timings()


def make_celery(
    settings: WorkerSettings,
    *,
    timings: Timings = DEFAULT_TIMINGS,
    store_prefix: str = DEFAULT_PREFIX,
) -> Celery:
    """A Celery app on ``settings.redis.url`` running Canarist's tasks; the tasks' state store
    is the same Redis, its keys under ``store_prefix``."""
    broker_url = settings.redis.url
    app = Celery("canarist", broker=broker_url, set_as_current=False)
    every = {RECONCILE: timings.reconcile_every, DELIVER: timings.deliver_every}
    app.conf.update(
        broker_transport=f"{__name__}:RedisTransport",
        broker_transport_options={
            "visibility_timeout": timings.visibility_timeout,
            "priority_steps": [URGENT, ROUTINE],  # a list each; a worker pops URGENT's first
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=ROLLOUTS_QUEUE,
        task_queues={ROLLOUTS_QUEUE: {}, NOTIFY_QUEUE: {}},  # direct queues, routing key = name
        task_routes={
            ADVANCE: {"queue": ROLLOUTS_QUEUE},
            RECONCILE: {"queue": ROLLOUTS_QUEUE},
            SUBMIT: {"queue": ROLLOUTS_QUEUE},
            DELIVER: {"queue": NOTIFY_QUEUE},
        },
        beat_schedule={
            name: {
                "task": name,
                "schedule": timedelta(seconds=seconds),
                "kwargs": {"period": seconds},  # one run a period, however many beats
                "options": {"expires": seconds},
            }
            for name, seconds in every.items()
        },
    )
    runtime = _RuntimeCache(app, settings, timings, store_prefix).get
    register(app, runtime)
    _build_when_ready(app, runtime)
    if settings.worker_metrics_port is not None:
        _serve_metrics(app, settings.worker_metrics_port)
    return app


def enqueue_advance(app: Celery) -> Callable[[str, int], None]:
    """``enqueue(id, revision)`` for Intake: run ``advance`` now, ahead of the routine steps (a
    command, an event, a submission)."""

    def enqueue(rollout_id: str, revision: int) -> None:
        app.send_task(ADVANCE, args=(rollout_id, revision), priority=URGENT)

    return enqueue


def send_due(app: Celery) -> Callable[[str, int], None]:
    """``send(id, revision)`` for the Dispatcher: a due step of a rollout's own timetable,
    routine (behind the urgent ones)."""

    def send(rollout_id: str, revision: int) -> None:
        app.send_task(ADVANCE, args=(rollout_id, revision), priority=ROUTINE)

    return send


def wake_outbox(app: Celery) -> Callable[[], None]:
    """``on_outbox()`` for Intake: deliver the outbox now, not at the next beat."""

    def wake() -> None:
        app.send_task(DELIVER)

    return wake


def _build_when_ready(app: Celery, runtime: Callable[[], Runtime]) -> None:
    """Build the worker's runtime (and so start its dispatcher) as soon as the worker is ready,
    not at its first task: after a restart, the first task may be one only a dispatcher sends."""

    def build(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:  # the worker's consumer
            runtime()

    worker_ready.connect(build, weak=False)


def _serve_metrics(app: Celery, port: int) -> None:
    """Serve the workers' metrics from the worker's main process once it starts (the solo and
    threads pools run tasks there; for prefork see workers/metrics.py)."""

    def start(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            try:
                serve(port)
            except OSError as exc:
                _log.warning("cannot serve worker metrics on port %d: %s", port, exc)

    worker_init.connect(start, weak=False)


class _RuntimeCache:
    """The Runtime of this process, built on first use (after a prefork worker forks)."""

    def __init__(
        self, app: Celery, settings: WorkerSettings, timings: Timings, store_prefix: str
    ) -> None:
        self.app, self.settings = app, settings
        self.timings, self.store_prefix = timings, store_prefix
        self._lock, self._built = threading.Lock(), dict[int, Runtime]()

    def get(self) -> Runtime:
        pid = os.getpid()
        with self._lock:
            if pid not in self._built:
                runtime = build_runtime(
                    self.app, self.settings, self.timings, self.store_prefix, dispatch=True
                )
                self._built = {pid: runtime}
            return self._built[pid]


def millisecond_clock() -> float:
    """Unix seconds to the millisecond, Prometheus' resolution: a look's window then lands
    on the instants Prometheus evaluates (a sub-millisecond edge can miss a one-point grid)."""
    return round(time.time(), 3)


def build_runtime(
    app: Celery,
    settings: WorkerSettings,
    timings: Timings = DEFAULT_TIMINGS,
    store_prefix: str = DEFAULT_PREFIX,
    *,
    dispatch: bool = False,
) -> Runtime:
    """The tasks' Runtime; ``dispatch``: also start this process's dispatcher (a worker's)."""
    store = store_from_url(settings.redis.url, store_prefix)
    clock = millisecond_clock
    intake = Intake(
        store,
        settings.policy_dir,
        clock,
        enqueue_advance(app),
        alert_routes=settings.alert_routes.keys(),
        hook_routes=settings.hook_routes.keys(),
        on_outbox=wake_outbox(app),
    )
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    routes = {
        name: Route(name, route.type, route.url, route.revealed_headers(), route.severity)
        for name, route in settings.alert_routes.items()
    }
    secret, token = settings.report_secret, settings.prometheus.bearer_token
    delivery = Delivery(
        store,
        {name: notifier_for(route) for name, route in routes.items()},
        clock,
        lambda successor, predecessor: intake.tell(successor, Released(predecessor)),
        record=intake.record,
        worker=worker_id,
        base_url=settings.public_url,
        report_secret=secret.get_secret_value() if secret is not None else None,
        events={name: route.events for name, route in settings.alert_routes.items()},
    )
    source = IncrementalSource(
        PrometheusSource(
            settings.prometheus.url,
            settings.prometheus.timeout_seconds,
            bearer_token=token.get_secret_value() if token is not None else None,
        ),
        refetch=timedelta(seconds=settings.prometheus.refetch_seconds),
        max_entries=REMEMBERED_QUERIES,
    )

    def requeue(rollout_id: str, revision: int, countdown: float, urgent: bool = False) -> None:
        # A rollback's next step is an urgent countdown, never behind the routine steps; a
        # routine wait of a second or less is a countdown too (held by a worker that long).
        if urgent or countdown <= DISPATCH_AFTER:
            priority = URGENT if urgent else ROUTINE
            app.send_task(
                ADVANCE, args=(rollout_id, revision), countdown=countdown or None, priority=priority
            )
        else:  # on the store's schedule: any free worker takes it when due (dispatcher.py)
            store.schedule.put(rollout_id, revision, clock() + countdown)

    if dispatch:
        Dispatcher(store.schedule, send_due(app), clock).start()

    watch_overdue(lambda: store.count_due(clock() - timings.reconcile_grace))

    return Runtime(
        store=store,
        intake=intake,
        source=source,
        platforms=platform_for,
        delivery=delivery,
        clock=clock,
        requeue=requeue,
        wake_outbox=wake_outbox(app),
        heal=heal_configured,
        lease_seconds=timings.lease_seconds,
        max_countdown=timings.max_countdown,
        reconcile_grace=timings.reconcile_grace,
        worker_id=worker_id,
        hooks=HookCaller(settings.hook_routes),
    )


_default: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``workers.celery_app.app``: the default app, built on first access from the settings."""
    global _default  # noqa: PLW0603 - one app per process, built lazily on purpose
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default is None:
        _default = make_celery(WorkerSettings())
    return _default
