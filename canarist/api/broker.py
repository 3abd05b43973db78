"""The Celery app as the canarist layer builds it: from the service's settings.

``Settings`` extends the workers' own settings (workers/settings.py), so ``make_celery`` takes it
as it is. The API uses the app only to send tasks (by name, routed by the app's configuration);
``canarist worker`` and ``canarist beat`` run it. Nothing here is imported until one of them
asks, so importing ``canarist.api`` needs no Celery app and no broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from canarist.settings import Settings
from workers.intake import Intake
from workers.store import StateStore

log = logging.getLogger("canarist.api")


def celery_from_settings(settings: Settings) -> Any:
    """The Celery app with Canarist's tasks, queues and beat schedule, on ``redis.url``."""
    from workers.celery_app import make_celery  # noqa: PLC0415 - Celery only when asked

    return make_celery(settings)


def task_senders(celery: Any) -> tuple[Callable[[str, int], None], Callable[[], None]]:
    """Intake's ``enqueue(id, revision)`` and ``on_outbox()`` over ``celery``, for the API.

    A rollout is saved, and due, before it is enqueued: when the broker is down the beat
    reconciler finds it overdue, so a request does not fail after its change was made.
    """
    from workers.celery_app import enqueue_advance, wake_outbox  # noqa: PLC0415

    send_advance, send_delivery = enqueue_advance(celery), wake_outbox(celery)

    def enqueue(rollout_id: str, revision: int) -> None:
        try:
            send_advance(rollout_id, revision)
        except Exception as exc:
            log.warning("could not enqueue revision %d (%s): the reconciler will", revision, exc)

    def on_outbox() -> None:
        try:
            send_delivery()
        except Exception as exc:
            log.warning("could not wake the outbox delivery (%s): its schedule will", exc)

    return enqueue, on_outbox


def intake_over_celery(settings: Settings, store: StateStore) -> Intake:
    """Intake as the API runs it: Celery's senders, and the workers' clock (to the
    millisecond, Prometheus' resolution), so a command steps the engine as a task would."""
    from workers.celery_app import millisecond_clock  # noqa: PLC0415

    enqueue, on_outbox = task_senders(celery_from_settings(settings))
    routes = settings.alert_routes.keys()
    return Intake(
        store,
        settings.policy_dir,
        millisecond_clock,
        enqueue,
        alert_routes=routes,
        hook_routes=settings.hook_routes.keys(),
        on_outbox=on_outbox,
    )
