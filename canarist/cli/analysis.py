"""``canarist analyze`` and ``canarist backtest``: the analyzer on its own, from a terminal or CI.

``analyze`` is Kayenta's standalone canary analysis: one window, one verdict with its evidence.
``backtest`` replays a policy over past data look by look; ``--suite`` (suite.py) runs a file of
past rollouts with the decisions they should get. Both exit with codes a pipeline can branch on
(exits.py): the verdict, a usage error, or Prometheus failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from analyzer.analysis import analyze
from analyzer.backtest import backtest, minutes
from analyzer.errors import CanaristError
from analyzer.judges.decisions import format_evalue
from analyzer.verdict import Verdict
from canarist.cli.exits import (
    ANALYZE_EXITS,
    BACKTEST_EXITS,
    DECISION_EXITS,
    VERDICT_EXITS,
    AnalysisExit,
    WatchedSource,
    err,
    finish,
    help_with_exits,
    prometheus,
)
from canarist.cli.inputs import parse_args, parse_time, policy_or_exit, versions_or_exit
from canarist.cli.suite import run_suite

__all__ = ["parse_args", "parse_time", "register"]  # parse_args: the rollout commands use it

Result = TypeVar("Result")

PolicyOption = Annotated[Path, typer.Option("--policy", help="policy YAML file")]
PrometheusOption = Annotated[str, typer.Option("--prometheus", help="Prometheus base URL")]
BaselineOption = Annotated[str, typer.Option(help='baseline matchers: app="x",version="v1"')]
CanaryOption = Annotated[str, typer.Option(help='canary matchers: app="x",version="v2"')]
StartOption = Annotated[str, typer.Option(help="RFC 3339, Unix seconds, now or now-30m")]
EndOption = Annotated[str, typer.Option(help="RFC 3339, Unix seconds, now or now-30m")]
ArgOption = Annotated[list[str] | None, typer.Option("--arg", help="k=v for the policy's args")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def _threshold(value: float | None) -> str:
    return "-" if value is None else format_evalue(value)


def _against(source: WatchedSource, work: Callable[[WatchedSource], Result]) -> Result:
    """Run ``work``; a CanaristError (an arg the policy does not declare, say) exits 2."""
    try:
        return work(source)
    except CanaristError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(AnalysisExit.USAGE) from None


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
            f"e={format_evalue(judgement.e_value)} (bar {_threshold(judgement.threshold)})"
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
    prometheus_url: PrometheusOption,
    baseline: BaselineOption,
    canary: CanaryOption,
    start: StartOption,
    end: EndOption,
    arg: ArgOption = None,
    as_json: JsonOption = False,
) -> None:
    """The help is ANALYZE_HELP, built with the exit codes so the two cannot drift apart."""
    console = Console(highlight=False, soft_wrap=not as_json)
    loaded = policy_or_exit(policy)
    versions = versions_or_exit(baseline, canary, parse_args(arg))
    window = parse_time(start), parse_time(end)
    with prometheus(prometheus_url) as source:
        verdict = _against(source, lambda source: analyze(loaded, source, versions, *window))
    if as_json:
        typer.echo(verdict.model_dump_json(indent=2))
    elif source.first_failure is None:  # else every row would only repeat the failure
        console.print(verdict_table(verdict))
    finish(source, VERDICT_EXITS[verdict.outcome])


def backtest_command(
    policy: Annotated[Path | None, typer.Option("--policy", help="policy YAML file")] = None,
    prometheus_url: Annotated[
        str | None, typer.Option("--prometheus", help="Prometheus base URL")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="baseline matchers")] = None,
    canary: Annotated[str | None, typer.Option(help="canary matchers")] = None,
    start: Annotated[str | None, typer.Option(help="canary start")] = None,
    end: Annotated[str | None, typer.Option(help="end of the replay")] = None,
    arg: ArgOption = None,
    suite: Annotated[Path | None, typer.Option(help="YAML suite of past rollouts")] = None,
    as_json: JsonOption = False,
) -> None:
    """The help is BACKTEST_HELP, built with the exit codes so the two cannot drift apart."""
    console = Console(highlight=False, soft_wrap=True)
    if suite is not None:
        run_suite(suite, prometheus_url, as_json, console)
    missing = [
        flag
        for flag, value in (
            ("--policy", policy),
            ("--prometheus", prometheus_url),
            ("--baseline", baseline),
            ("--canary", canary),
            ("--start", start),
            ("--end", end),
        )
        if value is None
    ]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)} (or give --suite)")
    assert policy and prometheus_url and baseline and canary and start and end
    loaded = policy_or_exit(policy)
    versions = versions_or_exit(baseline, canary, parse_args(arg))
    window = parse_time(start), parse_time(end)
    with prometheus(prometheus_url) as source:
        result = _against(source, lambda source: backtest(loaded, source, versions, *window))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    elif source.first_failure is None:
        console.print(f"decision: {result.decision} at {minutes(result.decided_at_seconds)}")
        if result.verdict is not None:
            console.print(verdict_table(result.verdict))
    finish(source, DECISION_EXITS[result.decision])


ANALYZE_HELP = help_with_exits(
    "One analysis of a window: the verdict per metric and overall, with its evidence.",
    ANALYZE_EXITS,
)
BACKTEST_HELP = help_with_exits(
    "Replay the analysis look by look (no look-ahead) and report the first decision; "
    "--suite FILE runs a file of past rollouts against what each should have decided.",
    BACKTEST_EXITS,
)


def register(app: typer.Typer) -> None:
    app.command("analyze", help=ANALYZE_HELP)(analyze_command)
    app.command("backtest", help=BACKTEST_HELP)(backtest_command)
