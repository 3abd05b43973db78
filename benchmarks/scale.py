"""How many concurrent rollouts one worker process sustains (``python -m benchmarks.scale``).

Target: at least 1,000 rollouts in flight, analysed every 30 s, on ONE worker
process, with step lateness (execution time - due time, what ``canarist_step_lateness_seconds``
observes) at p99 under 2 s.

What runs: the test stack's Redis and Prometheus (canarist/demo/stack.py) in a temp directory; a few
services' realistic series written into Prometheus (tests/workloads.py), which all rollouts
share; the shipped ``default-canary`` policy's three metrics with ``analysis.interval: 30s``, no
warm-up and one long analyze step, so every rollout stays in flight and looks every interval;
ONE ``celery worker --pool=solo --concurrency 1`` (the solo pool runs tasks in the worker's
only process: what one process sustains is then exactly what is measured, its CPU is one
PID's, and the metrics need no multiprocess directory; prefork -c 1 still runs one task at a
time and only adds a parent process and a pipe, try ``--pool prefork``). No beat: the
reconciler only re-enqueues overdue rollouts, which would add duplicate work to an overloaded
worker rather than measure it. Rollouts are submitted on the ``observe`` platform through
``Intake``, evenly over one interval; a ramp of levels (default 100, 300, 1000) stops at the
first level whose p99 lateness is 2 s or more. Each level: warm-up, then a measured period
whose every task is a sample (benchmarks/scale_worker.py records it).

    python -m benchmarks.scale                       # the ramp, about 13 minutes
    python -m benchmarks.scale --rollouts 1000 --measure 300
    python -m benchmarks.scale --quick --json out.json   # 20 rollouts, 5 s interval, < 1 min

Not a timed test: it prints a table and the verdict, and saves them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from analyzer.policy import load_policy
from benchmarks.scale_level import ROOT, Level, run_level
from canarist.demo.stack import start_prometheus, start_redis
from tests.promwrite import write_samples
from tests.workloads import Behaviour, http_service

TARGET_ROLLOUTS = 1000
LATENESS_LIMIT_S = 2.0
POLICY_NAME = "scale-bench"
HEALTHY = Behaviour(requests_per_second=50.0, error_ratio=0.01)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    command = "python -m benchmarks.scale " + shlex.join(sys.argv[1:] if argv is None else argv)
    quick = args.quick
    levels = args.rollouts or ([20] if quick else [100, 300, 1000])
    interval = args.interval or (5.0 if quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (interval + (5 if quick else 15))
    measure = args.measure or (20.0 if quick else 180.0)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="canarist-scale-") as temp:
        workdir = Path(temp)
        redis_server = start_redis(workdir / "redis")
        prometheus = start_prometheus(workdir / "prometheus")
        try:
            span = len(levels) * (2 * interval + warmup + measure + 40) + 120
            samples = write_services(prometheus.url, args.apps, span, 1.0 if quick else 5.0)
            policy_dir = write_policy(workdir / "policies", interval)
            env = worker_env(redis_server.url, prometheus.url, policy_dir)
            rows: list[dict[str, Any]] = []
            for rollouts in levels:
                level = Level(rollouts, interval, warmup, measure, args.apps)
                print(
                    f"level {rollouts}: submitting over {interval:g} s, warm-up {warmup:g} s, "
                    f"measuring {measure:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                profile = workdir / f"profile-{rollouts}.pstats" if args.profile else None
                row = run_level(
                    level,
                    redis_url=redis_server.url,
                    env=env,
                    policy=POLICY_NAME,
                    workdir=workdir,
                    pool=args.pool,
                    loglevel=args.loglevel,
                    profile=profile,
                )
                if profile is not None and profile.exists():
                    row["profile_top"] = top_functions(profile)
                rows.append(row)
                print(format_row(row), file=sys.stderr, flush=True)
                if not passes(row) and not args.all_levels:
                    break
        finally:
            prometheus.stop()
            redis_server.stop()
    payload = report(rows, command, time.monotonic() - began, args, samples)
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


def passes(row: dict[str, Any]) -> bool:
    p99 = row["lateness_p99_s"]
    return p99 is not None and p99 < LATENESS_LIMIT_S


def top_functions(path: Path, count: int = 15) -> list[dict[str, Any]]:
    """The profiled tasks' functions with the most cumulative time."""
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
    return sorted(rows, key=lambda row: -row["cumulative_s"])[:count]


def report(
    rows: list[dict[str, Any]], command: str, wall: float, args: argparse.Namespace, samples: int
) -> dict[str, Any]:
    sustained = [row["rollouts"] for row in rows if passes(row)]
    largest = max(sustained, default=None)
    return {
        "command": command,
        "wall_time_s": round(wall, 1),
        "quick": args.quick,
        "pool": args.pool,
        "prometheus_samples_written": samples,
        "target_rollouts": TARGET_ROLLOUTS,
        "lateness_limit_s": LATENESS_LIMIT_S,
        "rows": rows,
        "largest_sustained": largest,
        "meets_target": largest is not None and largest >= TARGET_ROLLOUTS,
    }


HEADER = (
    f"{'rollouts':>8} {'adv/s':>6} {'looks/s':>7} {'due/s':>6} {'p50 s':>7} {'p99 s':>7} "
    f"{'max s':>7} {'overdue':>7} {'cpu %':>6} {'busy %':>6} {'adv ms':>7}  ms/advance by part"
)


def format_row(row: dict[str, Any]) -> str:
    def number(value: Any) -> str:
        return "-" if value is None else f"{value:g}"

    parts = " ".join(
        f"{part}={number(value)}" for part, value in row["advance_time_ms_by_part"].items()
    )
    return (
        f"{row['rollouts']:>8} {row['advances_per_s']:>6g} {row['looks_per_s']:>7g} "
        f"{row['looks_per_s_due']:>6g} {number(row['lateness_p50_s']):>7} "
        f"{number(row['lateness_p99_s']):>7} {number(row['lateness_max_s']):>7} "
        f"{row['overdue_at_end']:>7} {row['worker_cpu_pct']:>6g} {row['worker_busy_pct']:>6g} "
        f"{number(row['advance_mean_ms']):>7}  {parts}"
    )


def render(payload: dict[str, Any]) -> str:
    lines = [HEADER, *(format_row(row) for row in payload["rows"])]
    largest = payload["largest_sustained"]
    verdict = "MEETS" if payload["meets_target"] else "MISSES"
    lines.append(
        f"largest N with p99 lateness < {payload['lateness_limit_s']:g} s: "
        f"{largest if largest is not None else 'none measured'}; {verdict} the target of "
        f"{payload['target_rollouts']} (pool {payload['pool']}, one worker process)"
    )
    lines.append(f"command: {payload['command']}   wall time: {payload['wall_time_s']:g} s")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rollouts", type=int, nargs="+", help="levels (default 100 300 1000)")
    parser.add_argument("--quick", action="store_true", help="20 rollouts, 5 s interval, 20 s")
    parser.add_argument("--interval", type=float, help="analysis interval, s (default 30)")
    parser.add_argument("--warmup", type=float, help="after submitting, s (default interval+15)")
    parser.add_argument("--measure", type=float, help="measured period per level, s (180)")
    parser.add_argument("--apps", type=int, default=5, help="services written to Prometheus")
    parser.add_argument("--pool", choices=("solo", "prefork"), default="solo")
    parser.add_argument("--loglevel", default="INFO", help="the worker's log level")
    parser.add_argument("--profile", action="store_true", help="cProfile 1 task in 10")
    parser.add_argument("--all-levels", action="store_true", help="go on after a level fails")
    parser.add_argument("--json", help="save the report here")
    return parser


if __name__ == "__main__":
    main()
