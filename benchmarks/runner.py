"""Simulate every run and ask the four deciders, in parallel worker processes.

A run is identified by (scenario, traffic, index) and its random stream is derived from the
master seed and that identity alone (``numpy.random.SeedSequence``), so any run can be replayed
on its own (``replay``) and results do not depend on the number of workers or their scheduling.
"""

from __future__ import annotations

import multiprocessing
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.backtest import BacktestResult
from analyzer.judges.registry import judge_for, judge_types
from analyzer.policy.loader import load_policy
from analyzer.policy.models import Policy
from analyzer.verdict import Outcome
from benchmarks.feed import run_canarist
from benchmarks.oracle import oracle
from benchmarks.references import ReferenceDecision, argo_style, kayenta_style
from benchmarks.scenarios import SCENARIOS, RunCounts, Scenario, by_name
from benchmarks.simulator import TRAFFIC, SimulatedRun, simulate

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default-canary.yaml"
DECIDERS = ("canarist", "argo", "kayenta", "oracle")


@dataclass(frozen=True)
class Task:
    scenario: str
    traffic: str
    index: int
    seed: int  # the master seed


def tasks(
    counts: RunCounts, seed: int, only: Callable[[Scenario], bool] | None = None
) -> list[Task]:
    return [
        Task(scenario.name, traffic, index, seed)
        for scenario in SCENARIOS
        if only is None or only(scenario)
        for traffic in TRAFFIC
        for index in range(counts.of(scenario.group))
    ]


def simulate_task(task: Task) -> SimulatedRun:
    scenario = by_name(task.scenario)
    identity = [task.seed, zlib.crc32(task.scenario.encode()), zlib.crc32(task.traffic.encode())]
    rng = np.random.default_rng(np.random.SeedSequence([*identity, task.index]))
    return simulate(scenario.nuisances, scenario.regression, TRAFFIC[task.traffic], rng)


_POLICY: dict[str, Policy] = {}


def _policy(path: str) -> Policy:
    if path not in _POLICY:
        _POLICY[path] = load_policy(path)
    return _POLICY[path]


def run_task(task: Task, policy_path: str = str(DEFAULT_POLICY)) -> dict[str, Any]:
    """One run, all four deciders; a plain dict so it pickles and serialises as JSON.

    The oracle is told the scenario's regression, and nothing on healthy and tolerable runs.
    """
    run = simulate_task(task)
    scenario = by_name(task.scenario)
    canarist = run_canarist(_policy(policy_path), run)
    argo, kayenta = argo_style(run), kayenta_style(run)
    truth = scenario.regression if scenario.group == "regression" else None
    return {
        "scenario": task.scenario,
        "group": scenario.group,
        "traffic": task.traffic,
        "index": task.index,
        "onset_minute": scenario.onset_minute,
        "facts": run.facts,
        "canarist": _canarist_record(canarist),
        "argo": _decision_record(argo),
        "kayenta": _decision_record(kayenta),
        "oracle": _decision_record(oracle(run, truth)),
    }


def _decision_record(decision: ReferenceDecision) -> dict[str, Any]:
    return {
        "decision": decision.decision,
        "minutes": decision.decided_at_minutes,
        "reason": decision.reason,
    }


def _canarist_record(result: BacktestResult) -> dict[str, Any]:
    verdict = result.verdict
    seconds = result.decided_at_seconds
    metrics = verdict.metrics if verdict else []
    return {
        "decision": result.decision,
        "minutes": None if seconds is None else seconds / 60.0,
        "looks": result.looks,
        "reason": verdict.reason if verdict else "",
        "decided_by": list(verdict.decided_by) if verdict else [],
        "metrics": {metric.name: metric.judgement.outcome.value for metric in metrics},
        "failed": {
            metric.name: metric.judgement.reason
            for metric in metrics
            if metric.judgement.outcome is Outcome.FAIL
        },
    }


def prepare(policy_path: str = str(DEFAULT_POLICY)) -> None:
    """Load the policy and import every judge now, so that forked workers share this code."""
    for judge_type in judge_types():
        judge_for(judge_type)
    _policy(policy_path)


def run_all(
    task_list: list[Task], workers: int, policy_path: str = str(DEFAULT_POLICY)
) -> Iterator[dict[str, Any]]:
    """Results in completion order; ``workers`` = 1 runs in this process (tests, debugging)."""
    if workers <= 1:
        for task in task_list:
            yield run_task(task, policy_path)
        return
    prepare(policy_path)
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        jobs = [(task, policy_path) for task in task_list]
        yield from pool.imap_unordered(_run_packed, jobs, chunksize=8)


def _run_packed(job: tuple[Task, str]) -> dict[str, Any]:
    return run_task(*job)


def replay(scenario: str, traffic: str, index: int, seed: int) -> SimulatedRun:
    """The simulated data of one run, to inspect a surprising decision."""
    return simulate_task(Task(scenario, traffic, index, seed))
