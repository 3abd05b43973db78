"""CPU of one analysis pass outside Prometheus (``python -m benchmarks.analysis_cost``).

Target: one analysis pass of the default policy stays under 20 ms of CPU outside
Prometheus round trips.

What a pass is: ``analyzer.analysis.analyze`` over the window a live rollout's look covers (from
``begin_after`` to the look): render every query, read the answers into arrays (per version and
per pod), run every judge, the per-pod check of any FAIL, and the score. The answers come from a
``MemorySource`` filled by the power benchmark's simulator (``benchmarks.feed``) with exactly what
Prometheus would return, and each answer is kept after the first pass (``Answered``), so what
is timed is Canarist's own work; the HTTP round trip and the decoding of Prometheus' JSON are
not (``benchmarks.scale`` measures a whole advance with them).

Cells: three kinds of canary (healthy with the realistic mix of nuisances; one slow canary pod,
whose FAIL sends the per-pod check to work; a +25% latency regression, which FAILs) at 100 /
1,000 / 10,000 canary requests a minute, each at looks 5, 20 and 40 minutes into the step (the
judges' cost grows with the window). Each cell is timed ``--repeats`` times per round with
``time.process_time`` (this process' CPU, so other load on the machine hardly moves it), over
``--rounds`` rounds; the figure is the median pass of each round, reported as the median of the
rounds and their spread (min-max), with the slowest pass seen. Beside it, the Kayenta-style
reference's look on the same data (three Mann-Whitney tests with scoring, as
``benchmarks.references`` decides): the cost of a classical judge.

    python -m benchmarks.analysis_cost                    # 5 rounds of 20 passes per cell, ~1 min
    python -m benchmarks.analysis_cost --quick --json out.json

Not a timed test: it prints a table and the verdict, and saves them as JSON with ``--json``.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from analyzer.analysis import analyze  # noqa: E402
from analyzer.policy.loader import load_policy  # noqa: E402
from analyzer.sources.base import MetricSource, Series  # noqa: E402
from analyzer.verdict import Verdict  # noqa: E402
from benchmarks import references  # noqa: E402
from benchmarks.feed import START, VERSIONS, source_for  # noqa: E402
from benchmarks.runner import DEFAULT_POLICY, Task, prepare, simulate_task  # noqa: E402
from benchmarks.simulator import TRAFFIC, SimulatedRun  # noqa: E402

TARGET_MS = 20.0
KINDS = {  # what the cell is called: the power benchmark's scenario it simulates
    "healthy": "realistic mix",
    "one slow pod": "slow/noisy pod",
    "latency +25%": "latency +25%",
}
LOOK_MINUTES = (5, 20, 40)
SEED = 20260105


@dataclass(frozen=True)
class Cell:
    kind: str
    traffic: str
    minutes: int
    outcome: str
    reason_codes: dict[str, str]  # each metric's, at this look
    rounds_ms: list[float]  # the median pass of each round
    slowest_ms: float
    kayenta_rounds_ms: list[float]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "traffic": self.traffic,
            "look_minute": self.minutes,
            "outcome": self.outcome,
            "reason_codes": self.reason_codes,
            "median_ms": statistics.median(self.rounds_ms),
            "rounds_ms": self.rounds_ms,
            "slowest_ms": self.slowest_ms,
            "kayenta_median_ms": statistics.median(self.kayenta_rounds_ms),
            "kayenta_rounds_ms": self.kayenta_rounds_ms,
        }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    rounds, repeats = (2, 3) if args.quick else (args.rounds, args.repeats)
    policy_path = str(args.policy)
    prepare(policy_path)
    policy = load_policy(policy_path)
    began = time.monotonic()
    runs = {
        (kind, traffic): _simulate(scenario, traffic, args.seed)
        for kind, scenario in KINDS.items()
        for traffic in TRAFFIC
    }
    passes: dict[tuple[str, str, int], Callable[[], Verdict]] = {}
    looks: dict[tuple[str, str, int], Callable[[], object]] = {}
    for (kind, traffic), run in runs.items():
        source = Answered(source_for(policy, run))
        for minutes in LOOK_MINUTES:
            end = START + timedelta(minutes=minutes)
            passes[kind, traffic, minutes] = _pass(policy, source, end)
            looks[kind, traffic, minutes] = _kayenta_look(run, minutes)
    timings: dict[tuple[str, str, int], list[list[float]]] = {key: [] for key in passes}
    kayenta: dict[tuple[str, str, int], list[list[float]]] = {key: [] for key in passes}
    for _ in range(rounds):  # rounds interleave the cells, so a slow moment touches them all
        for key, one_pass in passes.items():
            timings[key].append(_cpu_ms(one_pass, repeats))
            kayenta[key].append(_cpu_ms(looks[key], repeats))
    verdicts = {key: one_pass() for key, one_pass in passes.items()}
    cells = [
        Cell(
            kind=key[0],
            traffic=key[1],
            minutes=key[2],
            outcome=verdicts[key].outcome.value,
            reason_codes={m.name: m.judgement.reason_code.value for m in verdicts[key].metrics},
            rounds_ms=[statistics.median(times) for times in timings[key]],
            slowest_ms=max(max(times) for times in timings[key]),
            kayenta_rounds_ms=[statistics.median(times) for times in kayenta[key]],
        )
        for key in passes
    ]
    worst = max(cells, key=lambda cell: max(cell.rounds_ms))
    met = max(worst.rounds_ms) < TARGET_MS
    payload: dict[str, Any] = {
        "policy": policy_path,
        "seed": args.seed,
        "rounds": rounds,
        "repeats": repeats,
        "seconds": round(time.monotonic() - began, 1),
        "cells": [cell.to_json() for cell in cells],
        "target": {
            "target": f"one analysis pass of the default policy < {TARGET_MS:g} ms of CPU "
            "outside Prometheus round trips (every cell, every round's median)",
            "met": met,
            "measured": f"worst round median {max(worst.rounds_ms):.1f} ms "
            f"({worst.kind}, {worst.traffic}, look at minute {worst.minutes})",
        },
    }
    print(render(payload), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return payload


class Answered:
    """A source that answers each query as it did the first time: Prometheus' work, and the
    decoding of its answer, are then out of the timing (``_cpu_ms`` makes an untimed call
    first)."""

    def __init__(self, source: MetricSource) -> None:
        self._source = source
        self._answers: dict[tuple[str, datetime, datetime, timedelta], list[Series]] = {}

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        key = (promql, start, end, step)
        if key not in self._answers:
            self._answers[key] = self._source.query_range(promql, start, end, step)
        return self._answers[key]


def _simulate(scenario: str, traffic: str, seed: int) -> SimulatedRun:
    """The scenario's first run; for the slow pod, its first with the slow pod on the canary."""
    for index in range(1000):
        run = simulate_task(Task(scenario, traffic, index, seed))
        if run.facts.get("slow_pod_on") in (None, "canary"):
            return run
    raise RuntimeError(f"no run of {scenario!r} with its slow pod on the canary")


def _pass(policy: Any, source: Any, end: Any) -> Callable[[], Verdict]:
    begin = START + policy.analysis.begin_after

    def one() -> Verdict:
        return analyze(policy, source, VERSIONS, begin, end, final=False)

    return one


def _kayenta_look(run: SimulatedRun, minutes: int) -> Callable[[], object]:
    window = slice(references.KAYENTA_BEGIN_AFTER_MINUTES, minutes)

    def one() -> object:
        baseline = references._kayenta_values(run.baseline)
        canary = references._kayenta_values(run.canary)
        return references._kayenta_score(baseline, canary, window)

    return one


def _cpu_ms(work: Callable[[], object], repeats: int) -> list[float]:
    """CPU milliseconds of each of ``repeats`` calls, after one untimed call (caches, imports),
    with the collector run beforehand so that no pass pays for another's garbage."""
    work()
    gc.collect()
    times = []
    for _ in range(repeats):
        began = time.process_time()
        work()
        times.append((time.process_time() - began) * 1000.0)
    return times


def render(payload: dict[str, Any]) -> str:
    lines = [
        f"Analysis pass CPU: policy {payload['policy']}, {payload['rounds']} rounds of "
        f"{payload['repeats']} passes per cell, seed {payload['seed']} "
        f"({payload['seconds']} s)",
        "  Canarist: fetch from memory, every judge, the per-pod check of a FAIL, the score; "
        "Kayenta-style: three Mann-Whitney tests and the score on the same data",
        "",
        f"{'canary':<14} {'traffic':>7} {'look':>5} {'outcome':>12} | "
        f"{'Canarist ms':>11} {'spread':>11} {'slowest':>8} | {'Kayenta-style ms':>16}",
        "-" * 96,
    ]
    for cell in payload["cells"]:
        rounds = cell["rounds_ms"]
        lines.append(
            f"{cell['kind']:<14} {cell['traffic']:>7} {cell['look_minute']:>4}m "
            f"{cell['outcome']:>12} | {cell['median_ms']:>11.1f} "
            f"{min(rounds):>5.1f}-{max(rounds):<5.1f} {cell['slowest_ms']:>8.1f} | "
            f"{cell['kayenta_median_ms']:>16.1f}"
        )
    target = payload["target"]
    lines += [
        "",
        f"TARGET [{'  met  ' if target['met'] else 'NOT met'}] {target['target']}: "
        f"{target['measured']}",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.analysis_cost",
        description="CPU of one analysis pass outside Prometheus, beside a Kayenta-style look.",
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 passes (seconds)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every cell")
    parser.add_argument("--repeats", type=int, default=20, help="passes per cell and round")
    parser.add_argument("--seed", type=int, default=SEED, help="the simulator's master seed")
    parser.add_argument("--policy", default=str(DEFAULT_POLICY), help="Canarist policy file")
    parser.add_argument("--json", help="save the table and the target")
    return parser


if __name__ == "__main__":
    main(sys.argv[1:])
