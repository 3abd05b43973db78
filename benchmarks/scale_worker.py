"""The scale benchmark's worker: Canarist's own Celery app, with a recorder of every task.

``benchmarks.scale`` runs this module's ``app`` in ONE ``celery worker`` process::

    celery -A benchmarks.scale_worker:app worker --pool=solo -c 1 -Q canarist.rollouts,...

The app is ``workers.celery_app.make_celery`` with the settings of the environment (the
documented CANARIST_* variables, ``workers.settings.WorkerSettings``) and the benchmark's store
prefix; nothing about the tasks
changes. What is added is measurement, in this process only:

- lateness: ``workers.metrics.record_lateness`` (called by ``advance`` with the rollout's
  ``next_due_at`` and the task's clock, exactly what ``canarist_step_lateness_seconds``
  observes) is wrapped so the same two numbers land in the task's sample too;
- where a task's time goes: wall time spent in Prometheus queries
  (``PrometheusSource.query_range``), the whole analysis (``analyze``, queries included), the
  engine (``step``), the state store (the Redis store's and leases' methods) and sending
  messages (``send_task``: requeues, outbox wake-ups);
- optionally (CANARIST_BENCH_PROFILE=path), a cProfile of every tenth task, dumped at shutdown.

Each finished task appends one JSON line to CANARIST_BENCH_SAMPLES. Module-level patching is
acceptable here because this module is a benchmark harness, never imported by Canarist.
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import time
from collections.abc import Callable
from typing import IO, Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_shutdown

from analyzer.sources.prometheus import PrometheusSource
from workers import metrics, observations, stepping
from workers.celery_app import make_celery
from workers.settings import WorkerSettings
from workers.store.redis import RedisLeases, RedisStateStore

PROFILE_EVERY = 10  # profile one task in ten: the profiler's overhead stays off most tasks

_current: dict[str, Any] = {}
_samples: IO[str] | None = None
_profile: cProfile.Profile | None = None
_task_count = 0


def _timed(part: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding its wall time to the running task's ``part``."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _current[part] = _current.get(part, 0.0) + time.perf_counter() - began

    return wrapper


def _record_lateness(due_at: float | None, now: float) -> None:
    _original_record_lateness(due_at, now)
    if due_at is not None:
        _current["due"], _current["ran"] = due_at, now


_original_record_lateness = metrics.record_lateness


def _instrument() -> None:
    metrics.record_lateness = _record_lateness  # tasks.py calls it as metrics.record_lateness
    PrometheusSource.query_range = _timed("prometheus", PrometheusSource.query_range)  # type: ignore[method-assign]
    observations.analyze = _timed("analysis", observations.analyze)  # type: ignore[attr-defined]
    stepping.step = _timed("engine", stepping.step)  # type: ignore[attr-defined]
    for name in ("load", "save", "create", "due", "latest_for", "events"):
        setattr(RedisStateStore, name, _timed("store", getattr(RedisStateStore, name)))
    for name in ("acquire", "release"):
        setattr(RedisLeases, name, _timed("store", getattr(RedisLeases, name)))
    Celery.send_task = _timed("send", Celery.send_task)


def _task_started(task: Any = None, **_: Any) -> None:
    global _task_count  # noqa: PLW0603 - one recorder per worker process
    _current.clear()
    _current["task"] = getattr(task, "name", "?")
    _current["wall"] = time.time()
    _current["began"] = time.perf_counter()
    _task_count += 1
    if _profile is not None and _task_count % PROFILE_EVERY == 0:
        _current["profiled"] = True
        _profile.enable()


def _task_finished(retval: Any = None, **_: Any) -> None:
    if _current.pop("profiled", False) and _profile is not None:
        _profile.disable()
    began = _current.pop("began", None)
    if began is None or _samples is None:
        return
    _current["seconds"] = time.perf_counter() - began
    _current["result"] = retval if isinstance(retval, str | int) else None
    _samples.write(json.dumps(_current) + "\n")


def _finish(**_: Any) -> None:
    if _samples is not None:
        _samples.flush()
    path = os.environ.get("CANARIST_BENCH_PROFILE")
    if _profile is not None and path:
        _profile.dump_stats(path)


def _bench_app() -> Celery:
    global _samples, _profile  # noqa: PLW0603 - set once, when the worker imports the app
    _instrument()
    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_finished, weak=False)
    worker_shutdown.connect(_finish, weak=False)
    _samples = open(os.environ["CANARIST_BENCH_SAMPLES"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    if os.environ.get("CANARIST_BENCH_PROFILE"):
        _profile = cProfile.Profile()
    return make_celery(WorkerSettings(), store_prefix=os.environ["CANARIST_BENCH_PREFIX"])


app = _bench_app() if os.environ.get("CANARIST_BENCH_WORKER") else None
