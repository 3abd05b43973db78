"""The workers' own Prometheus metrics, and logs that name the rollout on every line.

Metrics (prometheus_client, default registry; ``serve(port)`` exposes them)::

    canarist_phase_transitions_total{from,to}      counter: phase changes the engine made
    canarist_analysis_looks_total{outcome}         counter: looks judged (pass/fail/inconclusive)
    canarist_decisions_total{decision}             counter: promoted, aborted, paused, failed
    canarist_analysis_duration_seconds             histogram: one analyze() against Prometheus
    canarist_step_lateness_seconds                 histogram: execution time - next_due_at
    canarist_rollouts_overdue                      gauge: unfinished rollouts overdue by more
                                                   than the reconciler's grace, counted in the
                                                   store at scrape time (every worker reports
                                                   the same number: alert on max)
    canarist_stale_tasks_total{reason}             counter: tasks that found nothing to do
    canarist_alert_deliveries_total{route,kind}    counter: notices delivered
    canarist_alert_delivery_failures_total{route,temporary}
                                                   counter: failed posts (retried if temporary)
    canarist_alerts_undelivered_total{route,kind}  counter: notices given up for good (alert on
                                                   any increase: someone was not paged)

Transitions and decisions are counters rather than a "rollouts by phase" gauge: each worker sees
only the steps it made, and counters add up across workers (``sum(rate(...))``) where gauges
would not. A rollout's current phase is in the store and the API.

A prefork worker runs tasks in child processes; to serve their metrics set
``PROMETHEUS_MULTIPROC_DIR`` as prometheus_client documents. The solo and threads pools need
nothing.

When looks fall behind, lateness spreads evenly (each worker runs its due tasks in due order)
and shows: ``canarist_step_lateness_seconds`` grows, ``canarist_rollouts_overdue`` counts the
rollouts behind, and a worker logs a warning when a step runs more than
``LATE_WARNING_SECONDS`` late (at most one a ``LATE_WARNING_EVERY``, naming how many are
overdue), so an overloaded fleet is said in the log before anyone reads a histogram.

Logs: ``rollout_log(rollout_id)`` is a LoggerAdapter that prefixes every message with
``rollout=<id>`` and sets ``record.rollout_id`` for structured (JSON) formatters.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from workers.actions import Action, EventKind, RecordEvent

LOGGER_NAME = "canarist.workers"
LATE_WARNING_SECONDS = 5.0  # a step this late says so in the log
LATE_WARNING_EVERY = 30.0  # at most one such warning per process in this many seconds
_DECISIONS = {"promoted", "aborted", "paused", "failed"}

PHASE_TRANSITIONS = Counter(
    "canarist_phase_transitions", "Phase changes made by the engine.", ["from", "to"]
)
ANALYSIS_LOOKS = Counter("canarist_analysis_looks", "Analysis looks judged.", ["outcome"])
DECISIONS = Counter(
    "canarist_decisions", "Rollouts promoted, aborted, paused or failed.", ["decision"]
)
ANALYSIS_DURATION = Histogram(
    "canarist_analysis_duration_seconds",
    "Wall time of one analysis against Prometheus.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STEP_LATENESS = Histogram(
    "canarist_step_lateness_seconds",
    "How late a rollout's step ran after it was due.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)
STALE_TASKS = Counter(
    "canarist_stale_tasks", "Tasks that found their work done or taken.", ["reason"]
)
ALERT_DELIVERIES = Counter(
    "canarist_alert_deliveries", "Notices delivered to an alert route.", ["route", "kind"]
)
ALERT_FAILURES = Counter(
    "canarist_alert_delivery_failures",
    "Failed posts to an alert route.",
    ["route", "temporary"],
)
ALERTS_UNDELIVERED = Counter(
    "canarist_alerts_undelivered",
    "Notices given up for good on an alert route (a permanent failure or retries exhausted).",
    ["route", "kind"],
)

ROLLOUTS_OVERDUE = Gauge(
    "canarist_rollouts_overdue",
    "Unfinished rollouts overdue by more than the reconciler's grace (counted in the store).",
)


class _Overdue:
    """The store's count of overdue rollouts, read at scrape time and by the late warning."""

    def __init__(self) -> None:
        self.count: Callable[[], int] | None = None
        self.lock = threading.Lock()
        self.warned_at = -math.inf

    def read(self) -> float:
        count = self.count
        if count is None:
            return 0.0
        try:
            return float(count())
        except Exception:  # the store is down: unknown, not zero
            return math.nan


_overdue = _Overdue()
ROLLOUTS_OVERDUE.set_function(_overdue.read)


def watch_overdue(count: Callable[[], int]) -> None:
    """Count overdue rollouts with ``count`` (the worker's store, from now-grace backwards)."""
    _overdue.count = count


def record_step(actions: Iterable[Action]) -> None:
    """Count what one saved step did, from its events."""
    for action in actions:
        if not isinstance(action, RecordEvent):
            continue
        data = action.data
        if action.kind == EventKind.PHASE:
            before, after = str(data.get("from", "")), str(data.get("to", ""))
            PHASE_TRANSITIONS.labels(before, after).inc()
            if after in _DECISIONS:
                DECISIONS.labels(after).inc()
        elif action.kind == EventKind.ANALYSIS:
            ANALYSIS_LOOKS.labels(str(data.get("outcome", "unknown"))).inc()


def record_lateness(due_at: float | None, now: float) -> None:
    """Observe how late a step runs; warn (rate-limited) when the workers are behind."""
    if due_at is None:
        return
    late = max(0.0, now - due_at)
    STEP_LATENESS.observe(late)
    if late < LATE_WARNING_SECONDS:
        return
    with _overdue.lock:
        if now - _overdue.warned_at < LATE_WARNING_EVERY:
            return
        _overdue.warned_at = now
    overdue = _overdue.read()
    worker_log().warning(
        "a step ran %.1f s late: the workers are behind (%s rollouts overdue); add workers "
        "or Prometheus capacity (README: Scale)",
        late,
        "an unknown number of" if math.isnan(overdue) else f"{overdue:.0f}",
    )


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Expose the default registry over HTTP (a daemon thread)."""
    start_http_server(port, address)


class RolloutLog(logging.LoggerAdapter[logging.Logger]):
    """Every line says ``rollout=<id>``; ``record.rollout_id`` carries it for formatters."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        context: Mapping[str, object] = self.extra or {}
        kwargs["extra"] = {**context, **kwargs.get("extra", {})}
        return f"rollout={context.get('rollout_id')} {msg}", kwargs


def rollout_log(rollout_id: str, **context: object) -> RolloutLog:
    return RolloutLog(logging.getLogger(LOGGER_NAME), {"rollout_id": rollout_id, **context})


def worker_log() -> logging.Logger:
    """For lines about no single rollout (reconciler sweeps, outbox batches)."""
    return logging.getLogger(LOGGER_NAME)
