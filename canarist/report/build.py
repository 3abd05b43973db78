"""Gather a rollout's report and render it: the functions the API, the CLI and the demo call.

``build_report`` reads the state and the whole audit trail from the store and both versions'
series from the metric source, and never fails on missing data: an unknown rollout raises
``NotFound`` (the caller's 404), anything else that is missing (the policy file, Prometheus,
an old event) becomes a note on the page. ``render_report`` is both steps in one call.

The charts span the rollout from two intervals before it was submitted (the baseline before
the canary existed) to two intervals after it finished, or to ``now`` while it runs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from analyzer.hook_verdicts import HOOK_KIND as HOOK
from analyzer.policy import Policy
from analyzer.sources.base import MetricSource
from canarist.report.evidence import ChartContext
from canarist.report.history import History, decisive_verdict, read_history
from canarist.report.measures import measure_for
from canarist.report.page import document, sections
from canarist.report.sections import metric_card
from canarist.report.series import MetricSeries, metric_series
from canarist.report.svg import Band, Mark
from workers.actions import EventKind
from workers.store import AuditEvent, StateStore

EVENTS_PAGE = 500
DEFAULT_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Report:
    """Everything the page shows, gathered at ``generated_at``."""

    history: History
    policy: Policy | None
    series: tuple[MetricSeries, ...]
    start: float
    end: float
    generated_at: float
    problems: tuple[str, ...] = ()


def build_report(
    store: StateStore,
    source: MetricSource | None,
    policy: Policy | None,
    rollout_id: str,
    *,
    now: float,
    policy_problem: str | None = None,
) -> Report:
    """The report of ``rollout_id`` as of ``now``; ``policy`` is the rollout's policy (None
    when it cannot be loaded: say why in ``policy_problem``); without a ``source`` the page
    shows the verdicts but no data charts."""
    state = store.load(rollout_id).state
    events = _all_events(store, rollout_id)
    history = read_history(state, events, policy)
    problems = [policy_problem] if policy_problem else []
    if policy is None and not policy_problem:
        problems.append(f"policy {state.policy!r} is not available: no data charts")
    if source is None:
        problems.append("no metric source was given: no data charts")
    if history.unreadable_looks:
        problems.append(
            f"{history.unreadable_looks} look(s) have a verdict this version cannot read"
        )
    unreadable_events = sum(event.kind == EventKind.UNREADABLE_EVENT for event in events)
    if unreadable_events:
        problems.append(
            f"{unreadable_events} event(s) of the audit trail this version cannot read "
            f"({EventKind.UNREADABLE_EVENT} in the timeline says why)"
        )
    interval = policy.analysis.interval.total_seconds() if policy else DEFAULT_INTERVAL_SECONDS
    start = state.created_at - 2 * interval
    finished = history.decision.finished_at
    end = min(now, (finished if finished is not None else now) + 2 * interval)
    end = max(end, start + 3 * interval)
    series: list[MetricSeries] = []
    if policy is not None and source is not None:
        series = metric_series(policy, source, state.spec, start, end)
    return Report(history, policy, tuple(series), start, end, now, tuple(problems))


def render(report: Report) -> str:
    return document(report.history, report.generated_at, render_sections(report))


def render_sections(report: Report) -> list[tuple[str, str]]:
    """The report's parts, ``(name, html)`` in page order: the page (``render``) and the
    dashboard's rollout page (canarist/ui/) show the same parts."""
    history, policy = report.history, report.policy
    names = _metric_names(report)
    by_name = {series.name: series for series in report.series}
    final = decisive_verdict(history)
    verdicts = {metric.name: metric for metric in final.metrics} if final else {}
    context = ChartContext(report.start, report.end, _bands(history), _marks(history))
    shift = final.baseline_shift if final else 0.0
    rulings = {name: verdict.judgement for name, verdict in verdicts.items()}
    metrics = {metric.name: metric for metric in policy.metrics} if policy else {}
    measures = {name: measure_for(metric, rulings.get(name)) for name, metric in metrics.items()}
    cards = [
        metric_card(
            name,
            verdicts.get(name),
            by_name.get(name),
            metrics.get(name),
            measures.get(name),
            context,
            shift,
        )
        for name in names
    ]
    units = {name: measure.unit for name, measure in measures.items()}
    return sections(
        history,
        context,
        policy_name=policy.name if policy else None,
        metric_names=names,
        cards=cards,
        rulings=rulings,
        units=units,
        problems=report.problems,
    )


def render_report(
    store: StateStore,
    source: MetricSource | None,
    policy: Policy | None,
    rollout_id: str,
    *,
    now: float,
    policy_problem: str | None = None,
) -> str:
    """The report page of ``rollout_id`` as one self-contained HTML document."""
    return render(
        build_report(store, source, policy, rollout_id, now=now, policy_problem=policy_problem)
    )


def write_report(path: Path | str, html: str) -> Path:
    """Write the page atomically (a reader never sees half a report); return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(html)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _all_events(store: StateStore, rollout_id: str) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    while page := store.events(rollout_id, events[-1].id if events else None, EVENTS_PAGE):
        events.extend(page)
    return events


def _metric_names(report: Report) -> list[str]:
    """The policy's metrics in its order, then any a recorded verdict names besides (not its
    hooks' answers: the hooks section shows those)."""
    names = [metric.name for metric in report.policy.metrics] if report.policy else []
    for look in report.history.looks:
        names += [m.name for m in look.verdict.metrics if m.name not in names and m.kind != HOOK]
    return names


def _bands(history: History) -> tuple[Band, ...]:
    return tuple(Band(window.start, window.end, window.label) for window in history.windows)


def _marks(history: History) -> tuple[Mark, ...]:
    """Traffic changes, and the decision (with the change it made, when it made one)."""
    decided = history.decision.at
    marks = [Mark(change.at, change.label) for change in history.traffic if change.at != decided]
    if decided is not None:
        label = history.decision.headline.lower()
        made = [change.label for change in history.traffic if change.at == decided]
        marks.append(Mark(decided, f"{label}: {made[-1]}" if made else label, "decision"))
    return tuple(marks)
