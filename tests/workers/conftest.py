"""Fixtures for the intake, task, delivery and Celery tests, and the test worker's Celery app.

Unit tests get an in-memory store, a fake clock, a tmp policy directory holding a demo-scale
policy (interval 5s, one 50% weight step analysed for 10s) and a metric source that answers with
constant counts. The Celery tests get real ``celery worker`` and ``celery beat`` processes
against the session's Redis, Prometheus and Alertmanager (tests/conftest.py); they run this
module's ``worker_app``, built with ``make_celery`` from environment variables that only the
subprocesses see (``CANARIST_TEST_WORKER`` and the documented CANARIST_* variables)::

    celery -A tests.workers.conftest:worker_app worker -Q canarist.rollouts,canarist.notify ...

Every process started here is stopped by its PID in the fixture's teardown (and at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import redis

from analyzer.errors import TemporarySourceError
from analyzer.sources.base import Series
from canarist.demo.stack import ServiceProcess
from tests.waiting import wait_until
from workers.actions import Released
from workers.celery_app import (
    Timings,
    enqueue_advance,
    make_celery,
    millisecond_clock,
    wake_outbox,
)
from workers.delivery import Delivery
from workers.intake import Intake, RolloutJob
from workers.settings import RedisSettings, WorkerSettings
from workers.state import RolloutState
from workers.store import AuditEvent, MemoryStateStore, RedisStateStore, StateStore
from workers.tasks import Runtime, advance

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
T0 = 1_700_000_000.0

DEMO_POLICY = """
name: demo
description: demo-scale canary for the worker tests
analysis:
  interval: 5s
  begin_after: 0s
  min_samples: 2
  alpha: 0.001
  inconclusive_limit: 3
  on_inconclusive: pause
metrics:
  - name: error-ratio
    kind: counts
    errors: sum(increase(http_requests_total{ {{ selector }}, code=~"5.." }[{{ interval }}]))
    total: sum(increase(http_requests_total{ {{ selector }} }[{{ interval }}]))
    tolerance: 0.25
    critical: true
strategy:
  type: canary
  steps:
    - set_weight: 50
    - analyze: {duration: 10s}
    - set_weight: 100
alerts: [oncall]
"""

ARGS_POLICY = """
name: with-args
args:
  - name: route
  - name: quantile
    default: "0.99"
metrics:
  - name: errors
    kind: counts
    errors: sum(increase(e{ {{ selector }}, route=~"{{ route }}" }[{{ interval }}]))
    total: sum(increase(t{ {{ selector }}, route=~"{{ route }}" }[{{ interval }}]))
strategy:
  type: canary
  steps:
    - set_weight: 10
    - analyze: {duration: 2m}
    - set_weight: 100
"""


class FakeClock:
    """Time that moves only when told."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class FakeSource:
    """A MetricSource with constant counts per interval: ``canary_errors`` x the baseline's.

    Not analyzer.sources.MemorySource, which answers only the exact PromQL registered with it:
    this answers whatever a policy renders, told apart by shape (5xx or total, canary or
    baseline). The harness (rollout_harness.py) learns the policy, selectors and args of its
    rollouts only as they are submitted through the API, on local and Kubernetes platforms
    alike, so it could not register them beforehand. ``failing`` fails every query until it is
    cleared."""

    requests: float = 1000.0
    error_ratio: float = 0.01
    canary_errors: float = 1.0
    canary_marker: str = 'version="v2"'
    failing: bool = False
    calls: list[str] = field(default_factory=list)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        self.calls.append(promql)
        if self.failing:
            raise TemporarySourceError("connection refused (scripted)")
        errors = 'code=~"5.."' in promql or promql.startswith("sum(increase(e{")
        value = self.requests * (self.error_ratio if errors else 1.0)
        if errors and self.canary_marker in promql:
            value *= self.canary_errors
        stamps = np.arange(start.timestamp(), end.timestamp() + 1e-6, step.total_seconds())
        return [Series(labels={}, timestamps=stamps, values=np.full(stamps.size, value))]


@pytest.fixture
def wait_out_on_redis(redis_server: ServiceProcess) -> Iterator[Callable[[float], None]]:
    """``wait_out(seconds)``: until Redis's own clock (TIME) is ``seconds`` past the call, so
    what Redis expires (leases, locks, idempotency keys: SET PX, PEXPIRE) and was set to last at
    most ``seconds`` before it has run out. A Redis store keeps no clock a test could move."""
    client = redis.Redis.from_url(redis_server.url)

    def redis_now() -> float:
        seconds, micros = client.time()
        return float(seconds) + micros / 1e6

    def wait_out(seconds: float) -> None:
        until = redis_now() + seconds + 0.002  # a key expires once Redis's time is past it
        wait_until(f"Redis's clock to move {seconds:g} s on", lambda: redis_now() > until)

    try:
        yield wait_out
    finally:
        client.close()


def job(**overrides: Any) -> RolloutJob:
    fields: dict[str, Any] = {
        "app": "checkout",
        "namespace": "shop",
        "version": "v2",
        "policy": "demo",
        "baseline": 'app="checkout",version="v1"',
        "canary": 'app="checkout",version="v2"',
        **overrides,
    }
    return RolloutJob.model_validate(fields)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "demo.yaml").write_text(DEMO_POLICY)
    (directory / "with-args.yaml").write_text(ARGS_POLICY)
    return directory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory_store(clock: FakeClock) -> MemoryStateStore:
    return MemoryStateStore(clock)


@dataclass
class Queued:
    """What intake and tasks asked Celery for, in order."""

    advance: list[tuple[str, int, float]] = field(default_factory=list)
    urgent: list[tuple[str, int, float]] = field(default_factory=list)  # requeued ahead
    outbox_wakes: int = 0

    def enqueue(self, rollout_id: str, revision: int) -> None:
        self.advance.append((rollout_id, revision, 0.0))

    def requeue(
        self, rollout_id: str, revision: int, countdown: float, urgent: bool = False
    ) -> None:
        self.advance.append((rollout_id, revision, countdown))
        if urgent:
            self.urgent.append((rollout_id, revision, countdown))

    def wake(self) -> None:
        self.outbox_wakes += 1


@pytest.fixture
def queued() -> Queued:
    return Queued()


@pytest.fixture
def intake(
    memory_store: MemoryStateStore, policy_dir: Path, clock: FakeClock, queued: Queued
) -> Intake:
    return Intake(
        memory_store,
        policy_dir,
        clock,
        queued.enqueue,
        alert_routes={"oncall"},
        on_outbox=queued.wake,
    )


def trail(store: StateStore, rollout_id: str) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    while page := store.events(rollout_id, events[-1].id if events else None, 500):
        events.extend(page)
    return events


# -- real Celery processes ----------------------------------------------------------------------

_STARTED: set[CeleryProcess] = set()


class CeleryProcess:
    """One ``celery`` command in its own log file, stopped by its PID."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, dict(env), log_path
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    def start(self, ready_text: str, timeout: float = 30.0) -> CeleryProcess:
        self._log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size
        self._popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _STARTED.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if ready_text.encode() in log.read():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout:g} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def kill(self) -> None:
        """SIGKILL: the worker dies holding whatever messages it reserved."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (warm shutdown: reserved messages go back to Redis), SIGKILL after 15 s."""
        self._end(signal.SIGTERM)

    def _end(self, first: signal.Signals) -> None:
        popen = self._popen
        if popen is not None and popen.poll() is None:
            popen.send_signal(first)
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        _STARTED.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None


@atexit.register
def _stop_started() -> None:
    for process in list(_STARTED):
        process.stop()


@dataclass
class CeleryStack:
    """The test's view of the running system: store, intake and the worker processes."""

    env: dict[str, str]
    workdir: Path
    store: StateStore
    intake: Intake
    policy_dir: Path
    client: Any
    processes: list[CeleryProcess] = field(default_factory=list)
    worker: CeleryProcess | None = None
    pool: str = "solo"  # as deployed; "threads" runs 4 task threads

    def start_worker(self, name: str) -> CeleryProcess:
        argv = [str(CELERY), "-A", "tests.workers.conftest:worker_app", "worker"]
        threads = ["-c", "4"] if self.pool == "threads" else ["-c", "1"]
        argv += ["-Q", "canarist.rollouts,canarist.notify", f"--pool={self.pool}", *threads]
        argv += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
        argv += ["-n", f"{name}@%h", "--loglevel=INFO"]
        process = CeleryProcess(name, argv, self.env, self.workdir / f"{name}.log")
        self.processes.append(process)
        self.worker = process.start(" ready.")
        return process

    def start_beat(self, name: str = "beat") -> CeleryProcess:
        argv = [str(CELERY), "-A", "tests.workers.conftest:worker_app", "beat"]
        argv += ["-s", str(self.workdir / f"{name}-schedule"), "--max-interval", "1"]
        argv += ["--loglevel=INFO"]
        process = CeleryProcess(name, argv, self.env, self.workdir / f"{name}.log")
        self.processes.append(process)
        return process.start("beat: Starting")

    def state(self, rollout_id: str) -> RolloutState:
        return self.store.load(rollout_id).state

    def wait_for(
        self, rollout_id: str, done: Callable[[RolloutState], bool], timeout: float, what: str
    ) -> RolloutState:
        def reached() -> RolloutState | None:
            try:
                state = self.state(rollout_id)
            except Exception:  # Redis restarting: the test stack's own client reconnects
                return None
            return state if done(state) else None

        return wait_until(what, reached, timeout, every=0.2, detail=lambda: self.story(rollout_id))

    def ran_after_now(self, task: str) -> None:
        """Send ``task`` (no arguments) and wait until the worker has run it: what was queued
        on its queue before it has been taken, and what that queued is in Redis."""
        task_id = f"marker-{uuid.uuid4().hex[:8]}"
        worker = self.worker
        assert worker is not None
        self.client.send_task(task, task_id=task_id)
        wait_until(
            f"the worker to run the marker {task}[{task_id}]",
            lambda: f"[{task_id}] succeeded" in worker.log_path.read_text(errors="replace"),
            30,
            every=0.05,
            detail=worker.tail,
        )

    def story(self, rollout_id: str) -> str:
        """The rollout's audit trail and the processes' logs, for a failure message."""
        lines = [f"{e.kind}: {e.message}" for e in trail(self.store, rollout_id)]
        logs = "\n\n".join(f"== {p.name}\n{p.tail(40)}" for p in self.processes)
        return "events:\n  " + "\n  ".join(lines) + f"\n\n{logs}"

    def fail(self, rollout_id: str, message: str) -> None:
        pytest.fail(f"{message}\n{self.story(rollout_id)}")


def worker_env(
    redis: ServiceProcess,
    prometheus: ServiceProcess,
    alertmanager: ServiceProcess,
    policy_dir: Path,
    prefix: str,
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CANARIST_")}
    routes = f'{{"oncall": {{"type": "alertmanager", "url": "{alertmanager.url}"}}}}'
    env.update(
        CANARIST_TEST_WORKER="1",
        CANARIST_TEST_STORE_PREFIX=prefix,
        CANARIST_REDIS__URL=redis.url.rsplit("/", 1)[0] + "/1",  # apart from the store tests
        CANARIST_PROMETHEUS__URL=prometheus.url,
        CANARIST_PROMETHEUS__TIMEOUT_SECONDS="3",
        CANARIST_POLICY_DIR=str(policy_dir),
        CANARIST_ALERT_ROUTES=routes,
        PYTHONPATH=str(ROOT),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _worker_app() -> Any:
    """The test worker's app: the env's settings, with demo-scale timings."""
    timings = Timings(
        visibility_timeout=30,  # every countdown is at most 15 s
        reconcile_every=1.0,
        reconcile_grace=2.0,
        deliver_every=1.0,
        lease_seconds=10.0,
    )
    store_prefix = os.environ["CANARIST_TEST_STORE_PREFIX"]
    return make_celery(WorkerSettings(), timings=timings, store_prefix=store_prefix)


worker_app = _worker_app() if os.environ.get("CANARIST_TEST_WORKER") else None


@contextlib.contextmanager
def running_stack(
    services: tuple[ServiceProcess, ServiceProcess, ServiceProcess],
    workdir: Path,
    policies: dict[str, str],
    prefix: str,
    environment: dict[str, str] | None = None,
    hook_routes: frozenset[str] = frozenset(),
    worker: str = "w1",
    pool: str = "solo",
) -> Iterator[CeleryStack]:
    """Beat and one worker (``solo`` pool as deployed, or ``threads`` with 4 threads) over the
    session's services (Redis, Prometheus, Alertmanager), with ``policies`` (name -> YAML) in
    their policy dir and ``environment`` added to theirs; Redis db 1 is theirs, flushed at the
    end."""
    policy_dir = workdir / "policies"
    policy_dir.mkdir()
    for name, text in policies.items():
        (policy_dir / f"{name}.yaml").write_text(text)
    env = worker_env(*services, policy_dir, prefix)
    env.update(environment or {})
    broker = env["CANARIST_REDIS__URL"]
    store = RedisStateStore.from_url(broker, prefix)
    client = make_celery(WorkerSettings(redis=RedisSettings(url=broker)), store_prefix=prefix)
    intake = Intake(
        store,
        policy_dir,
        millisecond_clock,
        enqueue_advance(client),
        alert_routes={"oncall"},
        hook_routes=hook_routes,
        on_outbox=wake_outbox(client),
    )
    stack = CeleryStack(env, workdir, store, intake, policy_dir, client, pool=pool)
    try:
        stack.start_beat()
        stack.start_worker(worker)
        yield stack
    finally:
        for process in stack.processes:  # beat first: nothing new is sent to stopped workers
            process.stop()
        client.close()
        store.close()
        if services[0].running:
            flush = redis.Redis.from_url(broker)
            flush.flushdb()
            flush.close()


@pytest.fixture(scope="module")
def celery_stack(
    redis_server: ServiceProcess,
    prometheus_server: ServiceProcess,
    alertmanager_server: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryStack]:
    """Beat and one worker over the session's services, with the demo policy."""
    services = (redis_server, prometheus_server, alertmanager_server)
    workdir = tmp_path_factory.mktemp("celery")
    prefix = f"itest:{uuid.uuid4().hex[:8]}:"
    with running_stack(services, workdir, {"demo": DEMO_POLICY}, prefix) as stack:
        yield stack


def task_runtime(
    store: StateStore,
    intake: Intake,
    source: Any,
    platform: Any,
    clock: FakeClock,
    queued: Queued,
    notifier: Any,
) -> Runtime:
    """The tasks' Runtime over in-memory parts: one platform, one alert route "oncall"."""
    delivery = Delivery(
        store,
        {"oncall": notifier},
        clock,
        lambda successor, predecessor: intake.tell(successor, Released(predecessor)),
        record=intake.record,
    )
    return Runtime(
        store=store,
        intake=intake,
        source=source,
        platforms=lambda name: platform,
        delivery=delivery,
        clock=clock,
        requeue=queued.requeue,
        wake_outbox=queued.wake,
        lease_seconds=30.0,
        max_countdown=15.0,
        reconcile_grace=5.0,
        worker_id="test",
    )


def drive(runtime: Runtime, queued: Queued, clock: FakeClock, wakes: int = 50) -> RolloutState:
    """Run the latest queued advance after its countdown until nothing is queued."""
    state = None
    for _ in range(wakes):
        if not queued.advance:
            break
        rollout_id, revision, countdown = queued.advance.pop()
        clock.advance(countdown)
        advance(runtime, rollout_id, revision)
        state = runtime.store.load(rollout_id).state
        if state.phase.terminal and state.awaiting is None:
            break
    assert state is not None
    return state
