"""``canarist analyze`` and ``canarist backtest``: the analyzer on its own, from a terminal or CI.

``analyze`` is Kayenta's standalone canary analysis: one window, one verdict with its evidence.
``backtest`` replays a policy over past data look by look; ``--suite`` runs a file of past
rollouts with the decisions they should get and exits 2 when one is decided otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from analyzer.analysis import Versions, analyze
from analyzer.backtest import BacktestResult, Suite, backtest, confusion, minutes, run_cases
from analyzer.errors import CanaristError, PolicyError, Problem
from analyzer.policy import Policy, load_policy
from analyzer.policy.durations import parse_duration
from analyzer.policy.promql import Selector
from analyzer.sources.prometheus import PrometheusSource
from analyzer.verdict import Verdict

INVALID = 2
Result = TypeVar("Result")
_RELATIVE = re.compile(r"^now(?:-(.+))?$")

PolicyOption = Annotated[Path, typer.Option("--policy", help="policy YAML file")]
PrometheusOption = Annotated[str, typer.Option("--prometheus", help="Prometheus base URL")]
BaselineOption = Annotated[str, typer.Option(help='baseline matchers: app="x",version="v1"')]
CanaryOption = Annotated[str, typer.Option(help='canary matchers: app="x",version="v2"')]
StartOption = Annotated[str, typer.Option(help="RFC 3339, Unix seconds, now or now-30m")]
EndOption = Annotated[str, typer.Option(help="RFC 3339, Unix seconds, now or now-30m")]
ArgOption = Annotated[list[str] | None, typer.Option("--arg", help="k=v for the policy's args")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """RFC 3339 (``2026-01-05T10:00:00Z``), Unix seconds, ``now`` or ``now-<duration>``."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        now = now or datetime.now(UTC)
        return now - (parse_duration(relative.group(1)) if relative.group(1) else timedelta(0))
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use RFC 3339, Unix seconds or now-30m") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_args(pairs: list[str] | None, option: str = "--arg") -> dict[str, str]:
    args = {}
    for pair in pairs or []:
        name, separator, value = pair.partition("=")
        if not separator:
            raise typer.BadParameter(f"{option} {pair!r}: expected name=value")
        args[name.strip()] = value
    return args


def _versions(baseline: str, canary: str, args: dict[str, str]) -> Versions:
    try:
        return Versions(Selector.parse(baseline), Selector.parse(canary), args)
    except CanaristError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _policy(path: Path, console: Console) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as error:
        for problem in error.problems:
            console.print(problem.render(str(path)), markup=False)
        raise typer.Exit(INVALID) from None


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def _against(
    prometheus: str, console: Console, work: Callable[[PrometheusSource], Result]
) -> Result:
    """Run ``work`` with a Prometheus source; a CanaristError (a bad arg, say) exits 2."""
    with PrometheusSource(prometheus) as source:
        try:
            return work(source)
        except CanaristError as exc:
            console.print(f"error: {exc}", markup=False)
            raise typer.Exit(INVALID) from None


def verdict_table(verdict: Verdict) -> Table:
    table = Table(title=f"verdict: {verdict.outcome.value.upper()} — {verdict.reason}")
    for column in ("metric", "judge", "outcome", "baseline", "canary", "effect", "evidence"):
        table.add_column(column)
    table.add_column("reason", overflow="fold")
    for metric in verdict.metrics:
        judgement = metric.judgement
        effect = "-" if judgement.effect is None else f"{judgement.effect:+.1%}"
        if judgement.effect_interval is not None:
            low, high = judgement.effect_interval
            effect += f" [{low:+.1%}, {high:+.1%}]"
        evidence = (
            f"e={_number(judgement.e_value)} (bar {_number(judgement.threshold)})"
            if judgement.e_value is not None
            else f"p={_number(judgement.p_value)}"
            if judgement.p_value is not None
            else "-"
        )
        flags = " (critical)" if metric.critical else " (dry run)" if metric.dry_run else ""
        table.add_row(
            metric.name + flags,
            metric.judge,
            judgement.outcome.value,
            ", ".join(f"{k}={_number(v)}" for k, v in judgement.baseline.items()),
            ", ".join(f"{k}={_number(v)}" for k, v in judgement.canary.items()),
            effect,
            evidence,
            judgement.reason,
        )
    return table


def analyze_command(
    policy: PolicyOption,
    prometheus: PrometheusOption,
    baseline: BaselineOption,
    canary: CanaryOption,
    start: StartOption,
    end: EndOption,
    arg: ArgOption = None,
    as_json: JsonOption = False,
) -> None:
    """One analysis of a window: the verdict per metric and overall, with its evidence."""
    console = Console(highlight=False, soft_wrap=not as_json)
    loaded = _policy(policy, console)
    versions = _versions(baseline, canary, parse_args(arg))
    window = parse_time(start), parse_time(end)
    verdict = _against(
        prometheus, console, lambda source: analyze(loaded, source, versions, *window)
    )
    if as_json:
        typer.echo(verdict.model_dump_json(indent=2))
    else:
        console.print(verdict_table(verdict))


def backtest_command(
    policy: Annotated[Path | None, typer.Option("--policy", help="policy YAML file")] = None,
    prometheus: Annotated[str | None, typer.Option(help="Prometheus base URL")] = None,
    baseline: Annotated[str | None, typer.Option(help="baseline matchers")] = None,
    canary: Annotated[str | None, typer.Option(help="canary matchers")] = None,
    start: Annotated[str | None, typer.Option(help="canary start")] = None,
    end: Annotated[str | None, typer.Option(help="end of the replay")] = None,
    arg: ArgOption = None,
    suite: Annotated[Path | None, typer.Option(help="YAML suite of past rollouts")] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the analysis look by look (no look-ahead) and report the first decision."""
    console = Console(highlight=False, soft_wrap=True)
    if suite is not None:
        _run_suite(suite, prometheus, as_json, console)
        return
    missing = [
        flag
        for flag, value in (
            ("--policy", policy),
            ("--prometheus", prometheus),
            ("--baseline", baseline),
            ("--canary", canary),
            ("--start", start),
            ("--end", end),
        )
        if value is None
    ]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)} (or give --suite)")
    assert policy and prometheus and baseline and canary and start and end
    loaded = _policy(policy, console)
    versions = _versions(baseline, canary, parse_args(arg))
    window = parse_time(start), parse_time(end)
    result = _against(
        prometheus, console, lambda source: backtest(loaded, source, versions, *window)
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    console.print(f"decision: {result.decision} at {minutes(result.decided_at_seconds)}")
    if result.verdict is not None:
        console.print(verdict_table(result.verdict))


def _load_suite(path: Path, console: Console) -> Suite:
    try:
        return Suite.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        problems = (
            [Problem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else [Problem((), str(exc))]
        )
        for problem in problems:
            console.print(problem.render(str(path)), markup=False)
        raise typer.Exit(INVALID) from None


def _run_suite(path: Path, prometheus: str | None, as_json: bool, console: Console) -> None:
    suite = _load_suite(path, console)
    policy = _policy((path.parent / suite.policy).resolve(), console)
    url = prometheus or suite.prometheus
    if url is None:
        raise typer.BadParameter("no Prometheus URL: give --prometheus or prometheus: in the suite")
    cases = [(case, _versions(case.baseline, case.canary, case.args)) for case in suite.cases]
    with PrometheusSource(url) as source:
        results = run_cases(policy, source, cases)
    failed = [item for item in results if item.ok is False]
    summary = {
        "cases": len(results),
        "with_expectation": sum(item.ok is not None for item in results),
        "failed": len(failed),
        "confusion": confusion(results),
    }
    if as_json:
        rows = [
            _case_json(item.case.name, item.case.expect, item.ok, item.result) for item in results
        ]
        typer.echo(json.dumps({"cases": rows, "summary": summary}, indent=2))
    else:
        table = Table(title=f"backtest suite {path} with policy {policy.name}")
        for column in ("case", "expect", "decision", "at", "ok", "reason"):
            table.add_column(column)
        for item in results:
            ok = "-" if item.ok is None else "yes" if item.ok else "NO"
            reason = item.result.verdict.reason if item.result.verdict else ""
            table.add_row(
                item.case.name,
                item.case.expect or "-",
                item.result.decision,
                minutes(item.result.decided_at_seconds),
                ok,
                reason,
            )
        console.print(table)
        console.print(f"confusion (expected -> decided): {summary['confusion']}")
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(INVALID)


def _case_json(
    name: str, expect: str | None, ok: bool | None, result: BacktestResult
) -> dict[str, object]:
    return {
        "name": name,
        "decision": result.decision,
        "decided_at_seconds": result.decided_at_seconds,
        "expect": expect,
        "ok": ok,
        "reason": result.verdict.reason if result.verdict else None,
    }


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.command("backtest")(backtest_command)
