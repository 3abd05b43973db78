"""Building the FastAPI app: from parts (tests, embedding) or from settings (production).

``create_app(settings, intake)`` takes everything it needs, so a test builds it over a
MemoryStateStore and a list that collects enqueued tasks. ``app_from_settings`` wires the real
parts: the Redis store and Celery's enqueue (broker.py). The Celery modules are imported only
when it is called, so importing ``canarist.api`` needs no broker and no Celery app.

The API talks to Redis through a client of its own, with short timeouts and no retry on a
timeout (``api_store``): a request waits ``api.store_timeout_seconds`` for a hung Redis, then
answers 503, instead of redis-py's retries multiplying the wait. The workers keep their longer,
retried client, as a task can afford to wait where a person or a pipeline cannot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI

from canarist.api import handlers
from canarist.api.broker import intake_over_celery
from canarist.api.edge import Edge
from canarist.api.policies import router as policies_router
from canarist.api.report import router as report_router
from canarist.api.routes import Services, operations, router
from canarist.api.stages import PlanLabels
from canarist.api.telemetry import RequestTelemetry
from canarist.settings import Settings
from canarist.ui.live import Dashboard
from canarist.ui.routes import router as dashboard_router
from canarist.ui.sessions import Sessions
from workers.intake import Intake
from workers.store import RedisStateStore, StateStore, store_from_url

HEALTH_PROBE_APP = "canarist-healthz"

DESCRIPTION = """Queue rollouts, follow them, and steer them by hand.

Every request but `/healthz`, `/metrics` and this schema needs `Authorization: Bearer <token>`,
checked before the body is read. A token acts only in its namespaces (a rollout outside them is
a 404, like an unknown one) and only with its roles: `read` (list, status, report, policies),
`submit`, `operate` (pause, resume, abort, promote, retry, approve), `admin` (all); its name is
recorded on every action. Policies belong to no namespace: any token that may read sees them all.
Errors are `{"error": code, "detail": sentence, "problems": [{field, message}]}`, a few KB at
most; a body over the limit (64 KiB by default) is a 413 and one that is not JSON a 400.

A request the client gave up on may still have been carried out (a 503 or a timeout says only
that the answer did not come back): retry a submission with the same `Idempotency-Key`.
"""


def store_health(store: StateStore) -> Callable[[], None]:
    """A probe that makes one cheap read, so an unreachable store raises StoreUnavailable."""

    def probe() -> None:
        store.latest_for(HEALTH_PROBE_APP, HEALTH_PROBE_APP)

    return probe


def create_app(
    settings: Settings,
    intake: Intake,
    *,
    health: Callable[[], None] | None = None,
    session_clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The API over ``intake``, with the dashboard under /ui/ (canarist/ui/); ``health``
    defaults to probing the store intake writes to; ``session_clock`` times sign-ins, which are
    kept in that store too, so every app over the same store shares them."""
    app = FastAPI(
        title="Canarist",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    probe = health if health is not None else store_health(intake.store)
    app.state.services = Services(settings, intake, PlanLabels(intake.policy_for), probe)
    handlers.install(app)
    app.include_router(router)
    app.include_router(report_router)
    app.include_router(policies_router)
    app.include_router(operations)
    sessions = Sessions(intake.store.sessions, session_clock, settings.api.session_seconds)
    app.state.dashboard = Dashboard(sessions)
    app.include_router(dashboard_router)
    app.add_middleware(Edge, router=app.router, max_body_bytes=settings.api.max_body_bytes)
    app.add_middleware(RequestTelemetry)  # the outermost: it counts what Edge answers too
    return app


def api_store(settings: Settings) -> StateStore:
    """The store as the API uses it: a hung Redis is a 503 after ``store_timeout_seconds``.

    A dropped connection is still retried once (it fails at once), a timeout never is."""
    store = store_from_url(settings.redis.url)  # the registry: an unknown scheme is refused
    if not isinstance(store, RedisStateStore):
        return store
    store.close()
    return RedisStateStore.from_url(
        settings.redis.url,
        timeout_seconds=settings.api.store_timeout_seconds,
        retries=1,
        retry_timeouts=False,
    )


def app_from_settings(settings: Settings | None = None) -> FastAPI:
    """The production app: the Redis store and Celery's enqueue, from ``Settings()``."""
    settings = settings if settings is not None else Settings()
    store = api_store(settings)
    return create_app(settings, intake_over_celery(settings, store), health=store_health(store))
