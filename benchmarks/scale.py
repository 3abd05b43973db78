"""How many concurrent rollouts a worker process keeps on time, and how that scales with worker
processes (``python -m benchmarks.scale``).

Targets (issue 17): ONE worker process keeps 2,000 concurrent rollouts analysed every 30 s at
p99 step lateness (execution time - due time, what ``canarist_step_lateness_seconds`` observes)
under 2 s, and 1,000 under 0.5 s; TWO worker processes give at least 1.6x the throughput of
one; an advance costs at most 10 ms of worker CPU and 4 Prometheus requests.

What runs: the test stack's Redis and Prometheus (canarist/demo/stack.py) in a temp directory;
a few services' realistic series written into Prometheus (tests/workloads.py), which the
rollouts share; the shipped ``default-canary`` policy's three metrics with ``analysis.interval:
30s``, no warm-up and one long analyze step, so every rollout stays in flight and looks every
interval; W ``celery worker`` processes of Canarist's own app (benchmarks/scale_worker.py adds
only measurement), each ``--pool solo`` as deployed (``--pool threads --concurrency N`` measures
the threads pool: it overlaps the Prometheus wait but costs more CPU per advance). No beat: the
reconciler only re-enqueues overdue rollouts. Rollouts are submitted on the ``observe``
platform through ``Intake``, evenly over one interval. Each level: warm-up, then a measured
period whose every task is a sample (benchmarks/scale_worker.py records it).

Levels: ``--rollouts`` are per worker process, run for each of ``--workers``: ``--rollouts 1000
2000 --workers 1 2`` runs 1,000 and 2,000 rollouts on one worker and 2,000 and 4,000 on two.
``--capacity`` then overloads 1, 2, 3 and 4 workers (``--capacity-workers`` to choose) with
rollouts analysed every 10 s, more than they can do, and reports the advances per second they
manage: the throughput that the 1.6x target compares (one and two workers), and how it scales
past the machine's two cores (three and four). ``--runs N`` repeats everything and
reports the spread (the targets are judged on the worst run).

    python -m benchmarks.scale --capacity            # make bench: about 17 minutes
    python -m benchmarks.scale --rollouts 2000 --workers 1 --measure 300
    python -m benchmarks.scale --quick --json out.json   # 20 rollouts, 5 s interval, < 1 min

Not a timed test: it prints a table and the verdict, and saves them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from analyzer.policy import load_policy
from benchmarks.scale_level import ROOT, Level, Pool, run_level
from canarist.demo.stack import start_prometheus, start_redis
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

ONE_WORKER_TARGETS = {2000: 2.0, 1000: 0.5}  # rollouts on one worker -> p99 lateness limit, s
LATENESS_LIMIT_S = 2.0  # a level "keeps up" below this p99
SCALING_TARGET = 1.6  # two workers' throughput over one's
CPU_MS_TARGET, QUERIES_TARGET = 10.0, 4.0  # per advance
CAPACITY_INTERVAL = 10.0  # s: analysis interval of the overload runs
CAPACITY_ROLLOUTS = 2500  # per worker: 250 looks/s due each, more than one process can do
POLICY_NAME = "scale-bench"
HEALTHY = Behaviour(requests_per_second=50.0, error_ratio=0.01)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    command = "python -m benchmarks.scale " + shlex.join(sys.argv[1:] if argv is None else argv)
    quick = args.quick
    per_worker = args.rollouts or ([20] if quick else [1000, 2000])
    worker_counts = args.workers or ([1] if quick else [1, 2])
    interval = args.interval or (5.0 if quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (interval + (5 if quick else 15))
    measure = args.measure or (20.0 if quick else 120.0)
    capacity_workers = args.capacity_workers or [1, 2, 3, 4]
    pool = Pool(args.pool, args.concurrency)
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    capacity: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="canarist-scale-") as temp:
        workdir = Path(temp)
        redis_server = start_redis(workdir / "redis")
        prometheus = start_prometheus(workdir / "prometheus")
        try:
            levels = [
                Level(count * workers, interval, warmup, measure, args.apps, workers)
                for workers in worker_counts
                for count in per_worker
            ]
            overloads = [
                Level(
                    CAPACITY_ROLLOUTS * workers,
                    CAPACITY_INTERVAL,
                    CAPACITY_INTERVAL + 20,
                    args.capacity_measure,
                    args.apps,
                    workers,
                )
                for workers in (capacity_workers if args.capacity else [])
            ]
            runs = args.runs
            span = runs * (
                sum(2 * lv.interval + lv.warmup + lv.measure + 60 for lv in levels + overloads)
            )
            samples = write_services(prometheus.url, args.apps, span + 120, 1.0 if quick else 5.0)
            policies = {
                lv.interval: write_policy(workdir / f"policies-{lv.interval:g}", lv.interval)
                for lv in levels + overloads
            }
            shared = {"redis": redis_server.pid, "prometheus": prometheus.pid}

            def run(level: Level, run_index: int) -> dict[str, Any]:
                env = worker_env(redis_server.url, prometheus.url, policies[level.interval])
                print(
                    f"run {run_index + 1}/{runs}: {level.rollouts} rollouts on {level.workers} "
                    f"worker(s), every {level.interval:g} s: submitting, warm-up "
                    f"{level.warmup:g} s, measuring {level.measure:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                profile = workdir / f"profile-{level.rollouts}.pstats" if args.profile else None
                row = run_level(
                    level,
                    redis_url=redis_server.url,
                    env=env,
                    policy=POLICY_NAME,
                    workdir=workdir,
                    pool=pool,
                    loglevel=args.loglevel,
                    shared_pids=shared,
                    profile=profile,
                )
                row["run"] = run_index + 1
                if profile is not None and profile.exists():
                    row["profile_top"] = top_functions(profile)
                    row["profile_top_own"] = top_functions(profile, 25, "own_s")
                print(format_row(row), file=sys.stderr, flush=True)
                return row

            for run_index in range(runs):
                for level in levels:
                    rows.append(run(level, run_index))
                for level in overloads:
                    capacity.append(run(level, run_index))
        finally:
            prometheus.stop()
            redis_server.stop()
    payload = report(rows, capacity, command, time.monotonic() - began, args, pool, samples)
    print(render(payload))
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return payload


def write_services(prometheus_url: str, apps: int, span: float, scrape: float) -> int:
    """v1 and v2 of ``apps`` healthy services, from 2 min ago to ``span`` seconds ahead."""
    start = time.time() - 120
    series = []
    for index in range(apps):
        for seed, version in enumerate(("v1", "v2")):
            series += http_service(
                f"svc-{index}",
                version,
                start,
                int(span // 60) + 3,
                HEALTHY,
                seed=100 * index + seed,
                scrape=scrape,
            )
    return write_samples(prometheus_url, series)


def write_policy(directory: Path, interval: float) -> Path:
    """default-canary's metrics; analysed every ``interval`` from the start of one 1 h step."""
    policy = yaml.safe_load((ROOT / "policies" / "default-canary.yaml").read_text())
    policy["name"] = POLICY_NAME
    policy["description"] = "default-canary's metrics, one long analyze step: the scale benchmark"
    policy["analysis"].update(interval=f"{interval:g}s", begin_after="0s")
    policy["strategy"] = {
        "type": "canary",
        "steps": [{"set_weight": 10}, {"analyze": {"duration": "1h"}}, {"set_weight": 100}],
    }
    policy.pop("alerts", None)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{POLICY_NAME}.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    load_policy(path)  # refuse to benchmark a policy Canarist would refuse
    return directory


def worker_env(redis_url: str, prometheus_url: str, policy_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CANARIST_")}
    env.update(
        CANARIST_REDIS__URL=redis_url,
        CANARIST_PROMETHEUS__URL=prometheus_url,
        CANARIST_POLICY_DIR=str(policy_dir),
        PYTHONPATH=str(ROOT),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def passes(row: dict[str, Any], limit: float = LATENESS_LIMIT_S) -> bool:
    p99 = row["lateness_p99_s"]
    return p99 is not None and p99 < limit


def top_functions(path: Path, count: int = 15, key: str = "cumulative_s") -> list[dict[str, Any]]:
    """The profiled tasks' functions with the most ``key`` time (cumulative_s or own_s)."""
    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({name})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    return sorted(rows, key=lambda row: -row[key])[:count]


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """min / median / max of the runs' figures (None: a run measured nothing)."""
    known = [value for value in values if value is not None]
    if not known or len(known) < len(values):
        return {"min": None, "median": None, "max": None}
    return {
        "min": min(known),
        "median": round(statistics.median(known), 3),
        "max": max(known),
    }


def aborts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The aborts asked after the measured periods: how many were carried out, and how fast."""
    seconds = [value for row in rows for value in row.get("abort_seconds", [])]
    done = sorted(value for value in seconds if value is not None)
    return {
        "asked": len(seconds),
        "rolled_back": len(done),
        "median_s": round(statistics.median(done), 3) if done else None,
        "max_s": done[-1] if done else None,
    }


def targets(rows: list[dict[str, Any]], capacity: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with what was measured; judged on the worst run."""
    found = []
    for rollouts, limit in sorted(ONE_WORKER_TARGETS.items()):
        runs = [r for r in rows if r["workers"] == 1 and r["rollouts"] == rollouts]
        worst = max((r["lateness_p99_s"] or float("inf") for r in runs), default=None)
        found.append(
            {
                "target": f"one worker, {rollouts} rollouts: p99 lateness < {limit:g} s",
                "met": worst is not None and worst < limit,
                "measured": "not run" if worst is None else f"worst run's p99 {worst:g} s",
            }
        )
    one = [r["advances_per_s"] for r in capacity if r["workers"] == 1]
    two = [r["advances_per_s"] for r in capacity if r["workers"] == 2]
    ratio = min(two) / max(one) if one and two else None
    found.append(
        {
            "target": f"two workers: >= {SCALING_TARGET:g}x the throughput of one",
            "met": ratio is not None and ratio >= SCALING_TARGET,
            "measured": "not run"
            if ratio is None
            else f"{ratio:.2f}x (two's slowest run over one's fastest)",
        }
    )
    measured = [r for r in rows if r["advances"]]
    cpu = max((r["cpu_ms_per_advance"] for r in measured), default=None)
    queries = max((r["queries_per_advance"] for r in measured), default=None)
    found.append(
        {
            "target": f"per advance: <= {CPU_MS_TARGET:g} ms of worker CPU",
            "met": cpu is not None and cpu <= CPU_MS_TARGET,
            "measured": "not run" if cpu is None else f"at most {cpu:g} ms (every level, run)",
        }
    )
    found.append(
        {
            "target": f"per advance: <= {QUERIES_TARGET:g} Prometheus requests",
            "met": queries is not None and queries <= QUERIES_TARGET,
            "measured": "not run" if queries is None else f"at most {queries:g}",
        }
    )
    return found


def report(
    rows: list[dict[str, Any]],
    capacity: list[dict[str, Any]],
    command: str,
    wall: float,
    args: argparse.Namespace,
    pool: Pool,
    samples: int,
) -> dict[str, Any]:
    by_level: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        by_level.setdefault((row["rollouts"], row["workers"]), []).append(row)
    by_workers: dict[int, list[dict[str, Any]]] = {}
    for row in capacity:
        by_workers.setdefault(row["workers"], []).append(row)
    checked = targets(rows, capacity)
    return {
        "command": command,
        "wall_time_s": round(wall, 1),
        "quick": args.quick,
        "pool": pool.name,
        "concurrency": pool.concurrency,
        "runs": args.runs,
        "prometheus_samples_written": samples,
        "lateness_limit_s": LATENESS_LIMIT_S,
        "rows": rows,
        "levels": [
            {
                "rollouts": rollouts,
                "workers": workers,
                "lateness_p99_s": spread([r["lateness_p99_s"] for r in runs]),
                "advances_per_s": spread([r["advances_per_s"] for r in runs]),
                "cpu_ms_per_advance": spread([r["cpu_ms_per_advance"] for r in runs]),
                "abort_seconds": aborts(runs),
            }
            for (rollouts, workers), runs in sorted(by_level.items(), key=lambda i: i[0][::-1])
        ],
        "capacity": capacity,
        "capacity_advances_per_s": {
            str(workers): spread([r["advances_per_s"] for r in runs])
            for workers, runs in sorted(by_workers.items())
        },
        "capacity_abort_seconds": {
            str(workers): aborts(runs) for workers, runs in sorted(by_workers.items())
        },
        "largest_sustained_one_worker": max(
            (r["rollouts"] for r in rows if r["workers"] == 1 and passes(r)), default=None
        ),
        "targets": checked,
        "meets_targets": all(target["met"] for target in checked),
    }


HEADER = (
    f"{'run':>3} {'W':>2} {'rollouts':>8} {'adv/s':>6} {'due/s':>6} {'p50 s':>7} {'p99 s':>7} "
    f"{'max s':>7} {'overdue':>7} {'cpu ms':>6} {'task ms':>7} {'q/adv':>5} {'inst/look':>8} "
    f"{'redis/adv':>9} {'prom ms':>7} {'wrk %':>6} {'prom %':>6} {'redis %':>7} {'other %':>7}"
)


def format_row(row: dict[str, Any]) -> str:
    def number(value: Any) -> str:
        return "-" if value is None else f"{value:g}"

    return (
        f"{row.get('run', 1):>3} {row['workers']:>2} {row['rollouts']:>8} "
        f"{row['advances_per_s']:>6g} {row['looks_per_s_due']:>6g} "
        f"{number(row['lateness_p50_s']):>7} {number(row['lateness_p99_s']):>7} "
        f"{number(row['lateness_max_s']):>7} {row['overdue_at_end']:>7} "
        f"{row['cpu_ms_per_advance']:>6g} {row['task_cpu_ms_per_advance']:>7g} "
        f"{number(row['queries_per_advance']):>5} {number(row['instants_per_look']):>8} "
        f"{row['redis_commands_per_advance']:>9g} {row['prometheus_cpu_ms_per_advance']:>7g} "
        f"{row['worker_cpu_pct']:>6g} {row['prometheus_cpu_pct']:>6g} {row['redis_cpu_pct']:>7g} "
        f"{row['other_cpu_pct']:>7g}"
    )


def render(payload: dict[str, Any]) -> str:
    lines = [HEADER, *(format_row(row) for row in payload["rows"])]
    if payload["capacity"]:
        lines.append(f"overloaded (analysis every {CAPACITY_INTERVAL:g} s, more than is done):")
        lines += [format_row(row) for row in payload["capacity"]]
    for level in payload["levels"]:
        p99 = level["lateness_p99_s"]
        done = level["abort_seconds"]
        lines.append(
            f"{level['rollouts']} rollouts on {level['workers']} worker(s): p99 lateness "
            f"{p99['median']} s (min {p99['min']}, max {p99['max']}) over {payload['runs']} "
            f"run(s); aborts rolled back {done['rolled_back']} of {done['asked']}, "
            f"max {done['max_s']} s"
        )
    for workers, rate in payload["capacity_advances_per_s"].items():
        done = payload["capacity_abort_seconds"][workers]
        lines.append(
            f"throughput of {workers} worker(s): {rate['median']} advances/s (min {rate['min']}, "
            f"max {rate['max']}); overloaded, {done['rolled_back']} of {done['asked']} aborts "
            f"rolled back, median {done['median_s']} s, max {done['max_s']} s"
        )
    for target in payload["targets"]:
        verdict = "MET    " if target["met"] else "NOT MET"
        lines.append(f"{verdict} {target['target']}: {target['measured']}")
    lines.append(
        f"pool {payload['pool']} -c {payload['concurrency']}; command: {payload['command']}   "
        f"wall time: {payload['wall_time_s']:g} s"
    )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rollouts", type=int, nargs="+", help="per worker (default 1000 2000)")
    parser.add_argument("--workers", type=int, nargs="+", help="worker processes (default 1 2)")
    parser.add_argument("--quick", action="store_true", help="20 rollouts, 5 s interval, 20 s")
    parser.add_argument("--interval", type=float, help="analysis interval, s (default 30)")
    parser.add_argument("--warmup", type=float, help="after submitting, s (default interval+15)")
    parser.add_argument("--measure", type=float, help="measured period per level, s (120)")
    parser.add_argument("--capacity", action="store_true", help="also measure throughput")
    parser.add_argument("--capacity-workers", type=int, nargs="+", help="default 1 2 3 4")
    parser.add_argument("--capacity-measure", type=float, default=60.0, help="s (60)")
    parser.add_argument("--runs", type=int, default=1, help="repeat everything (spread)")
    parser.add_argument("--apps", type=int, default=5, help="services written to Prometheus")
    parser.add_argument("--pool", choices=("solo", "threads", "prefork"), default="solo")
    parser.add_argument("--concurrency", type=int, default=4, help="threads pool: threads (4)")
    parser.add_argument("--loglevel", default="INFO", help="the worker's log level")
    parser.add_argument("--profile", action="store_true", help="cProfile 1 task in 10 (solo)")
    parser.add_argument("--json", help="save the report here")
    return parser


if __name__ == "__main__":
    main()
