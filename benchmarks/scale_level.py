"""One level of the scale benchmark: N rollouts in flight on W worker processes, measured.

``run_level`` empties Redis, starts W ``celery worker`` processes (benchmarks/scale_worker.py's
app), submits N rollouts through ``Intake`` spread evenly over one analysis interval (so their
looks fall due evenly, as independent releases would, not all in the same second), waits out a
warm-up, then measures for a fixed period: every task a worker started inside the period is a
sample (scale_worker.py records it). Besides the workers' own figures it reads what the shared
parts spent in the same period: Redis' commands (``INFO commandstats``) and the CPU of the Redis
and Prometheus processes. The workers are stopped by their PIDs before the function returns,
whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis

from workers.celery_app import (
    enqueue_advance,
    make_celery,
    millisecond_clock,
    wake_outbox,
)
from workers.intake import Intake, RolloutJob
from workers.settings import RedisSettings, WorkerSettings
from workers.state import Phase
from workers.store import RedisStateStore
from workers.tasks import ADVANCE

ROOT = Path(__file__).resolve().parents[1]
CELERY = Path(sys.executable).with_name("celery")
PARTS = ("prometheus", "analysis", "engine", "store", "send", "gc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Level:
    rollouts: int
    interval: float  # the policy's analysis.interval, seconds
    warmup: float  # after the last submission, before measuring
    measure: float
    apps: int  # distinct selector pairs the rollouts share
    workers: int = 1  # worker processes
    aborts: int = 10  # rollouts aborted after the measured period, timed until rolled back


@dataclass(frozen=True)
class Pool:
    """How each worker process runs tasks: Celery's pool and its concurrency."""

    name: str = "solo"
    concurrency: int = 4  # the threads pool's threads


class Worker:
    """One ``celery worker`` process with its log in a file, stopped by its PID."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, dict(env), log_path
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    def start(self, timeout: float = 60.0) -> Worker:
        self._log = self.log_path.open("ab")
        self._popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"worker exited while starting:\n{self.tail()}")
            if b" ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not ready within {timeout:g} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker and its live children (a prefork pool's child)."""
        pids = [self.pid]
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        if children.exists():
            pids += [int(pid) for pid in children.read_text().split()]
        return sum(cpu_seconds(pid) for pid in pids)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (warm shutdown), SIGKILL after 20 s."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has been busy since boot (/proc/stat: all but idle
    and iowait): the workers, Redis and Prometheus, and also the kernel, this benchmark and
    anything else running, which a quiet machine keeps small."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of one process, MiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kib = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    return round(kib / 1024, 1)


def redis_calls(client: redis.Redis) -> int:
    """Commands Redis has run since it started (every client: workers, broker, store)."""
    stats = client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


def worker_argv(pool: Pool, loglevel: str, name: str) -> list[str]:
    argv = [str(CELERY), "-A", "benchmarks.scale_worker:app", "worker"]
    argv += ["-Q", "canarist.rollouts,canarist.notify", f"--pool={pool.name}"]
    argv += ["--concurrency", str(1 if pool.name == "solo" else pool.concurrency)]
    argv += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return [*argv, "-n", f"{name}@%h", f"--loglevel={loglevel}"]


def run_level(
    level: Level,
    *,
    redis_url: str,
    env: Mapping[str, str],
    policy: str,
    workdir: Path,
    pool: Pool,
    loglevel: str,
    shared_pids: Mapping[str, int],
    profile: Path | None = None,
) -> dict[str, Any]:
    """Run one level and return its row (see ``summarize``). ``shared_pids``: the Redis and
    Prometheus processes, whose CPU in the measured period is reported beside the workers'."""
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()  # queues and state of the previous level
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    tag = f"{level.rollouts}-{level.workers}w-{uuid.uuid4().hex[:4]}"
    workers = []
    for index in range(level.workers):
        worker_env = {
            **env,
            "CANARIST_BENCH_WORKER": "1",
            "CANARIST_BENCH_PREFIX": prefix,
            "CANARIST_BENCH_SAMPLES": str(workdir / f"samples-{tag}-{index}.jsonl"),
            "CANARIST_BENCH_POOL": pool.name,
        }
        if profile is not None and index == 0:
            worker_env["CANARIST_BENCH_PROFILE"] = str(profile)
        argv = worker_argv(pool, loglevel, f"bench{index}")
        workers.append(Worker(argv, worker_env, workdir / f"worker-{tag}-{index}.log"))
    store = RedisStateStore.from_url(redis_url, prefix)
    client = make_celery(WorkerSettings(redis=RedisSettings(url=redis_url)), store_prefix=prefix)
    intake = Intake(
        store,
        Path(env["CANARIST_POLICY_DIR"]),
        millisecond_clock,
        enqueue_advance(client),
        alert_routes=(),  # the benchmark policy sends no alerts (scale.py drops them)
        on_outbox=wake_outbox(client),
    )

    def cpu() -> dict[str, float]:
        spent = {name: cpu_seconds(pid) for name, pid in shared_pids.items()}
        workers_spent = sum(worker.cpu_seconds() for worker in workers)
        return {**spent, "workers": workers_spent, "machine": machine_cpu_seconds()}

    try:
        for worker in workers:
            worker.start()
        ids = submit_spread(intake, level, policy)
        time.sleep(level.warmup)
        began, cpu_began, calls_began = time.time(), cpu(), redis_calls(flush)
        time.sleep(level.measure)
        ended, cpu_ended, calls_ended = time.time(), cpu(), redis_calls(flush)
        overdue = store.count_due(ended - 2.0)
        aborted = abort_seconds(
            intake, store, ids[:: max(1, len(ids) // level.aborts)][: level.aborts]
        )
        memory = max(rss_mb(worker.pid) for worker in workers)
    finally:
        for worker in workers:
            worker.stop()
        client.close()
        store.close()
        flush.close()
    rows = []
    for path in sorted(workdir.glob(f"samples-{tag}-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    window = [row for row in rows if began <= row["wall"] < ended]
    spent = {name: cpu_ended[name] - cpu_began[name] for name in cpu_began}
    row = summarize(level, window, ended - began, spent, calls_ended - calls_began, overdue)
    pids = [worker.pid for worker in workers]
    extra = {"worker_rss_mb": memory, "worker_pids": pids, "abort_seconds": aborted}
    return {**row, "pool": pool.name, "concurrency": pool.concurrency, **extra}


def submit_spread(intake: Intake, level: Level, policy: str) -> list[str]:
    """Submit the rollouts evenly over one interval; each its own app, so none supersedes
    another, with the selectors of one of ``level.apps`` services written to Prometheus."""
    began = time.monotonic()
    ids = []
    for index in range(level.rollouts):
        service = f"svc-{index % level.apps}"
        job = RolloutJob(
            app=f"bench-{index:05d}",
            namespace="bench",
            version="v2",
            policy=policy,
            platform="observe",
            baseline=f'app="{service}",version="v1"',
            canary=f'app="{service}",version="v2"',
        )
        ids.append(intake.submit(job, "benchmark").rollout_id)
        pause = began + (index + 1) * level.interval / level.rollouts - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return ids


def abort_seconds(
    intake: Intake, store: RedisStateStore, ids: list[str], timeout: float = 180.0
) -> list[float | None]:
    """Abort ``ids`` through Intake (what the API's abort does) while the workers carry their
    load; seconds until each rollout is rolled back (ABORTED, nothing awaited), None if not
    within ``timeout``: an overloaded worker must still carry every abort out."""
    asked: dict[str, float] = {}
    for rollout_id in ids:
        intake.command(rollout_id, "abort", "benchmark", reason="the scale benchmark's abort")
        asked[rollout_id] = time.monotonic()
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        for rollout_id in ids:
            if rollout_id in done:
                continue
            state = store.load(rollout_id).state
            if state.phase is Phase.ABORTED and state.awaiting is None:
                done[rollout_id] = round(time.monotonic() - asked[rollout_id], 3)
        time.sleep(0.05)
    return [done.get(rollout_id) for rollout_id in ids]


def summarize(
    level: Level,
    window: list[dict[str, Any]],
    seconds: float,
    cpu: Mapping[str, float],
    redis_commands: int,
    overdue: int,
) -> dict[str, Any]:
    """The level's row: lateness percentiles, throughput, CPU and where task time went, and
    what each advance cost the shared parts (Prometheus requests, Redis commands, CPU)."""
    advances = [row for row in window if row["task"] == ADVANCE]
    lateness = sorted(row["ran"] - row["due"] for row in advances if "due" in row)
    looks = [row for row in advances if "analysis" in row]
    busy = sum(row["seconds"] for row in window)
    parts = {part: sum(row.get(part, 0.0) for row in advances) for part in PARTS}
    advance_seconds = sum(row["seconds"] for row in advances)
    count = max(1, len(advances))
    queries = sum(row.get("queries", 0) for row in window)
    return {
        "rollouts": level.rollouts,
        "workers": level.workers,
        "interval_s": level.interval,
        "measure_s": round(seconds, 1),
        "advances": len(advances),
        "advances_per_s": round(len(advances) / seconds, 2),
        "looks_per_s": round(len(looks) / seconds, 2),
        "looks_per_s_due": round(level.rollouts / level.interval, 2),
        "lateness_samples": len(lateness),
        "lateness_p50_s": _quantile(lateness, 0.50),
        "lateness_p99_s": _quantile(lateness, 0.99),
        "lateness_max_s": round(lateness[-1], 3) if lateness else None,
        "overdue_at_end": overdue,
        "worker_cpu_pct": round(100 * cpu["workers"] / seconds, 1),
        "redis_cpu_pct": round(100 * cpu.get("redis", 0.0) / seconds, 1),
        "prometheus_cpu_pct": round(100 * cpu.get("prometheus", 0.0) / seconds, 1),
        "machine_cpu_pct": round(100 * cpu.get("machine", 0.0) / seconds, 1),
        "other_cpu_pct": round(
            100
            * (cpu.get("machine", 0.0) - sum(v for k, v in cpu.items() if k != "machine"))
            / seconds,
            1,
        ),
        "worker_busy_pct": round(100 * busy / seconds / level.workers, 1),
        "cpu_ms_per_advance": round(1000 * cpu["workers"] / count, 2),
        "task_cpu_ms_per_advance": round(
            1000 * sum(row.get("cpu", 0.0) for row in advances) / count, 2
        ),
        "prometheus_cpu_ms_per_advance": round(1000 * cpu.get("prometheus", 0.0) / count, 2),
        "redis_cpu_ms_per_advance": round(1000 * cpu.get("redis", 0.0) / count, 2),
        "queries_per_advance": round(queries / count, 2),
        "queries_per_look": round(sum(row.get("queries", 0) for row in looks) / len(looks), 2)
        if looks
        else None,
        "instants_per_look": round(sum(row.get("instants", 0) for row in looks) / len(looks), 1)
        if looks
        else None,
        "prometheus_queries_per_s": round(queries / seconds, 1),
        "redis_commands_per_advance": round(redis_commands / count, 1),
        "redis_commands_per_s": round(redis_commands / seconds, 1),
        "advance_mean_ms": round(1000 * advance_seconds / len(advances), 1) if advances else None,
        "look_mean_ms": round(1000 * statistics.fmean(r["seconds"] for r in looks), 1)
        if looks
        else None,
        "advance_time_ms_by_part": {
            part: round(1000 * total / len(advances), 2) if advances else None
            for part, total in parts.items()
        },
        "results": _count(row.get("result") for row in advances),
    }


def _quantile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank quantile of a sorted list (no interpolation: p99 is a real sample)."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return round(ordered[rank], 3)


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts
