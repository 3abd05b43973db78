"""Canarist's HTTP API (FastAPI): queue rollouts, follow them, and steer them by hand.

``canarist.api:app`` is what ``uvicorn`` and ``canarist api`` serve. It is built on first access
from ``Settings()`` with the Redis store and Celery's enqueue, so importing this package touches
no broker and reads no settings. Tests and embedders call ``create_app(settings, intake)``.

Endpoints (all but the last three need a bearer token with the role named; see auth.py)::

    POST /v1/rollouts                      202  submit: queue a rollout (Idempotency-Key)
    GET  /v1/rollouts[?namespace=]         200  read: rollouts the token may see, newest first
    GET  /v1/rollouts/{id}                 200  read: one rollout, its verdict and audit events
    GET  /v1/rollouts/{id}/report          200  read (or a signed link): the HTML report
    POST /v1/rollouts/{id}/abort|promote|pause|resume|retry|approve   202  operate: a manual command
    GET  /healthz                          200, or 503 when the store is unreachable
    GET  /metrics                          Prometheus text format
    GET  /openapi.json                     the schema
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from canarist.api.factory import app_from_settings, create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    app: FastAPI

__all__ = ["app", "app_from_settings", "create_app"]

_built: list[FastAPI] = []
_building = threading.Lock()


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _building:
        if not _built:
            _built.append(app_from_settings())
    return _built[0]
