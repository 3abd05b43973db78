"""Statistical power and false-abort benchmark: Canarist's default policy beside two references.

    .venv/bin/python -m benchmarks.power                 # full size, 2 worker processes
    .venv/bin/python -m benchmarks.power --quick         # a few runs per cell: plumbing check
    .venv/bin/python -m benchmarks.power --json out.json --seed 7

Simulates paired baseline/canary streams (``benchmarks.simulator``) for every scenario of
``benchmarks.scenarios`` at three traffic levels, decides each run with Canarist's real pipeline
(``analyzer.backtest.backtest`` over a ``MemorySource``), with the Argo-style and Kayenta-style
references (``benchmarks.references``) and with an oracle that knows the truth
(``benchmarks.oracle``: a yardstick, not a policy), and prints the four side by side — a
false-abort table and a detection table — and the targets.
"""

from __future__ import annotations

import os

# One BLAS thread per worker: the workers already use every core.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import analyzer  # noqa: E402
from analyzer.policy.loader import load_policy  # noqa: E402
from analyzer.policy.models import Policy  # noqa: E402
from benchmarks import oracle, references, simulator  # noqa: E402
from benchmarks.report import Result, render_table, rows  # noqa: E402
from benchmarks.runner import DEFAULT_POLICY, prepare, run_all, tasks  # noqa: E402
from benchmarks.scenarios import FULL, QUICK  # noqa: E402
from benchmarks.targets import check, render_targets  # noqa: E402

DEFAULT_SEED = 20260105
ORACLE_TARGETS = (
    "THE SAME TARGETS FOR THE ORACLE: what this data allows a test that knows the truth "
    "(a target it misses is out of reach of per-version data at alpha 0.01)"
)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    counts = QUICK if args.quick else FULL
    pattern = re.compile(args.only) if args.only else None
    task_list = tasks(
        counts, args.seed, (lambda s: bool(pattern.search(s.name))) if pattern else None
    )
    prepare(args.policy)
    code = code_digests(args.policy)  # the code just imported, which every worker runs
    began = time.monotonic()
    results: list[Result] = []
    for done, result in enumerate(run_all(task_list, args.workers, args.policy), start=1):
        results.append(result)
        if args.progress and done % 500 == 0:
            print(f"  {done}/{len(task_list)} runs", file=sys.stderr, flush=True)
    wall = time.monotonic() - began
    results.sort(key=lambda r: (r["scenario"], r["traffic"], r["index"]))
    table, targets = rows(results), check(results)
    oracle_targets = check(results, "oracle")
    print(_header(args, len(results), code))
    print()
    print(render_table(table))
    print()
    print(render_targets(targets))
    print()
    print(render_targets(oracle_targets, ORACLE_TARGETS))
    print()
    print(render_false_aborts(results, load_policy(args.policy)))
    print()
    print(f"{len(results)} runs in {wall:.1f} s with {args.workers} worker(s); seed {args.seed}")
    payload = {
        "seed": args.seed,
        "quick": args.quick,
        "policy": args.policy,
        "workers": args.workers,
        "wall_seconds": wall,
        "code": code,
        "assumptions": assumptions(),
        "rows": [row.to_json() for row in table],
        "targets": [target.to_json() for target in targets],
        "oracle_targets": [target.to_json() for target in oracle_targets],
        "runs": results,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=1, default=str)
        print(f"results saved to {args.json}")
    return payload


def code_digests(policy: str) -> dict[str, str]:
    """Short SHA-256 digests of the analyzer's code, its judges and the policy: the judges still
    change, and a number means nothing without the code that produced it. The analyzer hashed is
    the one imported, wherever it was imported from."""
    root = Path(analyzer.__file__).resolve().parent

    def digest(paths: list[Path]) -> str:
        hashed = hashlib.sha256()
        for path in sorted(paths):
            hashed.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        return hashed.hexdigest()[:12]

    return {
        "analyzer": digest(list(root.rglob("*.py"))),
        "analyzer/judges": digest(list((root / "judges").glob("*.py"))),
        "policy": hashlib.sha256(Path(policy).read_bytes()).hexdigest()[:12],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.power", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a few runs per cell (seconds)")
    parser.add_argument("--json", metavar="FILE", help="save the table, targets and every run")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="master seed")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1: in-process)")
    parser.add_argument("--policy", default=str(DEFAULT_POLICY), help="Canarist policy file")
    parser.add_argument("--only", metavar="REGEX", help="only scenarios whose name matches")
    parser.add_argument("--progress", action="store_true", help="report progress on stderr")
    return parser


def assumptions() -> dict[str, Any]:
    return {
        "canary_minutes": simulator.MINUTES,
        "canary_weight": simulator.CANARY_WEIGHT,
        "pods": {"total": simulator.PODS, "canary": simulator.CANARY_PODS},
        "canary_requests_per_minute": simulator.TRAFFIC,
        "base_error_rate": simulator.BASE_ERROR_RATE,
        "latency": {"median_s": simulator.LATENCY_MEDIAN, "sigma": simulator.LATENCY_SIGMA},
        "argo": {
            "max_error_ratio": references.ARGO_MAX_ERROR_RATIO,
            "max_p99_seconds": references.ARGO_MAX_P99_SECONDS,
            "failure_limit": references.ARGO_FAILURE_LIMIT,
            "consecutive_error_limit": references.ARGO_CONSECUTIVE_ERROR_LIMIT,
            "interval_minutes": 1,
            "initial_delay_minutes": references.ARGO_INITIAL_DELAY_MINUTES,
        },
        "kayenta": {
            "interval_minutes": references.KAYENTA_INTERVAL_MINUTES,
            "begin_after_minutes": references.KAYENTA_BEGIN_AFTER_MINUTES,
            "confidence": references.KAYENTA_CONFIDENCE,
            "pass": references.KAYENTA_PASS,
            "marginal": references.KAYENTA_MARGINAL,
            "metrics": [
                {
                    "name": m.spec.name,
                    "weight": m.spec.weight,
                    "allowed_increase": 1 + m.spec.tolerance,
                    "critical": m.critical,
                }
                for m in references.KAYENTA_METRICS
            ],
        },
        "oracle": {
            "test": "one-sided mixture SPRT per kind: the true alternative mixed over the pod "
            "spread vs the nearest null",
            "alpha": oracle.ALPHA,
            "first_minute": oracle.FIRST_MINUTE,
            "null": {
                "error_ratio": oracle.NULL_ERROR_RATIO,
                "latency_factor": oracle.NULL_LATENCY_FACTOR,
                "memory_log_growth_per_minute": oracle.NULL_MEMORY_LOG_SLOPE,
            },
            "watched_when_healthy": [oracle.describe(r) for r in oracle.WATCHED],
        },
    }


def _header(args: argparse.Namespace, runs: int, code: dict[str, str]) -> str:
    traffic = ", ".join(f"{name} {rpm:,}" for name, rpm in simulator.TRAFFIC.items())
    quick = " (QUICK: plumbing only)" if args.quick else ""
    argo = (
        f"every 1m after 1m, canary 5xx ratio <= {references.ARGO_MAX_ERROR_RATIO:.0%} and p99 <= "
        f"{references.ARGO_MAX_P99_SECONDS:g} s, failureLimit {references.ARGO_FAILURE_LIMIT}, "
        f"consecutiveErrorLimit {references.ARGO_CONSECUTIVE_ERROR_LIMIT}"
    )
    kayenta = (
        f"every {references.KAYENTA_INTERVAL_MINUTES}m, cumulative window, Mann-Whitney "
        f"{references.KAYENTA_CONFIDENCE} on per-minute error ratio (critical, 50), p99 (35), "
        f"memory (15); allowances x1.25/x1.05/x1.2; marginal {references.KAYENTA_MARGINAL:g}, "
        f"pass {references.KAYENTA_PASS:g} at the last run"
    )
    return "\n".join(
        [
            f"Canarist power benchmark: {runs} runs{quick}, seed {args.seed}, "
            f"policy {os.path.relpath(args.policy)}",
            f"  {simulator.MINUTES}-minute canaries at a fixed {simulator.CANARY_WEIGHT:.0%} "
            f"weight ({simulator.CANARY_PODS} of {simulator.PODS} pods); canary requests/min: "
            f"{traffic}; nominal 5xx {simulator.BASE_ERROR_RATE:.1%}, latency median "
            f"{simulator.LATENCY_MEDIAN * 1000:g} ms (p99 ~0.28 s by histogram_quantile)",
            "  code: " + ", ".join(f"{name} {digest}" for name, digest in code.items()),
            f"  Argo-style: {argo}",
            f"  Kayenta-style: {kayenta}",
            f"  Oracle (a yardstick of what is achievable on this data, not a policy): {_oracle()}",
        ]
    )


def _oracle() -> str:
    return (
        f"knows each scenario's true regression and runs a one-sided mixture SPRT of it (mixed "
        f"over the canary's pod-to-pod spread) against the "
        f"nearest null the default policy allows (errors x{oracle.NULL_ERROR_RATIO:g}, latency "
        f"+{oracle.NULL_LATENCY_FACTOR - 1:.0%}, memory growth "
        f"{math.expm1(60 * oracle.NULL_MEMORY_LOG_SLOPE):.0%}/h) from "
        f"minute {oracle.FIRST_MINUTE}, alpha {oracle.ALPHA:g}, on errors given the minute's "
        "errors, the log ratio of mean latencies, the count above a tail bound or the memory "
        "trend; on healthy and tolerable runs all four kinds at alpha/4: "
        + "; ".join(oracle.describe(r) for r in oracle.WATCHED)
    )


def render_false_aborts(results: Sequence[Result], policy: Policy) -> str:
    """Why Canarist aborted runs it should have promoted: metric, nuisance, an example reason."""
    wrong = [
        r
        for r in results
        if r["canarist"]["decision"] == "abort"
        and (r["group"] != "regression" or r["canarist"]["minutes"] <= r["onset_minute"])
    ]
    if not wrong:
        return "Canarist aborted no healthy or tolerable run."
    tally: Counter[tuple[str, str, str, str]] = Counter()
    example: dict[tuple[str, str, str, str], str] = {}
    for r in wrong:
        slow = r["facts"].get("slow_pod_on") or "no slow pod"
        key = (
            r["scenario"],
            r["traffic"],
            ",".join(r["canarist"]["decided_by"]),
            f"slow pod: {slow}",
        )
        tally[key] += 1
        why = "; ".join(r["canarist"].get("failed", {}).values()) or r["canarist"]["reason"]
        example.setdefault(key, f"#{r['index']} at {r['canarist']['minutes']:g} min: {why}")
    lines = ["Canarist's aborts of healthy / tolerable / pre-onset runs:"]
    analysis = policy.analysis
    looks_begin = (analysis.begin_after + analysis.interval).total_seconds() / 60
    early = looks_begin + (analysis.min_samples - 2) * analysis.interval.total_seconds() / 60
    lines.extend(f"  {line}" for line in _abort_summary(results, wrong, early))
    lines.append("by scenario | traffic | deciding metric(s) | where the slow pod was:")
    for key, count in tally.most_common():
        lines.append(f"  {count:4d}  {' | '.join(key)}")
        lines.append(f"        e.g. {example[key][:220]}")
    return "\n".join(lines)


def _abort_summary(
    results: Sequence[Result], wrong: Sequence[Result], early_minutes: float
) -> list[str]:
    """The two causes worth separating: a slow pod on the canary, and the first few looks.

    ``early_minutes``: the last look decided on fewer than ``min_samples`` intervals, where the
    sequential judges abort only on the stricter (1/alpha)^2 bar.
    """
    lines = []
    for group in ("healthy", "tolerable"):
        runs = [r for r in results if r["group"] == group]
        if not runs:
            continue
        slow = [r for r in runs if r["facts"].get("slow_pod_on") == "canary"]
        aborted = [r for r in wrong if r["group"] == group]
        on_slow = sum(r["facts"].get("slow_pod_on") == "canary" for r in aborted)
        early = sum(r["canarist"]["minutes"] <= early_minutes for r in aborted)
        lines.append(
            f"{group}: {len(aborted)}/{len(runs)} aborted; {on_slow} of them had the slow pod on "
            f"a canary pod ({len(slow)} such runs), {len(aborted) - on_slow} did not "
            f"({len(runs) - len(slow)} runs); {early} were decided by minute {early_minutes:g}, "
            "before min_samples intervals"
        )
    return lines


if __name__ == "__main__":
    main()
