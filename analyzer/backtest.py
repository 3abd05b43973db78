"""Replay a policy over past data: when would it have aborted, if ever?

A backtest looks at every analysis interval from the canary's start (after ``begin_after``),
each time with the data known at that instant only, exactly as a live rollout would, and
reports the first decision. Reaching the end without a FAIL promotes; missing data never does.
SREs keep past incidents and healthy releases as a suite (promtool-style) and run it on every
policy change: see ``Suite``. A suite is written by a person, so its models refuse unknown keys
(a typo such as ``expcet:`` must not drop an expectation silently).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from analyzer.analysis import Versions, fetch, judge_upto
from analyzer.errors import SelectorError
from analyzer.policy.durations import parse_duration
from analyzer.policy.models import Policy
from analyzer.policy.promql import Selector
from analyzer.run import RunTally
from analyzer.sources.base import MetricSource
from analyzer.verdict import Outcome, Verdict

BacktestDecision = Literal["abort", "promote", "inconclusive"]
_RELATIVE = re.compile(r"^now(?:-(.+))?$")


@dataclass(frozen=True)
class BacktestResult:
    decision: BacktestDecision
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


def parse_moment(value: object, now: datetime | None) -> datetime:
    """RFC 3339, Unix seconds, ``now`` or ``now-<duration>`` as an aware datetime.

    ``now`` is the caller's clock (the analyzer reads none); without it a relative time is an
    error. YAML hands over timestamps already parsed and Unix seconds as numbers, so both are
    taken as they come. Raises ValueError with the forms expected.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_unix(value, value)
    text = value.strip() if isinstance(value, str) else ""
    relative = _RELATIVE.match(text)
    if relative:
        if now is None:
            raise ValueError(f"{value!r}: a relative time needs the current time")
        return now - (parse_duration(relative.group(1)) if relative.group(1) else timedelta(0))
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _from_unix(seconds, value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r}: use RFC 3339, Unix seconds, now or now-30m") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _from_unix(seconds: float, value: object) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:  # out of range, or NaN
        raise ValueError(f"{value!r}: not a time in Unix seconds") from exc


def _moment(value: object, info: ValidationInfo) -> datetime:
    """Suite times: ``now`` comes from the validation context, the CLI's clock."""
    now = (info.context or {}).get("now")
    return parse_moment(value, now if isinstance(now, datetime) else None)


Moment = Annotated[datetime, BeforeValidator(_moment)]


class SuiteCase(BaseModel):
    """One past rollout; its fields are written by a person, so unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    start: Moment
    end: Moment
    baseline: str
    canary: str
    args: dict[str, str] = Field(default_factory=dict)
    expect: BacktestDecision | None = None
    policy: str | None = Field(
        default=None, description="this case's policy, relative to the suite file"
    )

    @field_validator("baseline", "canary")
    @classmethod
    def _parses(cls, matchers: str) -> str:
        """Checked here so that a bad selector is reported at its line, before any query."""
        try:
            Selector.parse(matchers)
        except SelectorError as exc:
            raise ValueError(str(exc)) from None
        return matchers


class Suite(BaseModel):
    """A YAML file of past rollouts with what the policy should have decided.

    Relative times (``now-30m``) need ``context={"now": ...}`` when validated, so every case of
    one run is read against the same instant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(description="path of the policy, relative to the suite file")
    prometheus: str | None = None
    cases: list[SuiteCase] = Field(min_length=1)


@dataclass(frozen=True)
class PlannedCase:
    """A case with what it runs on: its own policy, or the suite's, and its parsed selectors."""

    case: SuiteCase
    policy: Policy
    versions: Versions


@dataclass(frozen=True)
class CaseResult:
    case: SuiteCase
    policy: Policy
    result: BacktestResult

    @property
    def ok(self) -> bool | None:
        return None if self.case.expect is None else self.case.expect == self.result.decision


def run_cases(
    source: MetricSource, cases: Iterable[PlannedCase], *, parallelism: int = 8
) -> list[CaseResult]:
    """Backtest many cases through one source; queries of different cases overlap in time."""

    def one(planned: PlannedCase) -> CaseResult:
        case = planned.case
        decided = backtest(planned.policy, source, planned.versions, case.start, case.end)
        return CaseResult(case, planned.policy, decided)

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
