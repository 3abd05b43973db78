"""What the API tells operators: Prometheus metrics and one JSON log line per request.

The metrics live in prometheus_client's default registry, so ``/metrics`` also shows whatever
the workers' modules (workers/metrics.py) register in the same process. Requests are counted by
route template (``/v1/rollouts/{rollout_id}``), never by raw path, so ids do not explode the
label set; a path that matches no route (a 404, or a 413 answered before routing) is counted as
``<unmatched>``.

Every log line carries ``rollout_id`` (null when the request is not about one rollout): the
routes put the id in a context variable that a logging filter reads, so lines logged by intake,
the store or the engine during the request carry it too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "canarist_api_requests",
    "HTTP requests the API answered, by method, route template and status code",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "canarist_api_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
)
UNMATCHED = "<unmatched>"

rollout_id_var: ContextVar[str | None] = ContextVar("canarist_rollout_id", default=None)
actor_var: ContextVar[str | None] = ContextVar("canarist_actor", default=None)
access_log = logging.getLogger("canarist.api.access")


def metrics_text() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


@contextmanager
def about_rollout(rollout_id: str, actor: str | None = None) -> Iterator[None]:
    """Log lines inside the block (in this context) carry ``rollout_id`` and ``actor``."""
    rollout_token, actor_token = rollout_id_var.set(rollout_id), actor_var.set(actor)
    try:
        yield
    finally:
        rollout_id_var.reset(rollout_token)
        actor_var.reset(actor_token)


class RequestTelemetry:
    """ASGI middleware: count and time each HTTP request, then log it as one JSON line.

    It reads the matched route and the rollout id from the request scope after the app ran:
    the router writes ``scope["route"]``, the routes write ``scope["state"]["rollout_id"]``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            elapsed = time.perf_counter() - started
            # Never the raw path: an answer given before routing (a 413 on a path no route
            # serves) must not let a caller mint label values.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            state = scope.get("state") or {}
            rollout_id = state.get("rollout_id") or scope.get("path_params", {}).get("rollout_id")
            access_log.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "actor": state.get("actor"),
                    "request_rollout_id": rollout_id,
                },
            )


class RolloutIdFilter(logging.Filter):
    """Stamp every record with the rollout (and actor) of the request in progress, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "rollout_id"):
            explicit = record.__dict__.pop("request_rollout_id", None)
            record.rollout_id = explicit or rollout_id_var.get()
        if not hasattr(record, "actor"):
            record.actor = actor_var.get()
        return True


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}
_DROPPED = frozenset({"color_message"})  # uvicorn's copy of the message with terminal colours


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, rollout_id, actor, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "rollout_id": getattr(record, "rollout_id", None),
            "actor": getattr(record, "actor", None),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in line and name not in _DROPPED:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


JsonFormatter.converter = time.gmtime


def configure_logging(level: str = "info") -> dict[str, Any]:
    """The logging config (``logging.config.dictConfig`` form) for the API process and uvicorn:
    JSON lines on stderr, each with its rollout id."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["rollout"]}
    quiet = {"handlers": [], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"rollout": {"()": RolloutIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": quiet,  # RequestTelemetry logs each request, with its rollout
        },
    }
