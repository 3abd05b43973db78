"""``canarist backtest --suite FILE``: past rollouts with the decisions they should get.

A suite lives in the policy repo and runs in CI on every policy change, so it is read the way a
policy is: within the same limits (reading.py), every problem at once as ``FILE:LINE: field:
message``, unknown and duplicate keys included (``expcet:`` once dropped an expectation
silently). Data and lines come from the same reader as a policy's (reading.build_data). Relative
times are read against one clock reading for the whole suite.
"""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console
from rich.table import Table

from analyzer.analysis import Versions, check_args
from analyzer.backtest import CaseResult, PlannedCase, Suite, SuiteCase, confusion, minutes
from analyzer.backtest import run_cases as backtest_cases
from analyzer.errors import CanaristError, PolicyProblem
from analyzer.policy import Policy
from analyzer.policy.promql import Selector
from analyzer.policy.reading import PathKey, build_data, compose, line_of, read_policy_file
from canarist.cli.exits import AnalysisExit, err, finish, prometheus
from canarist.cli.inputs import policy_or_exit, problems_exit

Lines = dict[PathKey, int]
_SHAPE = "a suite is a mapping of policy: and cases:"


def run_suite(path: Path, url: str | None, as_json: bool, console: Console) -> NoReturn:
    """Backtest every case, print the report, exit 0, 4 (Prometheus failed) or 5 (a miss)."""
    suite, lines = load_suite(path, datetime.now(UTC))
    url = url or suite.prometheus
    if url is None:
        raise typer.BadParameter("no Prometheus URL: give --prometheus or prometheus: in the suite")
    planned = _plan(path, suite, lines)
    with prometheus(url) as source:
        try:
            results = backtest_cases(source, planned)
        except CanaristError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(AnalysisExit.USAGE) from None
    failed = sum(item.ok is False for item in results)
    summary = {
        "cases": len(results),
        "with_expectation": sum(item.ok is not None for item in results),
        "failed": failed,
        "confusion": confusion(results),
    }
    if as_json:
        rows = [_case_json(item) for item in results]
        typer.echo(json.dumps({"cases": rows, "summary": summary}, indent=2))
    elif source.first_failure is None:  # else every row would only repeat the failure
        console.print(_table(path, results))
        console.print(f"confusion (expected -> decided): {summary['confusion']}")
        console.print(f"{len(results) - failed} passed, {failed} failed")
    finish(source, AnalysisExit.EXPECTATION_MISSED if failed else AnalysisExit.PASS)


def load_suite(path: Path, now: datetime) -> tuple[Suite, Lines]:
    """The suite and the line of each of its fields, or every problem on stderr and exit 2."""
    text, problems = read_policy_file(path)
    root, composing = compose(text) if not problems else (None, problems)
    if composing:
        problems_exit(str(path), composing)
    if root is None:
        problems_exit(str(path), [PolicyProblem((), f"the file is empty: {_SHAPE}", 1)])
    data, lines, unreadable = build_data(root)
    problems += unreadable
    if not isinstance(data, dict):
        problems_exit(str(path), [*problems, PolicyProblem((), _SHAPE, 1)])
    suite = None
    try:
        suite = Suite.model_validate(data, context={"now": now})
    except ValidationError as exc:
        problems += [_problem(error, lines) for error in exc.errors()]
    if suite is None or problems:
        problems_exit(str(path), sorted(problems, key=lambda p: (p.line or 0, p.dotted_path)))
    return suite, lines


def _plan(path: Path, suite: Suite, lines: Lines) -> list[PlannedCase]:
    """Each case with its policy (its own, else the suite's) loaded once per file, args checked."""
    policies: dict[Path, Policy] = {}
    planned, problems = [], []
    for index, case in enumerate(suite.cases):
        location: PathKey = ("cases", index, "policy") if case.policy else ("policy",)
        policy_path = (path.parent / (case.policy or suite.policy)).resolve()
        if not policy_path.is_file():
            message = f"no policy file at {policy_path}"
            problems.append(PolicyProblem(location, message, line_of(location, lines)))
            continue
        if policy_path not in policies:
            policies[policy_path] = policy_or_exit(policy_path)
        policy = policies[policy_path]
        try:
            args = check_args(policy, case.args)
        except CanaristError as exc:
            at: PathKey = ("cases", index, "args")
            problems.append(PolicyProblem(at, str(exc), line_of(at, lines)))  # names the policy
            continue
        versions = Versions(Selector.parse(case.baseline), Selector.parse(case.canary), args)
        planned.append(PlannedCase(case, policy, versions))
    if problems:
        problems_exit(str(path), problems)
    return planned


def _problem(error: ErrorDetails, lines: Lines) -> PolicyProblem:
    path: PathKey = tuple(error["loc"])
    shown = error.get("input")
    if error["type"] == "extra_forbidden":
        key = str(path[-1])
        close = difflib.get_close_matches(key, _known_keys(path[:-1]), n=1)
        message = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    elif error["type"] == "missing":
        message = "missing required key"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] != "value_error" and not isinstance(shown, dict | list | type(None)):
            message += f" (got {shown!r})"
    return PolicyProblem(path, message, line_of(path, lines))


def _known_keys(parent: PathKey) -> list[str]:
    if parent == ():
        return list(Suite.model_fields)
    return list(SuiteCase.model_fields) if parent[:1] == ("cases",) else []


def _table(path: Path, results: list[CaseResult]) -> Table:
    table = Table(title=f"backtest suite {path}")
    for column in ("case", "policy", "expect", "decision", "at", "ok", "reason"):
        table.add_column(column)
    for item in results:
        ok = "-" if item.ok is None else "yes" if item.ok else "NO"
        table.add_row(
            item.case.name,
            item.policy.name,
            item.case.expect or "-",
            item.result.decision,
            minutes(item.result.decided_at_seconds),
            ok,
            item.result.verdict.reason if item.result.verdict else "",
        )
    return table


def _case_json(item: CaseResult) -> dict[str, object]:
    result = item.result
    return {
        "name": item.case.name,
        "policy": item.policy.name,
        "decision": result.decision,
        "decided_at_seconds": result.decided_at_seconds,
        "expect": item.case.expect,
        "ok": item.ok,
        "reason": result.verdict.reason if result.verdict else None,
    }
