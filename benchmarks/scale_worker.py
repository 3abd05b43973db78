"""The scale benchmark's worker: Canarist's own Celery app, with a recorder of every task.

``benchmarks.scale`` runs this module's ``app`` in one or more ``celery worker`` processes::

    celery -A benchmarks.scale_worker:app worker --pool=threads -c 8 -Q canarist.rollouts,...

The app is ``workers.celery_app.make_celery`` with the settings of the environment (the
documented CANARIST_* variables, ``workers.settings.WorkerSettings``) and the benchmark's store
prefix; nothing about the tasks
changes. What is added is measurement, in this process only:

- lateness: ``workers.metrics.record_lateness`` (called by ``advance`` with the rollout's
  ``next_due_at`` and the task's clock, exactly what ``canarist_step_lateness_seconds``
  observes) is wrapped so the same two numbers land in the task's sample too;
- where a task's time goes: wall time spent in Prometheus requests (``PrometheusSource``'s
  HTTP requests, counted with the points they asked for), the whole analysis (``analyze``,
  queries included), the engine (``step``), the state store (the Redis store's and leases'
  methods) and sending messages (``send_task``: requeues, outbox wake-ups);
- optionally (CANARIST_BENCH_PROFILE=path, solo pool only: a profiler sees one thread), a
  cProfile of every tenth task, dumped at shutdown.

Each finished task appends one JSON line to CANARIST_BENCH_SAMPLES. Under the threads pool
every task thread keeps its own running sample (a ``threading.local``). Module-level patching is
acceptable here because this module is a benchmark harness, never imported by Canarist.
"""

from __future__ import annotations

import cProfile
import functools
import gc
import json
import os
import threading
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

_local = threading.local()
_write_lock = threading.Lock()
_samples: IO[str] | None = None
_profile: cProfile.Profile | None = None
_task_count = 0


def _current() -> dict[str, Any]:
    """This thread's running sample."""
    sample: dict[str, Any] | None = getattr(_local, "sample", None)
    if sample is None:
        sample = _local.sample = {}
    return sample


def _timed(part: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding its wall time to the running task's ``part``."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            sample = _current()
            sample[part] = sample.get(part, 0.0) + time.perf_counter() - began

    return wrapper


def _counted_request(function: Callable[..., Any]) -> Callable[..., Any]:
    """``PrometheusSource._request(promql, start_ms, end_ms, step_ms, ...)``, counted: one
    HTTP request, and the grid instants it asked for (once per request, however many queries)."""

    @functools.wraps(function)
    def wrapper(
        self: Any, promql: str, start_ms: int, end_ms: int, step_ms: int, *rest: Any
    ) -> Any:
        sample = _current()
        sample["queries"] = sample.get("queries", 0) + 1
        sample["instants"] = sample.get("instants", 0) + (end_ms - start_ms) // step_ms + 1
        return function(self, promql, start_ms, end_ms, step_ms, *rest)

    return wrapper


def _garbage_collected(phase: str, info: dict[str, Any]) -> None:
    """Python's cycle collector, timed into the running task's ``gc`` part (it runs in the
    thread whose allocation triggered it)."""
    sample = _current()
    if phase == "start":
        sample["_gc_began"] = time.perf_counter()
    elif "_gc_began" in sample:
        began = sample.pop("_gc_began")
        sample["gc"] = sample.get("gc", 0.0) + time.perf_counter() - began
        if info.get("generation") == 2:
            sample["gc_full"] = sample.get("gc_full", 0) + 1


def _record_lateness(due_at: float | None, now: float) -> None:
    _original_record_lateness(due_at, now)
    if due_at is not None:
        sample = _current()
        sample["due"], sample["ran"] = due_at, now


_original_record_lateness = metrics.record_lateness


def _instrument() -> None:
    metrics.record_lateness = _record_lateness  # tasks.py calls it as metrics.record_lateness
    request = _counted_request(_timed("prometheus", PrometheusSource._request))
    PrometheusSource._request = request  # type: ignore[method-assign]
    observations.analyze = _timed("analysis", observations.analyze)  # type: ignore[attr-defined]
    stepping.step = _timed("engine", stepping.step)  # type: ignore[attr-defined]
    for name in ("load", "save", "create", "due", "latest_for", "events"):
        setattr(RedisStateStore, name, _timed("store", getattr(RedisStateStore, name)))
    for name in ("acquire", "release"):
        setattr(RedisLeases, name, _timed("store", getattr(RedisLeases, name)))
    Celery.send_task = _timed("send", Celery.send_task)
    gc.callbacks.append(_garbage_collected)


def _task_started(task: Any = None, **_: Any) -> None:
    global _task_count  # noqa: PLW0603 - one recorder per worker process
    sample = _current()
    sample.clear()
    sample["task"] = getattr(task, "name", "?")
    sample["wall"] = time.time()
    sample["began"] = time.perf_counter()
    sample["cpu_began"] = time.thread_time()
    with _write_lock:
        _task_count += 1
        profiled = _profile is not None and _task_count % PROFILE_EVERY == 0
    if profiled and _profile is not None:
        sample["profiled"] = True
        _profile.enable()


def _task_finished(retval: Any = None, **_: Any) -> None:
    sample = _current()
    if sample.pop("profiled", False) and _profile is not None:
        _profile.disable()
    began, cpu_began = sample.pop("began", None), sample.pop("cpu_began", None)
    if began is None or cpu_began is None or _samples is None:
        return
    sample["seconds"] = time.perf_counter() - began
    sample["cpu"] = time.thread_time() - cpu_began  # this task's thread only
    sample["result"] = retval if isinstance(retval, str | int) else None
    line = json.dumps(sample) + "\n"
    with _write_lock:
        _samples.write(line)


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
    if os.environ.get("CANARIST_BENCH_PROFILE") and os.environ.get("CANARIST_BENCH_POOL") == "solo":
        _profile = cProfile.Profile()
        if os.environ.get("CANARIST_BENCH_PROFILE_ALL"):  # Celery's own loop too, all along
            _profile.enable()
            globals()["PROFILE_EVERY"] = 10**12
    return make_celery(WorkerSettings(), store_prefix=os.environ["CANARIST_BENCH_PREFIX"])


app = _bench_app() if os.environ.get("CANARIST_BENCH_WORKER") else None
