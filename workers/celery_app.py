"""The Celery app: built from explicit settings by ``make_celery``; no canarist import.

The canarist layer owns the full settings and calls ``make_celery(broker_url, settings=...)``.
For ``celery -A workers.celery_app worker|beat`` this module also offers a default ``app``,
built on first access from a few environment variables (the names canarist's settings use)::

    CANARIST_REDIS__URL                 broker and state store      redis://127.0.0.1:6379/0
    CANARIST_PROMETHEUS__URL            the analysis' Prometheus    http://127.0.0.1:9090
    CANARIST_PROMETHEUS__TIMEOUT_SECONDS   per query                10
    CANARIST_PROMETHEUS__BEARER_TOKEN   optional
    CANARIST_POLICY_DIR                 policy files                policies
    CANARIST_ALERT_ROUTES               JSON {"name": {"type", "url", "headers", "severity"}},
                                        or the path of a YAML/JSON file holding that mapping
                                        (or a settings file with an ``alert_routes`` key);
                                        unset: ``alert_routes`` of CANARIST_SETTINGS_FILE if set
    CANARIST_WORKER_METRICS_PORT        optional: serve the workers' metrics on this port
    CANARIST_PUBLIC_URL                 optional: the base of the report links in alerts
    CANARIST_REPORT_SECRET              optional: signs the report links in alerts (?sig=)

Reliability settings, and why (Celery 5 over the Redis transport):

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acked after its task ran,
  and one whose worker process died is requeued, not lost. A task that *raised* is acked all
  the same (Celery's default): every task is idempotent and the reconciler repairs what a
  failed one left, so a poison message cannot loop.
- ``worker_prefetch_multiplier=1``: a worker reserves one message at a time (countdown
  messages are held apart from that by Celery itself).
- Redis has no real acks: an unacked message is redelivered ``visibility_timeout`` seconds after
  it was delivered, even to a healthy worker still holding it. A countdown message is delivered
  at once and held by the worker until its time, so every countdown is capped at half the
  visibility timeout; a longer wait is several hops (each a no-op Tick).
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
  delivery), so an alert never waits behind a rollout's analysis. The analysis runs inside
  ``advance`` (tasks.py says why), so there is no analysis queue. Results are not kept.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from celery import Celery
from celery.signals import worker_init
from kombu.transport import redis as kombu_redis

from analyzer.sources.prometheus import PrometheusSource
from workers.actions import Released
from workers.delivery import Delivery
from workers.intake import Intake
from workers.metrics import serve
from workers.notify.base import Route, notifier_for
from workers.platforms import heal_configured, platform_for
from workers.store import DEFAULT_PREFIX, store_from_url
from workers.tasks import ADVANCE, DELIVER, RECONCILE, SUBMIT, Runtime, register

ROLLOUTS_QUEUE, NOTIFY_QUEUE = "canarist.rollouts", "canarist.notify"
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
class WorkerSettings:
    """Everything the tasks need, explicit; ``settings_from_env`` reads the documented subset."""

    store_url: str = "redis://127.0.0.1:6379/0"
    store_prefix: str = DEFAULT_PREFIX
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout: float = 10.0
    prometheus_bearer_token: str | None = None
    policy_dir: Path = Path("policies")
    alert_routes: Mapping[str, Route] = field(default_factory=dict)
    report_base_url: str | None = None
    report_secret: str | None = field(default=None, repr=False)  # signs report links (?sig=)
    visibility_timeout: int = 3600
    reconcile_every: float = 10.0
    reconcile_grace: float = 15.0
    deliver_every: float = 10.0
    lease_seconds: float = 15.0
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        if self.reconcile_grace < 0 or self.visibility_timeout < 2 * self.lease_seconds:
            raise ValueError(
                f"visibility_timeout ({self.visibility_timeout} s) must be at least twice "
                f"lease_seconds ({self.lease_seconds:g} s), and reconcile_grace not negative"
            )

    @property
    def max_countdown(self) -> float:
        return self.visibility_timeout / 2


def make_celery(broker_url: str, *, settings: WorkerSettings | None = None) -> Celery:
    """A Celery app on ``broker_url`` (Redis) running Canarist's tasks with ``settings``."""
    settings = settings or WorkerSettings(store_url=broker_url)
    app = Celery("canarist", broker=broker_url, set_as_current=False)
    every = {RECONCILE: settings.reconcile_every, DELIVER: settings.deliver_every}
    app.conf.update(
        broker_transport=f"{__name__}:RedisTransport",
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
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
    register(app, _RuntimeCache(app, settings).get)
    if settings.metrics_port is not None:
        _serve_metrics(app, settings.metrics_port)
    return app


def enqueue_advance(app: Celery) -> Callable[[str, int], None]:
    """``enqueue(id, revision)`` for Intake: run ``advance`` now."""

    def enqueue(rollout_id: str, revision: int) -> None:
        app.send_task(ADVANCE, args=(rollout_id, revision))

    return enqueue


def wake_outbox(app: Celery) -> Callable[[], None]:
    """``on_outbox()`` for Intake: deliver the outbox now, not at the next beat."""

    def wake() -> None:
        app.send_task(DELIVER)

    return wake


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

    def __init__(self, app: Celery, settings: WorkerSettings) -> None:
        self.app, self.settings = app, settings
        self._lock, self._built = threading.Lock(), dict[int, Runtime]()

    def get(self) -> Runtime:
        pid = os.getpid()
        with self._lock:
            if pid not in self._built:
                self._built = {pid: build_runtime(self.app, self.settings)}
            return self._built[pid]


def millisecond_clock() -> float:
    """Unix seconds to the millisecond, Prometheus' resolution: a look's window then lands
    on the instants Prometheus evaluates (a sub-millisecond edge can miss a one-point grid)."""
    return round(time.time(), 3)


def build_runtime(app: Celery, settings: WorkerSettings) -> Runtime:
    store = store_from_url(settings.store_url, settings.store_prefix)
    clock = millisecond_clock
    intake = Intake(
        store,
        settings.policy_dir,
        clock,
        enqueue_advance(app),
        alert_routes=settings.alert_routes.keys(),
        on_outbox=wake_outbox(app),
    )
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    delivery = Delivery(
        store,
        {name: notifier_for(route) for name, route in settings.alert_routes.items()},
        clock,
        lambda successor, predecessor: intake.tell(successor, Released(predecessor)),
        record=intake.record,
        worker=worker_id,
        base_url=settings.report_base_url,
        report_secret=settings.report_secret,
    )
    source = PrometheusSource(
        settings.prometheus_url,
        settings.prometheus_timeout,
        bearer_token=settings.prometheus_bearer_token,
    )

    def requeue(rollout_id: str, revision: int, countdown: float) -> None:
        app.send_task(ADVANCE, args=(rollout_id, revision), countdown=countdown)

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
        lease_seconds=settings.lease_seconds,
        max_countdown=settings.max_countdown,
        reconcile_grace=settings.reconcile_grace,
        worker_id=worker_id,
    )


# -- the default app, from the environment ----------------------------------------------------


def settings_from_env(environ: Mapping[str, str] | None = None) -> WorkerSettings:
    """WorkerSettings from the variables in the module docstring; the rest keep defaults."""
    env = os.environ if environ is None else environ
    defaults = WorkerSettings()
    port = env.get("CANARIST_WORKER_METRICS_PORT")
    return replace(
        defaults,
        store_url=env.get("CANARIST_REDIS__URL", defaults.store_url),
        prometheus_url=env.get("CANARIST_PROMETHEUS__URL", defaults.prometheus_url),
        prometheus_timeout=float(
            env.get("CANARIST_PROMETHEUS__TIMEOUT_SECONDS", defaults.prometheus_timeout)
        ),
        prometheus_bearer_token=env.get("CANARIST_PROMETHEUS__BEARER_TOKEN") or None,
        policy_dir=Path(env.get("CANARIST_POLICY_DIR", str(defaults.policy_dir))),
        alert_routes=alert_routes_from_env(env),
        metrics_port=int(port) if port else None,
        report_base_url=env.get("CANARIST_PUBLIC_URL") or None,
        report_secret=env.get("CANARIST_REPORT_SECRET") or None,
    )


def alert_routes_from_env(env: Mapping[str, str]) -> dict[str, Route]:
    """CANARIST_ALERT_ROUTES as JSON or a file path; else CANARIST_SETTINGS_FILE's routes."""
    text = env.get("CANARIST_ALERT_ROUTES", "").strip()
    source = "CANARIST_ALERT_ROUTES"
    inline = text.startswith(("{", "["))
    if not inline:
        path = text or env.get("CANARIST_SETTINGS_FILE", "")
        if not path:
            return {}
        source, text = path, Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if inline else yaml.safe_load(text)
    if isinstance(data, dict) and isinstance(data.get("alert_routes"), dict):
        data = data["alert_routes"]
    if not isinstance(data, dict):
        raise ValueError(f"{source}: alert routes must be a mapping of name to route")
    return {name: _route(name, spec, source) for name, spec in data.items()}


def _route(name: str, spec: Any, source: str) -> Route:
    if not isinstance(spec, dict) or not {"type", "url"} <= set(spec):
        raise ValueError(f"{source}: alert route {name!r} needs at least a type and a url")
    unknown = set(spec) - {"type", "url", "headers", "severity"}
    if unknown:
        raise ValueError(f"{source}: alert route {name!r} has unknown keys {sorted(unknown)}")
    headers = {str(key): str(value) for key, value in (spec.get("headers") or {}).items()}
    severity = str(spec.get("severity", "critical"))
    return Route(name, str(spec["type"]), str(spec["url"]), headers, severity)


_default: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``workers.celery_app.app``: the default app, built on first access from the env."""
    global _default  # noqa: PLW0603 - one app per process, built lazily on purpose
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default is None:
        settings = settings_from_env()
        _default = make_celery(settings.store_url, settings=settings)
    return _default
