"""What ``analyze``, ``backtest`` and suites read from a person: times, args, selectors, policies.

Each reader turns a bad value into a usage error (exit 2) that says what is wrong and where, on
stderr, so that with ``--json`` stdout holds a document or nothing. The rollout commands share
``parse_args``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import typer

from analyzer.analysis import Versions
from analyzer.backtest import parse_moment
from analyzer.errors import CanaristError, PolicyError, PolicyProblem
from analyzer.policy import Policy, load_policy
from analyzer.policy.promql import Selector
from canarist.cli.exits import AnalysisExit, err


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """RFC 3339 (``2026-01-05T10:00:00Z``), Unix seconds, ``now`` or ``now-<duration>``."""
    try:
        return parse_moment(text, now or datetime.now(UTC))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_args(pairs: list[str] | None, option: str = "--arg") -> dict[str, str]:
    args = {}
    for pair in pairs or []:
        name, separator, value = pair.partition("=")
        if not separator:
            raise typer.BadParameter(f"{option} {pair!r}: expected name=value")
        args[name.strip()] = value
    return args


def versions_or_exit(baseline: str, canary: str, args: dict[str, str]) -> Versions:
    try:
        return Versions(Selector.parse(baseline), Selector.parse(canary), args)
    except CanaristError as exc:
        raise typer.BadParameter(str(exc)) from exc


def policy_or_exit(path: Path) -> Policy:
    """The policy at ``path``, or every problem in it as ``FILE:LINE: field: message``, exit 2."""
    try:
        return load_policy(path)
    except PolicyError as error:
        problems_exit(str(path), error.problems)


def problems_exit(source: str, problems: list[PolicyProblem]) -> NoReturn:
    """Print each problem of the file ``source`` on stderr and exit 2: the input is invalid."""
    for problem in problems:
        err.print(problem.render(source), markup=False)
    raise typer.Exit(AnalysisExit.USAGE)
