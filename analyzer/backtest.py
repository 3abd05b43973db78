"""Replay a policy over past data: when would it have aborted, if ever?

A backtest looks at every analysis interval from the canary's start (after ``begin_after``),
each time with the data known at that instant only, exactly as a live rollout would, and
reports the first decision. Reaching the end without a FAIL promotes; missing data never does.
SREs keep past incidents and healthy releases as a suite (promtool-style) and run it on every
policy change: see ``Suite``.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from analyzer.analysis import Versions, fetch, judge_upto
from analyzer.policy.models import Policy
from analyzer.run import RunTally
from analyzer.sources.base import MetricSource
from analyzer.verdict import Outcome, Verdict

Decision = Literal["abort", "promote", "inconclusive"]


@dataclass(frozen=True)
class BacktestResult:
    decision: Decision
    decided_at_seconds: float | None  # since the canary's start; None when nothing was looked at
    looks: int
    verdict: Verdict | None  # the verdict that decided

    def to_json(self) -> dict[str, object]:
        metrics = self.verdict.model_dump(mode="json")["metrics"] if self.verdict else []
        return {
            "decision": self.decision,
            "decided_at_seconds": self.decided_at_seconds,
            "looks": self.looks,
            "reason": self.verdict.reason if self.verdict else "no look fits in the window",
            "metrics": metrics,
        }


def backtest(
    policy: Policy, source: MetricSource, versions: Versions, start: datetime, end: datetime
) -> BacktestResult:
    analysed_from = start + policy.analysis.begin_after
    window = fetch(policy, source, versions, analysed_from, end)
    tally, verdict = RunTally(), None
    for looks in range(1, window.grid.size + 1):
        final = looks == window.grid.size
        verdict = judge_upto(policy, window, looks, final=final)
        tally = tally.observe(verdict)
        at = float(window.grid[looks - 1]) - start.timestamp()
        limit = tally.outcome(policy.analysis)
        if limit is Outcome.FAIL:
            return BacktestResult("abort", at, looks, verdict)
        if limit is Outcome.INCONCLUSIVE:
            return BacktestResult("inconclusive", at, looks, verdict)
        if verdict.outcome is Outcome.PASS:
            return BacktestResult("promote", at, looks, verdict)
        if final:
            return BacktestResult("inconclusive", at, looks, verdict)
    return BacktestResult("inconclusive", None, 0, verdict)


class SuiteCase(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    start: datetime
    end: datetime
    baseline: str
    canary: str
    args: dict[str, str] = Field(default_factory=dict)
    expect: Literal["abort", "promote"] | None = None


class Suite(BaseModel):
    """A YAML file of past rollouts with what the policy should have decided."""

    model_config = ConfigDict(extra="allow", frozen=True)

    policy: str = Field(description="path of the policy, relative to the suite file")
    prometheus: str | None = None
    cases: list[SuiteCase] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    case: SuiteCase
    result: BacktestResult

    @property
    def ok(self) -> bool | None:
        return None if self.case.expect is None else self.case.expect == self.result.decision


def run_cases(
    policy: Policy,
    source: MetricSource,
    cases: Iterable[tuple[SuiteCase, Versions]],
    *,
    parallelism: int = 8,
) -> list[CaseResult]:
    """Backtest many cases through one source; queries of different cases overlap in time."""

    def one(item: tuple[SuiteCase, Versions]) -> CaseResult:
        case, versions = item
        return CaseResult(case, backtest(policy, source, versions, case.start, case.end))

    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        return list(pool.map(one, cases))


def confusion(results: list[CaseResult]) -> dict[str, dict[str, int]]:
    """Expected decision → decided → count, over the cases that state what they expect."""
    matrix: dict[str, dict[str, int]] = {}
    for item in results:
        if item.case.expect is None:
            continue
        row = matrix.setdefault(item.case.expect, {})
        row[item.result.decision] = row.get(item.result.decision, 0) + 1
    return matrix


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else str(timedelta(seconds=round(seconds)))
