"""What the demo shows: a live view of the rollout in flight, its audit trail, and the summary.

The live view is drawn from what the public API answers (``GET /v1/rollouts/{id}``: phase,
stage, weight, the last look's per-metric evidence) and from what the load generator saw come
back through the router (which version served how many requests, how many failed), so what it
shows is what an operator could see, not the demo's own bookkeeping. Every new audit event is
printed as a line above the live panel, so a terminal without cursor control (CI, a pipe) still
gets the whole story in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from analyzer.judges.decisions import format_evalue
from canarist.demo.load import NO_ANSWER, NO_VERSION
from canarist.demo.run import Result
from workers.actions import EventKind

PHASE_STYLE = {
    "pending": "dim",
    "progressing": "cyan",
    "paused": "yellow",
    "promoting": "green",
    "promoted": "bold green",
    "aborting": "red",
    "aborted": "bold red",
    "failed": "bold red",
}
OUTCOME_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}


class LiveView:
    """A rich Live panel (on a terminal) plus one printed line per audit event."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._seen: set[str] = set()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(
        self, details: Sequence[Mapping[str, Any]], counts: Mapping[tuple[str, int], int]
    ) -> None:
        for detail in details:
            for event in detail.get("events", []):
                if event["id"] not in self._seen:
                    self._seen.add(event["id"])
                    self.console.print(event_line(detail, event), highlight=False)
        if self._live is not None:
            self._live.update(Group(*(rollout_panel(d) for d in details), traffic_table(counts)))


def event_line(detail: Mapping[str, Any], event: Mapping[str, Any]) -> Text:
    at = datetime.fromisoformat(event["at"]).strftime("%H:%M:%S")
    line = Text(f"{at} ", style="dim")
    line.append(f"{detail['version']:<4}", style="bold")
    line.append(f"{event['kind']:<15}", style=_kind_style(event["kind"]))
    line.append(event["message"])
    return line


def _kind_style(kind: str) -> str:
    if kind == EventKind.ANALYSIS:
        return "magenta"
    if kind in (EventKind.PHASE, EventKind.ROLLED_BACK):
        return "bold"
    return "cyan" if kind == EventKind.STAGE else "dim"


def rollout_panel(detail: Mapping[str, Any]) -> Panel:
    phase = detail["phase"]
    head = Text()
    head.append(f"{detail['app']} {detail['version']}", style="bold")
    head.append(f"  policy {detail['policy']}  ")
    head.append(f" {phase.upper()} ", style=f"reverse {PHASE_STYLE.get(phase, '')}")
    stage = detail.get("stage_label") or "-"
    count = detail.get("stage_count")
    where = f"stage {detail['stage_index'] + 1}/{count}: {stage}" if count else stage
    weight = int(detail.get("canary_weight") or 0)
    bar = Text(f"\n{where}\nweight {weight:>3}% ")
    bar.append("█" * (weight // 4), style="green")
    bar.append("░" * (25 - weight // 4), style="dim")
    parts: list[RenderableType] = [head, bar, metrics_table(detail)]
    reason = detail.get("abort_reason") or (detail.get("last_verdict") or {}).get("reason")
    if reason:
        parts.append(Text(f"decision: {reason}", style=PHASE_STYLE.get(phase, "")))
    return Panel(Group(*parts), title=detail["id"], title_align="left")


def metrics_table(detail: Mapping[str, Any]) -> RenderableType:
    verdict = (detail.get("last_verdict") or {}).get("evidence") or {}
    metrics = verdict.get("metrics") or []
    if not metrics:
        return Text("no analysis yet (warming up after the last traffic change)", style="dim")
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("metric", "outcome", "effect", "evidence", "why"):
        table.add_column(column, overflow="fold" if column == "why" else "ellipsis")
    for metric in metrics:
        judgement = metric["judgement"]
        outcome = judgement["outcome"]
        table.add_row(
            metric["name"],
            Text(outcome.upper(), style=OUTCOME_STYLE.get(outcome, "")),
            _effect(judgement),
            _evidence(judgement),
            Text(judgement["reason"], style="dim"),
        )
    return table


def _effect(judgement: Mapping[str, Any]) -> str:
    effect, interval = judgement.get("effect"), judgement.get("effect_interval")
    if effect is None:
        return "-"
    if interval:  # a bound may be open (None): the evidence does not limit it yet
        low, high = (("…" if bound is None else f"{bound:+.3g}") for bound in interval)
        return f"{effect:+.3g} [{low}, {high}]"
    return f"{effect:+.3g}"


def _evidence(judgement: Mapping[str, Any]) -> str:
    if judgement.get("e_value") is not None:
        threshold = judgement.get("threshold")
        bar = f" / {format_evalue(threshold)}" if threshold else ""
        return f"e={format_evalue(judgement['e_value'])}{bar}"
    if judgement.get("p_value") is not None:
        return f"p={judgement['p_value']:.3g}"
    return "-"


def traffic_table(counts: Mapping[tuple[str, int], int]) -> Table:
    """Requests the load generator got back, by the version that served them."""
    table = Table(title="served through the router (client side)", title_justify="left")
    for column in ("version", "requests", "5xx", "error ratio"):
        table.add_column(column, justify="right" if column != "version" else "left")
    answered = {key: n for key, n in counts.items() if key[1] != NO_ANSWER}
    for version in sorted({version for version, _ in answered}):
        total = sum(n for (v, _), n in answered.items() if v == version)
        errors = sum(n for (v, status), n in answered.items() if v == version and status >= 500)
        label = "(no version header)" if version == NO_VERSION else version
        table.add_row(label, str(total), str(errors), f"{errors / max(total, 1):.2%}")
    unanswered = sum(n for (_, status), n in counts.items() if status == NO_ANSWER)
    if unanswered:
        table.add_row("(no answer within the timeout)", str(unanswered), "-", "-")
    return table


def summary(
    console: Console,
    results: Sequence[Result],
    counts: Mapping[Any, int],
    serving: bool = False,
) -> None:
    """The outcome of every release, the alert as Alertmanager holds it, and the reports (and
    their signed links, when the stack keeps ``serving`` them)."""
    table = Table(title="Canarist demo: what was decided", title_justify="left")
    for column in ("release", "policy", "expected", "decided", "took", "why"):
        table.add_column(column, overflow="fold")
    for result in results:
        style = "green" if result.as_expected else "bold red"
        table.add_row(
            f"{result.release.version} ({result.release.story})",
            result.release.policy,
            result.release.expected,
            Text(result.phase, style=style),
            f"{result.seconds:.0f} s",
            result.reason,
        )
    console.print(table)
    console.print(traffic_table(counts))
    for result in results:
        for alert in result.alerts:
            console.print(alert_panel(alert))
        if result.report is not None:
            console.print(f"report for {result.release.version}: {result.report}", soft_wrap=True)
        if serving and result.report_url is not None:
            console.print(f"  served at {result.report_url}", highlight=False, soft_wrap=True)


def alert_panel(alert: Mapping[str, Any]) -> Panel:
    lines = Text()
    for key, value in sorted(alert.get("labels", {}).items()):
        lines.append(f"{key}=", style="dim")
        lines.append(f"{value}  ")
    for key, value in sorted(alert.get("annotations", {}).items()):
        lines.append(f"\n{key}: ", style="bold")
        lines.append(str(value))
    status = (alert.get("status") or {}).get("state", "")
    return Panel(lines, title=f"Alertmanager received ({status})", title_align="left")
